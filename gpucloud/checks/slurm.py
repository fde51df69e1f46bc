"""Checks: slurm. What slurmctld would refuse, and what it would silently accept but run wrongly.

``verify_rendered`` re-reads the rendered files the way slurmctld would and checks the mistakes slurmctld lets
through (GRES without GresTypes, gres.conf devices that do not match the GPU count, topology naming unknown nodes).
"""

from __future__ import annotations

from typing import Iterable, Mapping

from gpucloud.checks import check
from gpucloud.findings import Finding, choices_hint
from gpucloud.plan.slurm import slurm_release
from gpucloud.spec.model import Filesystem, NodePool, Spec, parse_duration_minutes

# Slurm's own releases as (major, minor). topology/block arrived in 23.11, but the topology.conf gpucloud writes
# for it sets BlockSizes=, which 24.05 brought (23.11 had BlockLevels= and refuses the key).
BLOCK_TOPOLOGY_SINCE = (24, 5)


def _compute_pools(spec: Spec) -> dict[str, NodePool]:
    return {p.name: p for p in spec.pools if "compute" in p.roles}


@check("slurm-partition-pool")
def partition_pools(spec: Spec) -> Iterable[Finding]:
    """Partitions hold only pools with the compute role (others run no slurmd; slurmctld refuses unknown nodes)."""
    compute = _compute_pools(spec)
    names = {p.name for p in spec.pools}
    for part in spec.slurm.partitions:
        for j, pool in enumerate(part.pools):
            if pool in names and pool not in compute:  # unknown names are reference-pool's finding
                yield Finding("slurm-partition-pool", "error", (*part.path, "pools", j),
                              f"pool '{pool}' has no 'compute' role, so it runs no slurmd and cannot be in "
                              f"partition '{part.name}'",
                              f"add 'compute' to the roles of pool '{pool}' or remove it from the partition")


@check("slurm-default-partition")
def default_partition(spec: Spec) -> Iterable[Finding]:
    """At most one partition is the default."""
    defaults = [part for part in spec.slurm.partitions if part.default]
    for part in defaults[1:]:
        yield Finding("slurm-default-partition", "error", (*part.path, "default"),
                      f"partition '{part.name}' is a second default partition (the first is '{defaults[0].name}')",
                      "mark only one partition 'default: true'")


@check("slurm-partition-time")
def partition_time(spec: Spec) -> Iterable[Finding]:
    """DefaultTime is not longer than MaxTime."""
    for part in spec.slurm.partitions:
        if part.default_time and part.max_time:
            d, m = parse_duration_minutes(part.default_time), parse_duration_minutes(part.max_time)
            if m is not None and (d is None or d > m):
                yield Finding("slurm-partition-time", "error", (*part.path, "default_time"),
                              f"partition '{part.name}': default_time {part.default_time} is longer than "
                              f"max_time {part.max_time}", "make default_time at most max_time")


@check("slurm-gres")
def gres(spec: Spec) -> Iterable[Finding]:
    """GPU servers list one CPU socket per GPU, so gres.conf gets one device file per GPU."""
    for pool in _compute_pools(spec).values():
        model = pool.hardware
        if model is None or not model.gpus:
            continue
        if model.gpu_socket and len(model.gpu_socket) != model.gpus:
            yield Finding("slurm-gres", "error", (*pool.path, "model"),
                          f"model '{model.name}' has {model.gpus} GPUs but socket affinity for "
                          f"{len(model.gpu_socket)}; gres.conf would list the wrong number of devices",
                          "set hardware gpu.sockets: one CPU socket per GPU")
        elif any(s >= model.sockets for s in model.gpu_socket):
            yield Finding("slurm-gres", "error", (*pool.path, "model"),
                          f"model '{model.name}' attaches a GPU to a CPU socket it does not have",
                          "set hardware gpu.sockets: one CPU socket per GPU")


@check("slurm-daemons")
def daemons(spec: Spec) -> Iterable[Finding]:
    """A slurm-controller host exists, and a slurmdbd host when accounting is on."""
    if not spec.slurm.partitions:
        return
    if not any("slurm-controller" in p.roles and p.count for p in spec.pools):
        yield Finding("slurm-daemons", "error", ("slurm",), "no pool has the 'slurm-controller' role",
                      "add 'slurm-controller' to the roles of a service pool (two hosts and slurm.state_save for "
                      "fail-over)")
    if spec.slurm.accounting.enabled and not any("slurmdbd" in p.roles and p.count for p in spec.pools):
        yield Finding("slurm-daemons", "error", ("slurm", "accounting", "enabled"),
                      "accounting is enabled but no pool has the 'slurmdbd' role",
                      "add 'slurmdbd' to the roles of a service pool, or disable accounting")


def _built(pool) -> int:
    return pool.count - len(pool.exclude & set(pool.indices))


def _reaches_lustre(spec: Spec, fs: Filesystem, pool: NodePool) -> bool:
    """The storage planner's rule for which pools mount a Lustre filesystem by default."""
    from gpucloud.plan.hosts import PoolPlan
    from gpucloud.plan.storage import lnet_interfaces, lustre_via

    if pool.hardware is None:  # asked only about pools with a known model
        return False
    return bool(lnet_interfaces(PoolPlan(pool, pool.hardware, ()), lustre_via(spec, fs)))


def _shared_filesystems(spec: Spec) -> list[str]:
    return [fs.name for fs in spec.storage if fs.kind in ("nfs", "lustre")]


@check("slurm-state-save")
def state_save(spec: Spec) -> Iterable[Finding]:
    """A backup slurmctld takes over from the state the primary saved, so with more than one controller that state
    lives on a filesystem every controller mounts (slurm.state_save), never on each one's local disk."""
    controllers = [p for p in spec.pools if "slurm-controller" in p.roles and _built(p)]
    ss = spec.slurm.state_save
    if ss is None:
        hosts = sum(_built(p) for p in controllers)
        if hosts > 1 and spec.slurm.partitions:
            shared = _shared_filesystems(spec)
            yield Finding("slurm-state-save", "error", (*controllers[0].path, "roles"),
                          f"{hosts} hosts run slurmctld but slurm.state_save names no shared filesystem: each would "
                          "keep its state on its own disk, and the backup would take over from stale or empty state",
                          "set slurm.state_save: {filesystem: <an nfs or lustre filesystem the controllers mount>}" +
                          (f" (here: {', '.join(shared)})" if shared else "; add one under storage") +
                          ", or run slurmctld on one host")
        return
    path = ("slurm", "state_save", "filesystem")
    fs = next((f for f in spec.storage if f.name == ss.filesystem), None)
    if fs is None:
        yield Finding("slurm-state-save", "error", path, f"state_save names unknown filesystem {ss.filesystem!r}",
                      choices_hint(ss.filesystem, _shared_filesystems(spec), "shared filesystems"))
        return
    if fs.kind not in ("nfs", "lustre"):
        yield Finding("slurm-state-save", "error", path,
                      f"filesystem {fs.name!r} is {fs.kind}: each controller would see its own disk",
                      "name an nfs or lustre filesystem that every controller mounts")
        return
    for pool in controllers:
        if fs.pools is not None and pool.name not in fs.pools:
            yield Finding("slurm-state-save", "error", path,
                          f"controller pool {pool.name!r} does not mount filesystem {fs.name!r}, where slurmctld "
                          "keeps its state", f"add {pool.name!r} to the pools of filesystem {fs.name!r}")
        elif fs.pools is None and fs.kind == "lustre" and pool.hardware is not None and not _reaches_lustre(spec, fs,
                                                                                                          pool):
            yield Finding("slurm-state-save", "error", path,
                          f"controller pool {pool.name!r} cannot reach Lustre filesystem {fs.name!r} (no adapter on "
                          "its LNet), so it does not mount it", "name an NFS filesystem the controllers mount")


@check("slurm-dbd-ha")
def dbd_backup(spec: Spec) -> Iterable[Finding]:
    """slurmdbd runs on one host: the plan gives each slurmdbd host a MariaDB of its own, and a backup slurmdbd
    (DbdBackupHost) would write accounting into a different database than the primary."""
    if not spec.slurm.accounting.enabled:
        return
    pools = [p for p in spec.pools if "slurmdbd" in p.roles and _built(p)]
    hosts = sum(_built(p) for p in pools)
    if hosts > 1:
        yield Finding("slurm-dbd-ha", "info", (*pools[0].path, "roles"),
                      f"{hosts} hosts have the slurmdbd role but slurmdbd runs on the first only, without "
                      "DbdBackupHost/AccountingStorageBackupHost: each host's MariaDB is its own, so a backup "
                      "slurmdbd would write to another database (slurmctld keeps accounting records while slurmdbd "
                      "is down and sends them when it is back)",
                      "nothing to do for a single slurmdbd; see docs/slurm.md for a replicated database")


@check("slurm-accounting")
def accounting(spec: Spec) -> Iterable[Finding]:
    """Tenant limits need accounting; slurmdbd needs its database password by reference."""
    acc = spec.slurm.accounting
    if acc.enabled and not acc.database_password:
        yield Finding("slurm-accounting", "warning", ("slurm", "accounting"),
                      "accounting has no database_password; slurmdbd would reach MariaDB without a password",
                      "add database_password: {secret: <name>} (the value stays in the secret store)")
    if not acc.enabled and spec.tenants and spec.slurm.partitions:
        yield Finding("slurm-accounting", "warning", ("tenants",),
                      "tenants are defined but Slurm accounting is off, so their GPU limits are not enforced",
                      "set slurm.accounting.enabled: true")


@check("slurm-topology")
def topology(spec: Spec) -> Iterable[Finding]:
    """The topology plugin fits the fabric and the Slurm version."""
    s = spec.slurm
    if s.topology == "tree" and not spec.fabrics:
        yield Finding("slurm-topology", "error", ("slurm", "topology"),
                      "topology 'tree' needs a planned fabric to describe the switches",
                      "add a fabric or set slurm.topology: none")
    if s.topology == "tree" and spec.fabrics:
        for pool in _compute_pools(spec).values():
            if pool.fabric in (None, "none"):
                yield Finding("slurm-topology", "warning", (*pool.path, "fabric"),
                              f"compute pool '{pool.name}' is on no fabric, so topology.conf cannot place its nodes"
                              " and Slurm will not schedule multi-node jobs across them well",
                              "attach the pool to a fabric")
    if s.topology == "block":
        v = slurm_release(spec.software.slurm)
        if v is None or v < BLOCK_TOPOLOGY_SINCE:
            yield Finding("slurm-topology", "error", ("slurm", "topology"),
                          f"topology 'block' needs Slurm 24.05 or later: its topology.conf sets BlockSizes, which "
                          f"23.11 does not know (software.slurm is {spec.software.slurm or 'not set'})",
                          "set software.slurm to 24.05 or later, or use topology: tree")


@check("slurm-containers")
def containers(spec: Spec) -> Iterable[Finding]:
    """pyxis runs containers through enroot."""
    if spec.slurm.pyxis and not spec.slurm.enroot:
        yield Finding("slurm-containers", "error", ("slurm", "containers", "pyxis"),
                      "pyxis needs enroot", "set slurm.containers.enroot: true")


@check("slurm-tenants")
def tenants(spec: Spec) -> Iterable[Finding]:
    """A tenant's dedicated pools are in a partition and its max_time fits its partitions."""
    parts = {p.name: p for p in spec.slurm.partitions}
    in_partition = {pool for p in spec.slurm.partitions for pool in p.pools}
    compute = _compute_pools(spec)
    for t in spec.tenants:
        for j, pool in enumerate(t.pools):
            if pool in compute and pool not in in_partition:
                yield Finding("slurm-tenants", "error", (*t.path, "pools", j),
                              f"pool '{pool}' is dedicated to tenant '{t.name}' but is in no partition, so its "
                              "jobs cannot run there", f"add a partition over pool '{pool}'")
        if t.max_time and t.partitions:
            wall = parse_duration_minutes(t.max_time)
            longest = [parse_duration_minutes(limit) for n in t.partitions
                       if n in parts and (limit := parts[n].max_time)]
            if wall is not None and longest and all(m is not None and wall > m for m in longest):
                yield Finding("slurm-tenants", "warning", (*t.path, "max_time"),
                              f"tenant '{t.name}' max_time {t.max_time} is longer than every partition it uses "
                              "allows", "lower the tenant's max_time or raise the partitions' max_time")


@check("slurm-tenant-user")
def tenant_users(spec: Spec) -> Iterable[Finding]:
    """A user is listed by one tenant only: the tenant becomes the user's default account."""
    owner: dict[str, str] = {}
    for t in spec.tenants:
        for j, user in enumerate(t.users):
            if user in owner and owner[user] != t.name:
                yield Finding("slurm-tenant-user", "error", (*t.path, "users", j),
                              f"user '{user}' is listed by tenants '{owner[user]}' and '{t.name}'; a user has one "
                              "default account, and the tenant script would switch it back and forth",
                              f"list '{user}' under one tenant (it can still be added to other accounts by hand)")
            owner.setdefault(user, t.name)


# --- post-render self-check ---------------------------------------------------------------------------------------

def _kv(line: str) -> dict[str, str]:
    out = {}
    for word in line.split():
        if "=" in word:
            k, v = word.split("=", 1)
            out[k.lower()] = v
    return out


def _expand(expr: str) -> list[str]:
    from gpucloud.hostlist import expand

    return expand(expr)


def _finding(message: str) -> Finding:
    return Finding("slurm-rendered", "error", ("slurm",), message, "this is a gpucloud bug; please report it")


def verify_rendered(files: Mapping[str, bytes]) -> list[Finding]:
    """Check rendered slurm/ files for what slurmctld accepts silently. Linear in the number of node groups,
    except topology.conf, whose node lists are expanded once."""
    conf = files.get("slurm/slurm.conf")
    if conf is None:
        return []
    problems: list[Finding] = []
    settings: dict[str, str] = {}
    node_lines = []
    for raw in conf.decode().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        kv = _kv(line)
        if "nodename" in kv:
            node_lines.append(kv)
        elif "partitionname" not in kv and len(kv) == 1:
            settings.update(kv)
    gres_types = set(filter(None, settings.get("grestypes", "").split(",")))
    gpus_per_group: dict[str, int] = {}
    for kv in node_lines:
        gres = kv.get("gres")
        if not gres:
            continue
        parts = gres.split(":")
        if parts[0] not in gres_types:
            problems.append(_finding(f"NodeName={kv['nodename']} has Gres={gres} but GresTypes does not list it"))
        gpus_per_group[kv["nodename"]] = int(parts[-1]) if parts[-1].isdigit() else 1
    gres_conf = files.get("slurm/gres.conf", b"").decode()
    devices: dict[str, int] = {}
    autodetect = False
    for raw in gres_conf.splitlines():
        line = raw.split("#", 1)[0].strip()
        kv = _kv(line)
        if kv.get("autodetect", "").lower() == "nvml" and "nodename" not in kv:
            autodetect = True
        if "nodename" not in kv:
            continue
        if "file" in kv:
            devices[kv["nodename"]] = devices.get(kv["nodename"], 0) + len(_expand(kv["file"]))
        elif "count" in kv:
            devices[kv["nodename"]] = devices.get(kv["nodename"], 0) + int(kv["count"])
    for group, gpus in gpus_per_group.items():
        if devices.get(group, 0) != gpus and not (autodetect and group not in devices):
            problems.append(_finding(f"gres.conf lists {devices.get(group, 0)} GPU device(s) for {group}, "
                                     f"slurm.conf says {gpus}"))
    for group in devices:
        if group not in gpus_per_group:
            problems.append(_finding(f"gres.conf lists devices for {group}, which has no Gres in slurm.conf"))
    topo = files.get("slurm/topology.conf")
    if topo is not None and settings.get("topologyplugin") in ("topology/tree", "topology/block"):
        problems.extend(_verify_topology(topo.decode(), [kv["nodename"] for kv in node_lines]))
    topo_yaml = files.get("slurm/topology.yaml")
    if topo_yaml is not None:
        problems.extend(_verify_topology_yaml(topo_yaml.decode(), [kv["nodename"] for kv in node_lines]))
    return problems


def _verify_topology_yaml(text: str, node_exprs: list[str]) -> list[Finding]:
    """topology.yaml: the cluster default holds every node (as topology.conf must), the others only known ones."""
    import yaml  # only plans with topology.yaml pay for the import

    problems = []
    for topo in yaml.safe_load(text) or []:
        entries = topo.get("tree", {}).get("switches", []) or topo.get("block", {}).get("blocks", [])
        lines = "\n".join(f"SwitchName={e.get('switch') or e.get('block')} Nodes={e['nodes']}" for e in entries
                          if "nodes" in e)
        found = _verify_topology(lines, node_exprs, f"topology.yaml (topology {topo.get('topology')})")
        problems += [f for f in found if topo.get("cluster_default") or "on no switch" not in f.message]
    return problems


def _verify_topology(text: str, node_exprs: list[str], name: str = "topology.conf") -> list[Finding]:
    known: set[str] = set()
    for expr in node_exprs:
        known.update(_expand(expr))
    placed: set[str] = set()
    problems = []
    for raw in text.splitlines():
        kv = _kv(raw.split("#", 1)[0])
        if "nodes" in kv:
            names = _expand(kv["nodes"])
            unknown = [n for n in names if n not in known]
            if unknown:
                where = kv.get("switchname") or kv.get("blockname") or "?"
                problems.append(_finding(f"{name} switch/block {where} names "
                                         f"{len(unknown)} unknown node(s), e.g. {unknown[0]}"))
            placed.update(names)
    missing = known - placed
    if missing:
        problems.append(_finding(f"{len(missing)} node(s) are on no switch in {name}, e.g. {min(missing)}"))
    return problems
