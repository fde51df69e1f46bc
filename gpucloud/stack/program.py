"""The Pulumi program of one stack: stack input (gpucloud.plan.stacks) -> components.

``infra/__main__.py`` (a real deployment) and the dry-run (under mocks) both call ``build``, so the dry-run shows
exactly what `pulumi up` would declare.
"""

from __future__ import annotations

from typing import Any

import pulumi

from gpucloud.stack import components as c
from gpucloud.stack import graph


def secret_config_key(secret: str) -> str:
    """The Pulumi config key that holds a secret the spec names: 'bmc-password' -> 'gpucloud:bmc-password'."""
    return f"gpucloud:{secret}"


def _pool(raw: dict[str, Any], provider: c.ProviderArgs) -> c.NodePoolArgs:
    return c.NodePoolArgs(name=raw["name"], model=raw["model"], image=raw["image"], roles=tuple(raw["roles"]),
                          hosts=tuple((h, b) for h, b in raw["hosts"]), provider=provider,
                          protect=raw["protect"])


def cluster_args(data: dict[str, Any], password: pulumi.Input[str] | None) -> c.ClusterArgs:
    prov = data["provider"]
    provider = c.ProviderArgs(kind=prov["kind"], username=prov["username"], password=password,
                              verify_tls=prov["verify_tls"], ca_bundle=prov["ca_bundle"])
    pools = [_pool(p, provider) for p in data["pools"]]
    kinds = [graph.pool_kind(raw) for raw in data["pools"]]
    control = tuple(p for p, k in zip(pools, kinds) if k == "control")
    servers = tuple(p for p, k in zip(pools, kinds) if k == "storage")
    compute = tuple(p for p, k in zip(pools, kinds) if k == "compute")
    filesystems = tuple(c.FilesystemArgs(name=f["name"], kind=f["kind"], mount=f["mount"], capacity=f["capacity"],
                                         pools=tuple(f["pools"]) if f["pools"] is not None else None,
                                         settings=f["settings"]) for f in data["storage"])
    return c.ClusterArgs(
        cluster=data["cluster"], part=data["part"], pools=compute,
        control=c.ControlPlaneArgs(control) if control else None,
        storage=c.StorageArgs(filesystems, servers) if (filesystems or servers) else None,
        layers=tuple(c.LayerArgs(name=x["name"], playbook=x["playbook"], trigger=x["trigger"], limit=x["limit"])
                     for x in data["layers"]),
    )


def build(data: dict[str, Any], password: pulumi.Input[str] | None) -> c.Cluster:
    """Declare one stack. ``password`` is the BMC password as a secret Output (from Pulumi config)."""
    return c.Cluster(data["stack"], cluster_args(data, password))
