"""imex/: the NVIDIA IMEX service's peer list for every NVLink domain, and the domains as planned data.

IMEX (the nvidia-imex service on every compute tray) lets GPUs of different trays map each other's memory over
NVLink. Every instance must list exactly the trays of its own NVLink domain in ``nodes_config.cfg`` (one address
a line), and all instances of a domain must list the same addresses in the same order (NVIDIA IMEX Service User
Guide, "Deployment Models", NVLink-domain-wide deployment): a peer list that crosses a domain's boundary never reaches
quorum. So the list is per rack, written once per domain from the plan, and holds only that rack's trays.
"""

from __future__ import annotations

import json

from gpucloud.hostlist import compress
from gpucloud.plan import Plan
from gpucloud.plan.hosts import nvlink_domains

IMEX_CONF_DIR = "/etc/nvidia-imex"


def nodes_config(peers: tuple[str, ...]) -> bytes:
    return ("\n".join(peers) + "\n").encode()


def domains_json(plan: Plan) -> bytes:
    doms = nvlink_domains(plan.pools)
    data = {
        "imex_conf_dir": IMEX_CONF_DIR,
        "imex_channels": plan.slurm.imex_channels,
        "domains": [
            {"name": d.name, "pool": d.pool, "hosts": compress(d.hosts), "trays": len(d.hosts), "full": d.full,
             "gpus": d.gpus, "rack_power_kw": d.rack_power_kw, "nmx": d.nmx,
             # NMX manages the NVLink switch trays: no Fabric Manager on the compute trays
             "fabric_manager": not d.nmx,
             "nodes_config": f"imex/{d.name}/nodes_config.cfg"}
            for d in doms
        ],
    }
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def render(plan: Plan) -> dict[str, bytes]:
    doms = nvlink_domains(plan.pools)
    if not doms:
        return {}
    files = {f"imex/{d.name}/nodes_config.cfg": nodes_config(d.peers) for d in doms}
    files["imex/domains.json"] = domains_json(plan)
    return files
