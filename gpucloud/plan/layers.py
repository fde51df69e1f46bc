"""Configuration layers: which rendered files feed which playbook, and the trigger hash of each. Pure.

A layer re-runs exactly when its trigger changes, so the trigger covers what the layer's playbook reads: the
rendered files under its folders (whatever the renderers produced), the software versions it installs, and which
hosts of the stack it runs on. The inventory's ``hosts.yml`` and each host's own variables (``host_vars/<host>.json``,
its addresses) are left out of the layers' contents on purpose: they count in the triggers of the stack that holds
the host, so adding a host, or moving one's addresses, re-runs the layers of its own stack only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Mapping

from gpucloud.plan import Plan

# (layer, folders of the plan it reads, software versions it installs), in the order of playbooks/site.yml; each
# layer runs playbooks/<layer>.yml. Every role reads its settings from the inventory's group_vars, so every layer
# reads inventory/; compute installs the plan's slurm.conf and gres.conf on the GPU nodes (slurm_config, slurmd) and
# the IMEX peer lists and rack batches on NVL72 trays (imex).
LAYERS: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = (
    ("common", ("inventory/",), ("os",)),
    ("fabric", ("inventory/", "fabric/"), ("doca_ofed",)),
    ("storage", ("inventory/", "storage/"), ("lustre_client",)),
    ("slurm", ("inventory/", "slurm/"), ("slurm", "enroot", "pyxis")),
    ("compute", ("inventory/", "slurm/", "imex/"), ("slurm", "enroot", "pyxis", "nvidia_driver", "cuda",
                                                     "fabric_manager", "dcgm")),
    ("monitoring", ("inventory/", "monitoring/"), ()),
)
# Files of those folders no role reads: hosts.yml (per-host changes come from host_vars), and imex/domains.json (the
# domains as data, with their tenants: a tenant edit must not converge every tray again).
EXCLUDED = ("inventory/hosts.yml", "imex/domains.json")
HOST_VARS = "inventory/host_vars/"
# The key of layer_contents' answer that holds each host's own variables' digest, by host name.
HOSTS = "hosts"


def playbook(layer: str) -> str:
    return f"playbooks/{layer}.yml"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def layer_contents(plan: Plan, files: Mapping[str, bytes]) -> dict[str, dict]:
    """Per layer: the digest of its input files and versions, independent of the stack."""
    out = {}
    software = plan.spec.software
    for name, folders, version_keys in LAYERS:
        paths = sorted(p for p in files if p.startswith(folders) and p not in EXCLUDED and not p.startswith(HOST_VARS))
        versions = {k: getattr(software, k) for k in version_keys}
        blob = json.dumps({"files": [[p, _sha(files[p])] for p in paths], "versions": versions},
                          sort_keys=True).encode()
        out[name] = {"digest": _sha(blob), "files": len(paths), "folders": list(folders), "versions": versions}
    out[HOSTS] = {p[len(HOST_VARS):].rsplit(".", 1)[0]: _sha(files[p]) for p in files if p.startswith(HOST_VARS)}
    return out


def stack_layers(contents: Mapping[str, dict], hosts_digest: str, limit: str | None) -> list[dict]:
    """The layers of one stack with their triggers (the layer's content digest + the stack's hosts)."""
    out = []
    for name, _, _ in LAYERS:
        c = contents[name]
        trigger = _sha(f"{name}\n{c['digest']}\n{hosts_digest}\n{limit or ''}".encode())
        out.append({"name": name, "playbook": playbook(name), "limit": limit, "trigger": trigger,
                    "files": c["files"], "folders": c["folders"]})
    return out


def hosts_digest(names, own: Mapping[str, str] | None = None) -> str:
    """The stack's hosts, and the digest of each one's own variables (``own``: layer_contents' ``HOSTS``)."""
    h = hashlib.sha256()
    for n in names:
        h.update(n.encode())
        if own and n in own:
            h.update(b" " + own[n].encode())
        h.update(b"\n")
    return h.hexdigest()
