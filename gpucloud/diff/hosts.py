"""Pools and hosts: what is added, removed, moved or readdressed, compared per pool by host name.

Allocation is stable (a host's name, rack slot and addresses depend only on its pool and index), so growing a pool
adds hosts and changes nobody else; anything else that moves an existing host shows up here, host by host, in one
pass over each side's hosts (dictionaries, never all pairs).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Iterator

from gpucloud.diff import external, links
from gpucloud.impact import Impact
from gpucloud.diff.model import Change
from gpucloud.diff.side import Side
from gpucloud.hostlist import compress

_PLACE = ("rack", "slot", "u")
_NETS = ("management", "bmc", "storage", "ipoib")


def _index(side: Side) -> dict[str, dict]:
    return {h["name"]: h for h in side.doc.get("hosts", ())}


def data_on_removal(side: Side, pool: str) -> tuple[Impact, str]:
    """What removing hosts of ``pool`` does to data, spelled out per filesystem."""
    local_keep: list[str] = []
    local_scratch: list[str] = []
    shared: list[str] = []
    for name, fs in sorted(side.spec.get("storage", {}).items()):
        if pool not in side.mount_pools(fs):
            continue
        if fs.get("kind") == "local":
            (local_scratch if fs.get("job_scratch") else local_keep).append(f"{name} ({fs.get('mount')})")
        else:
            shared.append(name)
    parts = []
    if local_keep:
        parts.append("node-local data on " + ", ".join(local_keep) + " is lost with the hosts")
    if local_scratch:
        parts.append("job scratch " + ", ".join(local_scratch) + " is wiped (it holds nothing between jobs)")
    if shared:
        parts.append("shared filesystems " + ", ".join(shared) + " keep their data")
    if not parts:
        parts.append("no filesystem is planned on these hosts")
    return (Impact.DESTROYS_DATA if local_keep else Impact.HARDWARE), "; ".join(parts)


def _pool_desc(p: dict) -> str:
    return f"{p.get('hosts', 0)} x {p.get('model')}"


def _renames(old: Side, new: Side) -> dict[str, str]:
    """Removed pool -> added pool with the same model: probably a rename, which gpucloud carries out as remove+add."""
    gone = [n for n in old.pools if n not in new.pools]
    came = [n for n in new.pools if n not in old.pools]
    out: dict[str, str] = {}
    for g in gone:
        for c in came:
            if old.pools[g].get("model") == new.pools[c].get("model") and c not in out.values():
                out[g] = c
                break
    return out


def pool_changes(old: Side, new: Side) -> Iterator[Change]:
    old_hosts, new_hosts = _index(old), _index(new)
    added: dict[str, list[str]] = defaultdict(list)
    removed: dict[str, list[str]] = defaultdict(list)
    moved: dict[str, list[str]] = defaultdict(list)
    readdressed: dict[tuple[str, str], list[str]] = defaultdict(list)
    for name, h in new_hosts.items():
        o = old_hosts.get(name)
        if o is None or o.get("pool") != h.get("pool"):
            added[h["pool"]].append(name)
            if o is not None:
                removed[o["pool"]].append(name)
            continue
        if o == h:
            continue
        if any(o.get(k) != h.get(k) for k in _PLACE):
            moved[h["pool"]].append(name)
        for net in _NETS:
            if o.get(net) != h.get(net):
                readdressed[(h["pool"], net)].append(name)
    for name, o in old_hosts.items():
        if name not in new_hosts:
            removed[o["pool"]].append(name)

    renames = _renames(old, new)
    renamed_from = {v: k for k, v in renames.items()}
    for pool in sorted(set(old.pools) | set(new.pools)):
        o, n = old.pools.get(pool), new.pools.get(pool)
        if o is None:
            hint = (f"pool '{renamed_from[pool]}' was removed in the same change: a rename is carried out as "
                    f"remove + add; " if pool in renamed_from else "")
            yield Change("pools", f"pool {pool}", "add", Impact.HARDWARE, new=_pool_desc(new.pools[pool]),
                         hosts=compress(added[pool]), host_count=len(added[pool]),
                         note=hint + "rack, power and cable the new hosts, then provision them")
            yield _provision(pool, added[pool])
            continue
        if n is None:
            impact, data = data_on_removal(old, pool)
            hint = (f"pool '{renames[pool]}' with the same model is added: a rename is carried out as remove + add, "
                    f"the hosts are drained, removed and provisioned again under the new pool; "
                    if pool in renames else "drain, remove from Slurm, then decommission; ")
            yield Change("pools", f"pool {pool}", "remove", impact, old=_pool_desc(old.pools[pool]),
                         hosts=compress(removed[pool]), host_count=len(removed[pool]), note=hint + data)
            continue
        if added[pool]:
            recabled = links.recabled_count(old, new)
            note = ("new hosts only: existing hosts keep their names, addresses, rack slots and ports"
                    if not recabled else
                    f"new hosts; existing hosts keep their names, addresses and rack slots, but {recabled:,} existing "
                    "fabric link(s) are recabled (see the fabric change)")
            yield Change("pools", f"pool {pool}", "add", Impact.HARDWARE, field="hosts",
                         old=o.get("hosts"), new=n.get("hosts"), hosts=compress(added[pool]),
                         host_count=len(added[pool]), note=note)
            yield _provision(pool, added[pool])
        if removed[pool]:
            impact, data = data_on_removal(old, pool)
            yield Change("pools", f"pool {pool}", "remove", impact, field="hosts", old=o.get("hosts"),
                         new=n.get("hosts"), hosts=compress(removed[pool]), host_count=len(removed[pool]),
                         note="drain, remove from Slurm, then decommission; " + data)
        yield from _pool_fields(pool, o, n, old, new)
        if moved[pool]:
            yield Change("hosts", f"pool {pool}", "change", Impact.HARDWARE, field="rack position",
                         hosts=compress(moved[pool]), host_count=len(moved[pool]),
                         note="these hosts move to another rack or slot: physical move and recabling")
    slurm_pools = set(old.partition_pools()) | set(new.partition_pools())
    grown = sorted(p for p in slurm_pools if added.get(p) or removed.get(p))
    if grown:
        yield _slurm_nodes(new, grown)
    for (pool, net), names in sorted(readdressed.items()):
        if net == "bmc":
            # The provisioning stack keys a node on its BMC endpoint: a new one replaces the node (power off, PXE
            # install again), see gpucloud/stack/provider.py.
            yield Change("hosts", f"pool {pool}", "change", Impact.REIMAGE, field=f"{net} addresses",
                         hosts=compress(names), host_count=len(names),
                         note="BMC addresses change: set each BMC's new address, then the provisioning stack replaces "
                              "the node (drain, power off, install again); node-local data does not survive")
            continue
        yield Change("hosts", f"pool {pool}", "change", Impact.DRAIN_REBOOT, field=f"{net} addresses",
                     hosts=compress(names), host_count=len(names),
                     note="addresses change: drain, apply the new network configuration and DNS, reboot")


def _provision(pool: str, names: list[str]) -> Change:
    """New hosts are installed and converged before they take jobs: their own row in the provisioning step."""
    return Change("pools", f"pool {pool}", "add", Impact.REIMAGE, field="provisioning", hosts=compress(names),
                  host_count=len(names),
                  note="new hosts: pulumi up installs the OS, then the playbooks converge them and the acceptance "
                       "tests gate them into Slurm")


def _slurm_nodes(new: Side, pools: list[str]) -> Change:
    """Nodes that join or leave Slurm change slurm.conf's node lines; the Slurm planner's table says what that costs.
    Every host with a Slurm client (login nodes, slurmdbd) gets the new slurm.conf too, or its commands disagree
    with the controller about the nodes."""
    rule = external.slurm_rule("NodeName") or (
        Impact.RESTART, lambda s: sorted(set(s.partition_pools()) | set(s.role_pools("slurm-controller"))),
        "NodeName: slurmctld and every slurmd restart when nodes are added or removed")
    restarted = set(rule[1](new))
    clients = sorted(set(new.slurm_pools()) - restarted)
    hosts, count = new.hosts_of(restarted | set(clients))
    also = (f"; install the new slurm.conf on {', '.join(clients)} too (Slurm clients)" if clients else "")
    return Change("slurm", "slurm nodes", "change", rule[0], field="NodeName", hosts=hosts, host_count=count,
                  note=f"nodes of {', '.join(pools)} join or leave; {rule[2]}{also}")


def _pool_fields(pool: str, o: dict, n: dict, old: Side, new: Side) -> Iterator[Change]:
    hosts, count = new.hosts_of([pool])
    table = {
        "id": (Impact.REIMAGE, "the pool's address blocks follow its id: every host gets new addresses on every "
                               "network and HCA GUIDs, and with a new BMC address the provisioning stack replaces "
                               "(reinstalls) it"),
        "model": (Impact.HARDWARE, "different hardware: every host of the pool is replaced"),
        "image": (Impact.REIMAGE, "every host of the pool is reimaged"),
        "roles": (Impact.RESTART, "services start or stop on these hosts; restart their daemons"),
        "fabric": (Impact.HARDWARE, "the hosts are cabled to a different fabric"),
    }
    for key, (impact, note) in table.items():
        if o.get(key) != n.get(key):
            yield Change("pools", f"pool {pool}", "change", impact, field=key, old=o.get(key), new=n.get(key),
                         hosts=hosts, host_count=count, note=note)
    so, sn = old.spec.get("pools", {}).get(pool, {}), new.spec.get("pools", {}).get(pool, {})
    if so and sn and so.get("features") != sn.get("features"):
        yield Change("pools", f"pool {pool}", "change", Impact.RECONFIGURE, field="features",
                     old=so.get("features"), new=sn.get("features"), hosts=hosts, host_count=count,
                     note="node features in slurm.conf")
    if so and sn and so.get("rollout") != sn.get("rollout"):
        yield Change("pools", f"pool {pool}", "change", Impact.NONE, field="rollout", old=so.get("rollout"),
                     new=sn.get("rollout"),
                     note="how many nodes `gpucloud apply --allow-replace` takes out of service at once; nothing on "
                          "the hosts changes")
    if so and sn and so.get("hostname") != sn.get("hostname"):
        yield Change("pools", f"pool {pool}", "change", Impact.NONE, field="hostname", old=so.get("hostname"),
                     new=sn.get("hostname"),
                     note="hosts are renamed: listed as removed and added hosts, each with its own impact")
