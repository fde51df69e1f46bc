"""How a Plan is cut into Pulumi stacks, and the JSON-able input of each stack's program. Pure; no Pulumi import.

A small cluster is one stack named after it. A cluster whose resources would pass ``MAX_RESOURCES`` in one stack (or
whose spec sets ``provider.pod_size``) becomes a ``shared`` stack (control plane, storage, every pool that is not
pure compute) plus one stack per pod: ``pod_size`` scalable units of one compute pool, cut by host position exactly
as the inventory's ``su_<pool>_<nnn>`` groups are, so a pod's hosts never move when a pool grows.

The stack input is everything the program reads; the dry-run hashes it to know whether a stack changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from gpucloud.plan import Plan, PoolPlan
from gpucloud.plan import layers
from gpucloud.plan.groups import group_name  # --limit names the inventory's groups

MAX_RESOURCES = 2000
PROJECT = "gpucloud"
# Pools with any of these roles live in the shared stack: they serve the whole cluster.
SHARED_ROLES = frozenset({"login", "slurm-controller", "slurmdbd", "subnet-manager", "monitoring", "storage-server",
                          "provisioner"})
CONTROL_ROLES = frozenset({"login", "slurm-controller", "slurmdbd", "subnet-manager", "monitoring", "provisioner"})
# Hosts whose loss destroys data: their node resources are protected.
STATEFUL_ROLES = frozenset({"slurmdbd", "storage-server"})
# Resources per host (BareMetalNode component + its Redfish resource) and per stack (cluster, pool, control plane,
# storage, layers component and one command per layer, with room to spare).
PER_HOST = 2
PER_STACK = 40
DEFAULT_SU = 32  # pods of pools without a compute fabric are cut in blocks of this many hosts times pod_size


@dataclass(frozen=True)
class Member:
    """The hosts of one pool that belong to one stack."""

    pool: PoolPlan
    first: int  # index into pool.hosts
    stop: int
    groups: tuple[str, ...]  # inventory groups that cover exactly these hosts

    @property
    def hosts(self):
        return self.pool.hosts[self.first:self.stop]


@dataclass(frozen=True)
class StackPart:
    name: str  # 'lab' for a single stack, else 'shared' or '<pool>-pod<nnn>'
    stack_name: str  # the Pulumi stack name
    shared: bool  # holds the control plane and storage
    members: tuple[Member, ...]

    @property
    def host_count(self) -> int:
        return sum(m.stop - m.first for m in self.members)

    @property
    def limit(self) -> str | None:
        """Ansible --limit for this stack's hosts; None when the stack holds the whole cluster."""
        if self.name == self.stack_name and self.shared:
            return None
        return ",".join(g for m in self.members for g in m.groups)


def _is_shared(pp: PoolPlan) -> bool:
    return bool(SHARED_ROLES & set(pp.pool.roles))


def _scalable_unit(plan: Plan, pp: PoolPlan) -> int:
    fabric = plan.spec.fabrics.get(pp.pool.fabric or "")
    return fabric.scalable_unit if fabric is not None else DEFAULT_SU


def scalable_units_per_pod_stack(plan: Plan) -> int:
    """Scalable units per pod: the spec's, else as many as keep a pod stack under MAX_RESOURCES."""
    if plan.spec.provider.pod_size:
        return plan.spec.provider.pod_size
    su = max((_scalable_unit(plan, pp) for pp in plan.pools if not _is_shared(pp)), default=DEFAULT_SU)
    return max(1, (MAX_RESOURCES - PER_STACK) // (PER_HOST * su))


def estimate(host_count: int, pools: int) -> int:
    return PER_STACK + pools + host_count * PER_HOST


def estimates(plan: Plan) -> list[dict]:
    """The stack split with each stack's resource estimate, without running Pulumi (plan.md, the diff)."""
    return [{"stack": part.stack_name, "hosts": part.host_count, "shared": part.shared,
             "resources": estimate(part.host_count, len(part.members))} for part in split(plan)]


def split(plan: Plan) -> tuple[StackPart, ...]:
    """The stacks of a plan, shared first then pods in pool order. Linear in hosts (one slice per pod)."""
    cluster = plan.spec.name
    if not plan.spec.provider.pod_size and estimate(plan.host_count, len(plan.pools)) <= MAX_RESOURCES:
        members = tuple(Member(pp, 0, len(pp.hosts), (group_name("pool", pp.pool.name),)) for pp in plan.pools)
        return (StackPart(cluster, cluster, True, members),)
    size = scalable_units_per_pod_stack(plan)
    shared = tuple(Member(pp, 0, len(pp.hosts), (group_name("pool", pp.pool.name),))
                   for pp in plan.pools if _is_shared(pp))
    parts = [StackPart("shared", f"{cluster}-shared", True, shared)]
    for pp in plan.pools:
        if _is_shared(pp) or not pp.hosts:
            continue
        su = _scalable_unit(plan, pp)
        per_pod = su * size
        hosts = pp.hosts
        # Hosts are in position order; a pod is a run of positions [k*per_pod, (k+1)*per_pod).
        i = 0
        while i < len(hosts):
            pod = hosts[i].position // per_pod
            j = i
            while j < len(hosts) and hosts[j].position // per_pod == pod:
                j += 1
            if pp.pool.fabric in plan.spec.fabrics:
                sus = sorted({h.position // su for h in hosts[i:j]})
                groups = tuple(group_name("su", f"{pp.pool.name}_{n:03}") for n in sus)
            elif i == 0 and j == len(hosts):
                groups = (group_name("pool", pp.pool.name),)
            else:  # the inventory has scalable-unit groups only for fabric pools: name the hosts (an Ansible
                # --limit reads gpu[1:4] as a slice of a group, not as a host range)
                groups = tuple(h.name for h in hosts[i:j])
            name = f"{pp.pool.name}-pod{pod:03}"
            parts.append(StackPart(name, f"{cluster}-{name}", False, (Member(pp, i, j, groups),)))
            i = j
    return tuple(parts)


def _storage(plan: Plan) -> list[dict]:
    out = []
    for fs in plan.spec.storage:
        out.append({"name": fs.name, "kind": fs.kind, "mount": fs.mount, "capacity": fs.capacity,
                    "pools": list(fs.pools) if fs.pools is not None else None,
                    "settings": {k: v for k, v in sorted(fs.settings.items())}})
    return out


def stack_input(plan: Plan, part: StackPart, contents: Mapping[str, dict]) -> dict:
    """Everything the program needs to declare one stack, as plain JSON-able data."""
    spec = plan.spec
    prov = spec.provider
    pools = []
    for m in part.members:
        pool = m.pool.pool
        roles = set(pool.roles)
        pools.append({
            "name": pool.name, "model": pool.model, "image": pool.image, "roles": sorted(roles),
            "control": bool(CONTROL_ROLES & roles), "storage_server": "storage-server" in roles,
            "protect": bool(STATEFUL_ROLES & roles),
            "hosts": [[h.name, h.bmc] for h in m.hosts],
        })
    names = (h.name for m in part.members for h in m.hosts)
    out = {
        "project": PROJECT,
        "cluster": spec.name,
        "part": part.name,
        "stack": part.stack_name,
        "shared": part.shared,
        "provider": {"kind": prov.kind, "username": prov.username, "password_secret": prov.password,
                     "verify_tls": prov.verify_tls, "ca_bundle": prov.ca_bundle},
        "pools": pools,
        "storage": _storage(plan) if part.shared else [],
        "layers": layers.stack_layers(contents, layers.hosts_digest(names, contents.get(layers.HOSTS)), part.limit),
    }
    p = plan.provision
    if p is not None:
        # Where each installed node of the stack phones home (the base plus its name) and how long its resource
        # waits; absent where the plan has no provisioning server, so those stacks are as they were.
        installed = p.installed
        out["phone_home"] = {"base": p.phone_home_base, "timeout": p.phone_home_timeout, "server": p.server,
                             "hosts": [h.name for m in part.members for h in m.hosts if h.name in installed]}
    return out


def stack_inputs(plan: Plan, files: Mapping[str, bytes]) -> list[dict]:
    """The input of every stack; ``files`` are the other renderers' output (the layers hash them)."""
    contents = layers.layer_contents(plan, files)
    return [stack_input(plan, part, contents) for part in split(plan)]
