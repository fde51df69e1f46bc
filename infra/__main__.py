"""The gpucloud Pulumi program: load the spec named by the stack's config, plan it, declare this stack's part.

Config: gpucloud:spec (path of the spec, relative to the project), gpucloud:stack (optional: which part of the
plan's stack split; default the Pulumi stack name), and the BMC password as a secret under the name the spec gives
it (provider.password.secret, e.g. `pulumi config set --secret gpucloud:bmc-password`). `gpucloud apply` runs the
same ``declare`` inline through the Automation API.
"""

from pathlib import Path

from gpucloud.stack.program import declare

# Pulumi runs this program from infra/; the spec path in the config is relative to the project.
declare(Path(__file__).resolve().parent.parent)
