"""The Pulumi program of one stack: stack input (gpucloud.plan.stacks) -> components.

``infra/__main__.py`` (the program `pulumi` runs) and `gpucloud apply` (the same program, inline in the Automation
API) call ``declare``, which calls ``build``; the dry-run calls ``build`` under mocks, so it shows exactly what
`pulumi up` would declare.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pulumi

from gpucloud.stack import components as c
from gpucloud.stack import graph


def secret_config_key(secret: str) -> str:
    """The Pulumi config key that holds a secret the spec names: 'bmc-password' -> 'gpucloud:bmc-password'."""
    return f"gpucloud:{secret}"


def _pool(raw: dict[str, Any], provider: c.ProviderArgs, phone_home: graph.PhoneHome | None) -> c.NodePoolArgs:
    return c.NodePoolArgs(name=raw["name"], model=raw["model"], image=raw["image"], roles=tuple(raw["roles"]),
                          hosts=tuple((h, b) for h, b in raw["hosts"]), provider=provider,
                          protect=raw["protect"], phone_home=phone_home)


def cluster_args(data: dict[str, Any], password: pulumi.Input[str] | None) -> c.ClusterArgs:
    prov = data["provider"]
    provider = c.ProviderArgs(kind=prov["kind"], username=prov["username"], password=password,
                              verify_tls=prov["verify_tls"], ca_bundle=prov["ca_bundle"])
    phone_home = graph.PhoneHome.of(data.get("phone_home"))
    pools = [_pool(p, provider, phone_home) for p in data["pools"]]
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


def declare(project: Path) -> c.Cluster:
    """The whole program: load the spec named by the stack's config, plan it, declare this stack's part.

    Config: gpucloud:spec (path of the spec, relative to ``project``), gpucloud:stack (optional: which part of the
    plan's stack split; default the Pulumi stack name), and the BMC password as a secret under the name the spec
    gives it (provider.password.secret, e.g. `pulumi config set --secret gpucloud:bmc-password`).
    """
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan
    from gpucloud.plan import stacks as layout
    from gpucloud.render import render_all
    from gpucloud.write import write_tree

    config = pulumi.Config("gpucloud")
    spec = project / config.require("spec")
    checked = check_spec(spec)
    if checked.fails("error"):
        raise pulumi.RunError(f"the spec has errors; run `gpucloud validate {spec}`")
    plan = build_plan(checked.spec, tuple(checked.findings))
    files = render_all(plan)
    # The configuration layers run the playbooks with the plan folder's inventory: the plan must be on disk, and it
    # is the same plan whose files the layer triggers hash.
    write_tree(project / graph.plan_path(plan.spec.name), files)
    stacks = {data["stack"]: data for data in layout.stack_inputs(plan, files)}
    name = config.get("stack") or pulumi.get_stack()
    if name not in stacks:
        raise pulumi.RunError(f"stack {name!r} is not part of {plan.spec.name}'s plan; its stacks: "
                              f"{', '.join(stacks)}")
    secret = plan.spec.provider.password
    password = config.require_secret(secret) if secret else None
    cluster = build(stacks[name], password)
    pulumi.export("stack", name)
    pulumi.export("hosts", sum(len(p["hosts"]) for p in stacks[name]["pools"]))
    return cluster
