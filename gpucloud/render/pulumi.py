"""The pulumi/ folder of a plan: what every stack would declare, from the real program run under Pulumi's mocks.

pulumi/stacks.json     the stack split: each stack's hosts, resource count and the hash of its input
pulumi/<stack>.json    every resource of that stack (type, name, parent, inputs, dependencies, protect), one a line

Runs after the other renderers because the configuration layers' triggers hash their files.
"""

from __future__ import annotations

import hashlib
import json
from typing import Mapping

from gpucloud import jsonout
from gpucloud.plan import Plan
from gpucloud.plan import stacks as layout

NOT_INSTALLED = "nothing: the Pulumi SDK is not installed (pip install 'gpucloud[deploy]')"


def render(plan: Plan, files: Mapping[str, bytes] | None = None) -> dict[str, bytes]:
    inputs = layout.stack_inputs(plan, files or {})
    index = []
    for data in inputs:
        digest = hashlib.sha256(json.dumps(data, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        index.append({"stack": data["stack"], "shared": data["shared"],
                      "hosts": sum(len(p["hosts"]) for p in data["pools"]), "input_sha256": digest})
    out: dict[str, bytes] = {}
    from gpucloud.stack import dryrun

    try:
        documents, verified = dryrun.render_stacks(inputs)
        checked = "the program under pulumi.runtime.set_mocks"
    except ImportError:  # the Pulumi SDK missing: the graph alone is still worth reviewing
        documents, verified = dryrun.render_stacks(inputs, verify=False)
        checked = NOT_INSTALLED
    for row, doc in zip(index, documents):
        head = dryrun.document_head(doc)
        row["resources"] = head["resource_count"]
        row["protected"] = head["protected"]
        if head["resource_count"] > layout.MAX_RESOURCES:  # only with a provider.pod_size set too large
            row["over_limit"] = True
        row["checked_under_mocks"] = row["stack"] in verified
        out[f"pulumi/{row['stack']}.json"] = doc
    summary = {"project": layout.PROJECT, "max_resources_per_stack": layout.MAX_RESOURCES,
               "checked_by": checked, "stacks": index}
    out["pulumi/stacks.json"] = jsonout.dump_bytes(summary)
    return out


render.reads_rendered = True  # type: ignore[attr-defined]
