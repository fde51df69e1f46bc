"""The typed, frozen model of a schema-valid spec, with every default applied in one place.

Each object keeps ``path``: where it came from in the spec, so checks and planners can point findings at a line.
"""

from __future__ import annotations

import ipaddress
import posixpath
import re
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from gpucloud import catalog
from gpucloud.findings import Path

SIZE_UNITS = {"K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
              "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_SIZE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s?([KMGTPE]i?)B$")


def parse_size(text: str) -> int:
    """'200TiB' -> bytes."""
    m = _SIZE.match(text)
    if not m:
        raise ValueError(f"not a size: {text!r}")
    # Exact arithmetic: float() would round 1.1PB and overflow on a 400-digit number.
    return int(Fraction(m.group(1)) * SIZE_UNITS[m.group(2)])


def normal_path(text: str) -> str:
    """An absolute path in one spelling: '/scratch/.', '/scratch/', '//scratch' and '/x/../scratch' are '/scratch'.

    posixpath.normpath, except that a leading '//' (which POSIX leaves to the system) is '/' as on Linux."""
    path = posixpath.normpath(text)
    return "/" + path.lstrip("/") if path.startswith("//") else path


def parse_duration_minutes(text: str) -> int | None:
    """Slurm time string -> minutes; None for UNLIMITED."""
    if text == "UNLIMITED":
        return None
    days = 0
    if "-" in text:
        d, text = text.split("-", 1)
        days = int(d)
        parts = [int(p) for p in text.split(":")]
        h, m, s = (parts + [0, 0])[:3]
        return days * 1440 + h * 60 + m + (1 if s else 0)
    parts = [int(p) for p in text.split(":")]
    if len(parts) == 1:
        return parts[0]
    if len(parts) == 2:  # MM:SS
        return parts[0] + (1 if parts[1] else 0)
    return parts[0] * 60 + parts[1] + (1 if parts[2] else 0)


@dataclass(frozen=True)
class Network:
    name: str
    cidr: ipaddress.IPv4Network
    path: Path
    vlan: int | None = None
    gateway: ipaddress.IPv4Address | None = None
    pool_prefix: int = 0
    mtu: int | None = None
    domain: str | None = None
    # ipoib only
    rail_prefix: int = 0
    mode: str | None = None


@dataclass(frozen=True)
class Rack:
    name: str = "r{rack:03}"
    first: int = 1
    nodes_per_rack: int = 4
    first_u: int = 2


@dataclass(frozen=True)
class Rollout:
    """How `gpucloud apply --allow-replace` replaces the pool's nodes (gpucloud.plan.rollout plans the batches)."""

    max_unavailable: int | str | None = None  # a count, a percentage ("10%"), or None for the default
    drain_timeout: int = 3600  # seconds a drained batch may take to finish its jobs


@dataclass(frozen=True)
class NodePool:
    name: str
    id: int
    model: str
    count: int
    start: int
    hostname: str
    exclude: frozenset[int]
    roles: tuple[str, ...]
    rack: Rack
    image: str | None
    fabric: str | None  # None until the model resolves the default
    features: tuple[str, ...]
    path: Path
    id_explicit: bool = False
    rollout: Rollout = field(default_factory=Rollout)
    # The model with the spec's own models and the pool's overrides applied; None when it cannot be resolved
    # (an unknown model or a bad override: the catalog checks report it).
    hardware: catalog.ServerModel | None = field(default=None, compare=False)

    def hostname_for(self, index: int) -> str:
        return self.hostname.format(index=index)

    @property
    def indices(self) -> range:
        return range(self.start, self.start + self.count)


@dataclass(frozen=True)
class SubnetManager:
    kind: str = "opensm"
    routing_engine: str = "ftree"
    pool: str | None = None


@dataclass(frozen=True)
class Roce:
    """An Ethernet fabric's routing, addresses and lossless-traffic settings (schema: $defs/roce)."""

    cidr: str
    rail_prefix: int | None
    loopbacks: str
    spine_asn: int = 4200000000
    leaf_asn_base: int = 4200001000
    lossless_priority: int = 3
    dscp: int = 26
    cnp_priority: int = 6
    cnp_dscp: int = 48
    ecn_min_bytes: int = 1048576
    ecn_max_bytes: int = 2097152
    ecn_probability: int = 5
    pfcwd_detection_ms: int = 200
    pfcwd_restoration_ms: int = 200
    pfcwd_action: str = "drop"
    mtu: int = 9000
    host_cable: str = "5m"
    fabric_cable: str = "40m"


def _roce(raw: dict | None) -> Roce | None:
    if raw is None:
        return None
    ecn, wd, cable = raw.get("ecn", {}), raw.get("pfc_watchdog", {}), raw.get("cable_length", {})
    d = Roce(cidr="", rail_prefix=None, loopbacks="")
    return Roce(
        cidr=raw["cidr"], rail_prefix=raw.get("rail_prefix"), loopbacks=raw["loopbacks"],
        spine_asn=raw.get("spine_asn", d.spine_asn), leaf_asn_base=raw.get("leaf_asn_base", d.leaf_asn_base),
        lossless_priority=raw.get("lossless_priority", d.lossless_priority), dscp=raw.get("dscp", d.dscp),
        cnp_priority=raw.get("cnp_priority", d.cnp_priority), cnp_dscp=raw.get("cnp_dscp", d.cnp_dscp),
        ecn_min_bytes=ecn.get("min_bytes", d.ecn_min_bytes), ecn_max_bytes=ecn.get("max_bytes", d.ecn_max_bytes),
        ecn_probability=ecn.get("probability", d.ecn_probability),
        pfcwd_detection_ms=wd.get("detection_ms", d.pfcwd_detection_ms),
        pfcwd_restoration_ms=wd.get("restoration_ms", d.pfcwd_restoration_ms),
        pfcwd_action=wd.get("action", d.pfcwd_action), mtu=raw.get("mtu", d.mtu),
        host_cable=cable.get("host", d.host_cable), fabric_cable=cable.get("fabric", d.fabric_cable),
    )


@dataclass(frozen=True)
class Fabric:
    name: str
    kind: str
    switch: str
    rate: str | None
    topology: str
    scalable_unit: int
    oversubscription: tuple[int, int]
    tiers: str | int
    subnet_manager: SubnetManager
    split: str
    path: Path
    # (leaves, spines) of a spine-leaf group (three tiers, DGX SuperPOD GB200 RA); None: the usual pods
    spine_leaf_groups: tuple[int, int] | None = None
    roce: Roce | None = None  # kind: ethernet only


@dataclass(frozen=True)
class Partition:
    name: str
    pools: tuple[str, ...]
    default: bool
    max_time: str | None
    default_time: str | None
    priority_tier: int | None
    exclusive: bool
    path: Path


@dataclass(frozen=True)
class Accounting:
    enabled: bool = False
    database_password: str | None = None  # the secret's name, never a value
    retention_months: int = 12


@dataclass(frozen=True)
class StateSave:
    filesystem: str  # a storage filesystem's name
    directory: str = "slurmctld"


@dataclass(frozen=True)
class Slurm:
    cluster_name: str
    partitions: tuple[Partition, ...]
    accounting: Accounting
    topology: str
    gres_autodetect: bool
    enroot: bool
    pyxis: bool
    health_check_interval: int
    path: Path = ("slurm",)
    state_save: StateSave | None = None
    # Site settings for slurm.conf and slurmdbd.conf: (key as written, value as Slurm reads it), sorted by key
    # case-insensitively; gpucloud.checks.slurm_settings refuses the keys the plan owns.
    settings: tuple[tuple[str, str], ...] = ()
    dbd_settings: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Filesystem:
    name: str
    kind: str
    mount: str
    pools: tuple[str, ...] | None
    capacity: int | None  # bytes
    options: tuple[str, ...]
    path: Path
    # kind-specific settings, as written (lustre: fsname, mgs, lnet, bandwidth; nfs: server, export, version, ...),
    # except nfs export, normalised like mount
    settings: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


@dataclass(frozen=True)
class Tenant:
    name: str
    description: str
    pools: tuple[str, ...]
    partitions: tuple[str, ...]
    users: tuple[str, ...]
    gpu_limit: int | None
    max_time: str | None
    priority: int | None
    pkey: int | None
    storage_quota: tuple[tuple[str, int], ...]  # (filesystem, bytes)
    inode_quota: tuple[tuple[str, int], ...]
    path: Path
    project_id: int | None = None  # storage project id; None: derived from the name by the storage planner


@dataclass(frozen=True)
class Repository:
    name: str
    url: str
    suite: str
    components: tuple[str, ...]
    key: str | None  # keyring path on the node
    fingerprint: str | None
    packages: tuple[str, ...]


@dataclass(frozen=True)
class Software:
    os: str = "ubuntu-22.04"
    nvidia_driver: str | None = None
    cuda: str | None = None
    fabric_manager: str | None = None
    dcgm: str | None = None
    doca_ofed: str | None = None
    slurm: str | None = None
    enroot: str | None = None
    pyxis: str | None = None
    lustre_client: str | None = None
    mirror: str | None = None  # base URL of a site mirror for every repository
    repositories: tuple[Repository, ...] = ()


@dataclass(frozen=True)
class Provider:
    kind: str = "none"
    username: str | None = None
    password: str | None = None  # secret name
    verify_tls: bool = True
    ca_bundle: str | None = None
    pod_size: int | None = None


@dataclass(frozen=True)
class Provisioning:
    ssh_keys: tuple[str, ...] = ()
    mirror: str = "http://archive.ubuntu.com/ubuntu"
    http_port: int = 8080
    disk: str = "largest"
    # Seconds the Redfish node resource waits, after a node's PXE boot, for its installed system to phone home.
    phone_home_timeout: int = 3600


@dataclass(frozen=True)
class HostHardware:
    """What a node's BMC reported (clusters/discovered/<name>.yaml): the MAC the node boots from and all of its MACs."""
    mac: str
    macs: tuple[str, ...]


@dataclass(frozen=True)
class Spec:
    name: str
    metadata: dict[str, Any]
    networks: dict[str, Network]
    pools: tuple[NodePool, ...]
    fabrics: dict[str, Fabric]
    slurm: Slurm
    storage: tuple[Filesystem, ...]
    tenants: tuple[Tenant, ...]
    software: Software
    provider: Provider
    source: str = ""
    # hardware.models, resolved (models that failed to resolve are left out) ...
    models: dict[str, catalog.ServerModel] = field(default_factory=dict, compare=False)
    # ... and what failed, for the catalog checks: (path, message, hint)
    hardware_errors: tuple[tuple[Path, str, str], ...] = field(default=(), compare=False)
    provisioning: Provisioning = Provisioning()
    # Discovered MACs by host name, from clusters/discovered/<name>.yaml (gpucloud.spec.discovered); empty without one.
    discovered: dict[str, HostHardware] = field(default_factory=dict, hash=False, compare=False)

    def pool(self, name: str) -> NodePool | None:
        for p in self.pools:
            if p.name == name:
                return p
        return None

    def pools_with_role(self, role: str) -> tuple[NodePool, ...]:
        return tuple(p for p in self.pools if role in p.roles)


def _network(name: str, raw: dict) -> Network:
    cidr = ipaddress.IPv4Network(raw["cidr"], strict=False)
    path = ("networks", name)
    if name == "ipoib":
        rail_prefix = raw.get("rail_prefix", min(cidr.prefixlen + 3, 30))
        pool_prefix = raw.get("pool_prefix", min(rail_prefix + 4, 30))
        return Network(name, cidr, path, pool_prefix=pool_prefix, mtu=raw.get("mtu"),
                       rail_prefix=rail_prefix, mode=raw.get("mode", "datagram"))
    gateway = raw.get("gateway")
    return Network(
        name, cidr, path, vlan=raw.get("vlan"),
        gateway=ipaddress.IPv4Address(gateway) if gateway else None,
        pool_prefix=raw.get("pool_prefix", min(cidr.prefixlen + 4, 30)),
        mtu=raw.get("mtu"), domain=raw.get("domain"),
    )


def _models(raw: dict, errors: list) -> dict[str, catalog.ServerModel]:
    """hardware.models in spec order; a model may build on an earlier one."""
    out: dict[str, catalog.ServerModel] = {}
    for name, fields in raw.items():
        try:
            out[name] = catalog.spec_model(name, fields, out)
        except catalog.HardwareError as exc:
            errors.append((("hardware", "models", name, *exc.where), exc.message, exc.hint))
    return out


def _hardware(i: int, raw: dict, models: dict, errors: list) -> catalog.ServerModel | None:
    """The pool's model with its overrides; None (and an error unless the model is unknown) when it fails."""
    base = models.get(raw["model"]) or catalog.SERVERS.get(raw["model"])
    if base is None or "hardware" not in raw:
        return base
    try:
        return catalog.apply_fields(base, raw["model"], raw["hardware"])
    except catalog.HardwareError as exc:
        errors.append((("node_pools", i, "hardware", *exc.where), exc.message, exc.hint))
        return None


def _pool(i: int, raw: dict, has_compute_fabric: bool, hw: catalog.ServerModel | None = None) -> NodePool:
    rack = raw.get("rack", {})
    name = raw["name"]
    fabric = raw.get("fabric")
    if fabric is None:
        fabric = "compute" if has_compute_fabric and hw is not None and hw.rails else "none"
    return NodePool(
        name=name,
        id=raw.get("id", i),
        id_explicit="id" in raw,
        model=raw["model"],
        count=raw["count"],
        start=raw.get("start", 1),
        hostname=raw.get("hostname", name + "{index:03}"),
        exclude=frozenset(raw.get("exclude", ())),
        roles=tuple(raw.get("roles", ("compute",))),
        # A rack-scale NVLink model fills a rack with one NVLink domain's trays unless the spec says otherwise.
        rack=Rack(name=rack.get("name", "r{rack:03}"), first=rack.get("first", 1),
                  nodes_per_rack=rack.get("nodes_per_rack", hw.nvlink.trays if hw and hw.nvlink else 4),
                  first_u=rack.get("first_u", 2)),
        image=raw.get("image"),
        fabric=fabric,
        features=tuple(raw.get("features", ())),
        path=("node_pools", i),
        rollout=Rollout(max_unavailable=raw.get("rollout", {}).get("max_unavailable"),
                        drain_timeout=raw.get("rollout", {}).get("drain_timeout", 3600)),
        hardware=hw,
    )


def _fabric(name: str, raw: dict) -> Fabric:
    sm = raw.get("subnet_manager", {})
    over = raw.get("oversubscription", "1:1").split(":")
    return Fabric(
        name=name, kind=raw.get("kind", "infiniband"), switch=raw["switch"], rate=raw.get("rate"),
        topology=raw.get("topology", "rail-optimized-fat-tree"), scalable_unit=raw.get("scalable_unit", 32),
        oversubscription=(int(over[0]), int(over[1])), tiers=raw.get("tiers", "auto"),
        subnet_manager=SubnetManager(kind=sm.get("kind", "opensm"), routing_engine=sm.get("routing_engine", "ftree"),
                                     pool=sm.get("pool")),
        split=raw.get("split", "auto"), path=("fabric", name), roce=_roce(raw.get("roce")),
        spine_leaf_groups=(raw["spine_leaf_groups"]["leaves"], raw["spine_leaf_groups"]["spines"])
        if "spine_leaf_groups" in raw else None,
    )


def _slurm(name: str, raw: dict, has_fabric: bool, nvlink: bool = False) -> Slurm:
    acc = raw.get("accounting", {})
    containers = raw.get("containers", {})
    parts = tuple(
        Partition(name=p["name"], pools=tuple(p["pools"]), default=p.get("default", False),
                  max_time=p.get("max_time"), default_time=p.get("default_time"),
                  priority_tier=p.get("priority_tier"), exclusive=p.get("exclusive", False),
                  path=("slurm", "partitions", i))
        for i, p in enumerate(raw.get("partitions", ()))
    )
    topology = raw.get("topology", "auto")
    if topology == "auto":
        # One block per NVLink domain where a pool has rack-scale NVLink: a job inside a domain talks over NVLink.
        topology = "block" if nvlink else "tree" if has_fabric else "none"
    return Slurm(
        cluster_name=raw.get("cluster_name", name), partitions=parts,
        accounting=Accounting(enabled=acc.get("enabled", False),
                              database_password=(acc.get("database_password") or {}).get("secret"),
                              retention_months=acc.get("retention_months", 12)),
        topology=topology, gres_autodetect=raw.get("gres_autodetect", False),
        enroot=containers.get("enroot", False), pyxis=containers.get("pyxis", False),
        health_check_interval=raw.get("health_check_interval", 300),
        state_save=StateSave(raw["state_save"]["filesystem"], raw["state_save"].get("directory", "slurmctld"))
        if "state_save" in raw else None,
        settings=_settings(raw.get("settings", {})), dbd_settings=_settings(raw.get("dbd_settings", {})),
    )


def setting_value(value: object) -> str:
    """A setting's value as a Slurm config file spells it: booleans YES/NO, integral numbers without a fraction."""
    if isinstance(value, bool):
        return "YES" if value else "NO"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _settings(raw: dict) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(((str(k), setting_value(v)) for k, v in raw.items()), key=lambda kv: (kv[0].lower(), kv[0])))


def _filesystem(i: int, raw: dict) -> Filesystem:
    common = {"name", "kind", "mount", "pools", "capacity", "options"}
    settings = {k: v for k, v in sorted(raw.items()) if k not in common}
    if isinstance(settings.get("export"), str):
        settings["export"] = normal_path(settings["export"])
    # Paths in one spelling, so that checks compare them and every planner and renderer writes the same one.
    return Filesystem(
        name=raw["name"], kind=raw["kind"], mount=normal_path(raw["mount"]),
        pools=tuple(raw["pools"]) if "pools" in raw else None,
        capacity=parse_size(raw["capacity"]) if "capacity" in raw else None,
        options=tuple(raw.get("options", ())), path=("storage", i), settings=settings,
    )


def _tenant(i: int, raw: dict) -> Tenant:
    return Tenant(
        name=raw["name"], description=raw.get("description", ""), pools=tuple(raw.get("pools", ())),
        partitions=tuple(raw.get("partitions", ())), users=tuple(raw.get("users", ())),
        gpu_limit=raw.get("gpu_limit"), max_time=raw.get("max_time"), priority=raw.get("priority"),
        pkey=int(raw["pkey"], 16) if "pkey" in raw else None,
        storage_quota=tuple(sorted((k, parse_size(v)) for k, v in raw.get("storage_quota", {}).items())),
        inode_quota=tuple(sorted(raw.get("inode_quota", {}).items())),
        path=("tenants", i),
        project_id=raw.get("project_id"),
    )


def build(data: dict, source: str = "") -> Spec:
    """Build the model from schema-valid data. Only call after schema validation passed."""
    fabrics = {name: _fabric(name, raw) for name, raw in sorted(data.get("fabric", {}).items())}
    has_compute = "compute" in fabrics
    sw = data.get("software", {})
    prov = data.get("provider", {})
    errors: list = []
    models = _models(data.get("hardware", {}).get("models", {}), errors)
    pools = tuple(_pool(i, raw, has_compute, _hardware(i, raw, models, errors))
                  for i, raw in enumerate(data["node_pools"]))
    inst = data.get("provisioning", {})
    return Spec(
        name=data["name"],
        metadata=dict(data.get("metadata", {})),
        networks={n: _network(n, raw) for n, raw in sorted(data["networks"].items())},
        pools=pools,
        fabrics=fabrics,
        slurm=_slurm(data["name"], data.get("slurm", {}), has_compute,
                     any(p.hardware is not None and p.hardware.nvlink is not None and "compute" in p.roles
                         for p in pools)),
        storage=tuple(_filesystem(i, raw) for i, raw in enumerate(data.get("storage", ()))),
        tenants=tuple(_tenant(i, raw) for i, raw in enumerate(data.get("tenants", ()))),
        software=Software(**{"os": "ubuntu-22.04", **sw,
                             "fabric_manager": sw.get("fabric_manager", sw.get("nvidia_driver")),
                             "repositories": tuple(
                                 Repository(name=r["name"], url=r["url"], suite=r["suite"],
                                            components=tuple(r.get("components", ())), key=r.get("key"),
                                            fingerprint=r.get("fingerprint"), packages=tuple(r["packages"]))
                                 for r in sw.get("repositories", ()))}),
        provider=Provider(kind=prov.get("kind", "none"), username=prov.get("username"),
                          password=(prov.get("password") or {}).get("secret"),
                          verify_tls=prov.get("verify_tls", True), ca_bundle=prov.get("ca_bundle"),
                          pod_size=prov.get("pod_size")),
        source=source,
        models=models,
        hardware_errors=tuple(errors),
        provisioning=Provisioning(**{**inst, "ssh_keys": tuple(inst.get("ssh_keys", ()))}),
    )
