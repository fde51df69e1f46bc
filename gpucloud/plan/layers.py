"""Configuration layers: which rendered files feed which playbook, and the trigger hash of each. Pure.

A layer re-runs exactly when its trigger changes, so the trigger covers what the layer's playbook reads: the
rendered files under its folders (whatever the renderers produced), the software versions it installs, and which
hosts of the stack it runs on. The inventory's ``hosts.yml`` counts by its groups' variables (the settings every role
reads); its hosts, their groups and each host's own variables (its addresses) are left out of the layers' contents on
purpose: they count in the triggers of the stack that holds the host, so adding a host, or moving one's addresses,
re-runs the layers of its own stack only.
"""

from __future__ import annotations

import hashlib
import json
from typing import Mapping

from gpucloud.plan import Plan

# (layer, folders of the plan it reads, software versions it installs), in the order of playbooks/site.yml; each
# layer runs playbooks/<layer>.yml. Every role reads its settings from the inventory's group variables, so every
# layer reads inventory/; compute installs the plan's slurm.conf and gres.conf on the GPU nodes (slurm_config, slurmd) and
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
# Files of those folders no role reads as a whole: hosts.yml (its group variables count; per-host changes count in
# the stack's hosts), and imex/domains.json (the domains as data, with their tenants: a tenant edit must not converge
# every tray again).
INVENTORY = "inventory/hosts.yml"
EXCLUDED = (INVENTORY, "imex/domains.json")
# The key of layer_contents' answer that holds each host's own variables' digest, by host name.
HOSTS = "hosts"


def playbook(layer: str) -> str:
    return f"playbooks/{layer}.yml"


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def inventory_variables(data: bytes) -> tuple[dict[str, dict], dict[str, dict]]:
    """The variables of a rendered inventory (render/inventory.py's hosts.yml, JSON): each group's, by group name
    (``all`` included), and each host's own, by host name (hosts with none left out)."""
    groups: dict[str, dict] = {}
    hosts: dict[str, dict] = {}

    def walk(name: str, body) -> None:
        body = body or {}
        if body.get("vars"):
            groups[name] = body["vars"]
        for host, own in (body.get("hosts") or {}).items():
            if own:
                hosts[host] = own
        for child, sub in (body.get("children") or {}).items():
            walk(child, sub)

    for name, body in json.loads(data).items():
        walk(name, body)
    return groups, hosts


def _canonical(data) -> bytes:
    return json.dumps(data, sort_keys=True, separators=(",", ":")).encode()


def layer_contents(plan: Plan, files: Mapping[str, bytes]) -> dict[str, dict]:
    """Per layer: the digest of its input files and versions, independent of the stack."""
    out = {}
    software = plan.spec.software
    groups, own = inventory_variables(files[INVENTORY]) if INVENTORY in files else ({}, {})
    for name, folders, version_keys in LAYERS:
        paths = sorted(p for p in files if p.startswith(folders) and p not in EXCLUDED)
        entries = [[p, _sha(files[p])] for p in paths]
        if INVENTORY in files and INVENTORY.startswith(folders):
            entries.append([f"{INVENTORY} group variables", _sha(_canonical(groups))])
        versions = {k: getattr(software, k) for k in version_keys}
        blob = json.dumps({"files": entries, "versions": versions}, sort_keys=True).encode()
        out[name] = {"digest": _sha(blob), "files": len(entries), "folders": list(folders), "versions": versions}
    out[HOSTS] = {host: _sha(_canonical(v)) for host, v in own.items()}
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
