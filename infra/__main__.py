"""The gpucloud Pulumi program: load the spec named by the stack's config, plan it, declare this stack's part.

Config: gpucloud:spec (path of the spec, relative to the project), gpucloud:stack (optional: which part of the
plan's stack split; default the Pulumi stack name), and the BMC password as a secret under the name the spec gives
it (provider.password.secret, e.g. `pulumi config set --secret gpucloud:bmc-password`).
"""

from pathlib import Path

import pulumi

from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import render_all
from gpucloud.plan import stacks as layout
from gpucloud.stack import graph, program
from gpucloud.write import write_tree

# Pulumi runs this program from infra/; the spec path in the config is relative to the project.
PROJECT = Path(__file__).resolve().parent.parent
config = pulumi.Config("gpucloud")
spec = PROJECT / config.require("spec")
checked = check_spec(spec)
if checked.fails("error"):
    raise pulumi.RunError(f"the spec has errors; run `gpucloud validate {spec}`")
plan = build_plan(checked.spec, tuple(checked.findings))
files = render_all(plan)
# The configuration layers run the playbooks with the plan folder's inventory: the plan must be on disk, and it is
# the same plan whose files the layer triggers hash.
write_tree(PROJECT / graph.plan_path(plan.spec.name), files)
stacks = {data["stack"]: data for data in layout.stack_inputs(plan, files)}
name = config.get("stack") or pulumi.get_stack()
if name not in stacks:
    raise pulumi.RunError(f"stack {name!r} is not part of {plan.spec.name}'s plan; its stacks: {', '.join(stacks)}")
secret = plan.spec.provider.password
password = config.require_secret(secret) if secret else None
cluster = program.build(stacks[name], password)
pulumi.export("stack", name)
pulumi.export("hosts", sum(len(p["hosts"]) for p in stacks[name]["pools"]))
