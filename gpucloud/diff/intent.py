"""Settings of the spec: networks, software, fabric, Slurm, storage, tenants and provider, each change classified.

Each table maps a setting to (impact, which hosts, why). Slurm and storage settings defer to the planners' own
tables (gpucloud.plan.slurm_impact, gpucloud.plan.storage_impact) through gpucloud.diff.external when those know the
setting; the entries here cover what the spec says before it becomes a config line.
"""

from __future__ import annotations

from functools import partial
from typing import Callable, Iterator

from gpucloud.diff import external
from gpucloud.impact import Impact
from gpucloud.diff.model import Change
from gpucloud.diff.side import Side
from gpucloud.hostlist import compress

Selector = Callable[[Side], list[str]]
Rule = tuple[Impact, Selector, str]

_ALL: Selector = Side.all_pools
_GPU: Selector = Side.gpu_pools
_SLURM: Selector = Side.slurm_pools
_NODES: Selector = Side.partition_pools
_CTL: Selector = lambda s: s.role_pools("slurm-controller")  # noqa: E731
_DBD: Selector = lambda s: s.role_pools("slurmdbd")  # noqa: E731
_NONE: Selector = lambda s: []  # noqa: E731

SOFTWARE: dict[str, Rule] = {
    "os": (Impact.REIMAGE, _ALL, "a new operating system means a new image on every host"),
    "nvidia_driver": (Impact.DRAIN_REBOOT, _GPU, "kernel module: the GPUs must be idle, so drain and reboot"),
    "fabric_manager": (Impact.DRAIN_REBOOT, Side.nvswitch_pools,
                       "must match the driver; NVSwitch systems need idle GPUs to restart it"),
    "cuda": (Impact.NONE, lambda s: sorted(set(s.gpu_pools()) | set(s.role_pools("login"))),
             "user-space toolkit, installed beside the running one"),
    "dcgm": (Impact.RESTART, _GPU, "nv-hostengine and the exporter restart; jobs keep running"),
    "doca_ofed": (Impact.DRAIN_REBOOT, Side.hca_pools, "HCA kernel drivers: links drop, so drain and reboot"),
    "slurm": (Impact.RESTART, _SLURM, "upgrade slurmdbd first, then slurmctld, then slurmd (at most two releases "
                                      "apart); running jobs survive"),
    "enroot": (Impact.NONE, _NODES, "user-space tool, picked up by the next job"),
    "pyxis": (Impact.RESTART, _NODES, "SPANK plugin, loaded when slurmd starts: restart slurmd"),
    "lustre_client": (Impact.DRAIN_REBOOT, lambda s: sorted({p for fs in s.spec.get("storage", {}).values()
                                                              if fs.get("kind") == "lustre"
                                                              for p in s.mount_pools(fs)}),
                      "kernel modules: unmount Lustre, so drain and reboot"),
    # Where packages come from, not which version: apt sources are rewritten and nothing restarts.
    "mirror": (Impact.NONE, _ALL, "apt sources point at the new mirror; installed packages stay as they are"),
    "repositories": (Impact.NONE, _ALL, "apt sources rewritten; installed packages stay as they are"),
}

NETWORK: dict[str, Rule] = {
    "vlan": (Impact.DRAIN_REBOOT, _ALL, "switch ports and host interfaces move to the new VLAN together"),
    "mtu": (Impact.DRAIN_REBOOT, _ALL, "interfaces restart with the new MTU; switches must carry it first"),
    "mode": (Impact.DRAIN_REBOOT, _ALL, "IPoIB mode change restarts the interfaces"),
    "gateway": (Impact.RESTART, _ALL, "routes are reloaded on every host"),
    "domain": (Impact.RESTART, _ALL, "host names change their domain: DNS and daemons that cache it restart"),
    "cidr": (Impact.NONE, _NONE, "host addresses follow; each readdressed host is listed under hosts"),
    "pool_prefix": (Impact.NONE, _NONE, "host addresses follow; each readdressed host is listed under hosts"),
    "rail_prefix": (Impact.NONE, _NONE, "host addresses follow; each readdressed host is listed under hosts"),
}

FABRIC: dict[str, Rule] = {
    key: (Impact.HARDWARE, Side.hca_pools, "the switch layout and cabling change; see fabric/ for the new plan")
    for key in ("kind", "switch", "rate", "topology", "scalable_unit", "oversubscription", "tiers", "split",
                "spine_leaf_groups")
}
# An Ethernet fabric's RoCE settings (DSCP, the lossless priority, PFC, ECN, MTU) drive the switches' QoS tables and the
# hosts' NIC settings alike: both sides change in one window, and RoCE traffic loses its lossless class while they
# disagree.
FABRIC["roce"] = (Impact.RESTART, Side.hca_pools, "switch QoS (config_db.json) and the hosts' NIC settings "
                                                  "(roce_host) change together; jobs on the fabric may stall "
                                                  "until both sides agree: drain the fabric's pools first")
# A RoCE Ethernet fabric's settings (fabric.<name>.roce, as plan.json's resolved spec names them), each with what
# it changes; the hosts are the pools on that fabric. QoS lives on both sides of every cable: the switches'
# config_db.json (DSCP_TO_TC_MAP, PFC, the ECN queue) and each host's NICs (roce_host: mlnx_qos, ECN, cma_roce_tos,
# NCCL_IB_TC), and while the two disagree RoCE traffic has no lossless class.
_QOS_WHOLE = ("traffic-disrupting on the whole fabric: every switch's config_db.json and every host's NIC QoS "
              "(roce_host: mlnx_qos, ECN, cma_roce_tos, NCCL_IB_TC) change, and while switches and hosts disagree "
              "RoCE traffic has no lossless class (drops, retransmits, NCCL timeouts): drain every node on the "
              "fabric, apply all switches and hosts in one maintenance window (not rolling; no reboot), then resume")
_SWITCH_QOS = ("every switch's config_db.json changes ({what}); reloading a switch's QoS pauses the traffic through "
               "it: apply one switch at a time, the hosts keep their settings")
_BGP = ("BGP: {what}; each changed switch's bgpd restarts and its sessions reset (peers use remote-as external, so "
        "they follow without a change of their own){more}")
ROCE: dict[str, tuple[Impact, str]] = {
    "dscp": (Impact.DRAIN_REBOOT, _QOS_WHOLE),
    "lossless_priority": (Impact.DRAIN_REBOOT, _QOS_WHOLE),
    "cnp_dscp": (Impact.DRAIN_REBOOT, _QOS_WHOLE),
    "cnp_priority": (Impact.DRAIN_REBOOT, _QOS_WHOLE),
    "mtu": (Impact.DRAIN_REBOOT, "every switch port's MTU (host MTU + 100) and every host's fabric interfaces "
                                 "change: switches first, then the drained hosts; a host with the larger MTU before "
                                 "its leaf drops its large packets, so drain every node on the fabric"),
    "cidr": (Impact.DRAIN_REBOOT, "every host's fabric addresses and routes and every leaf's subnet change: drain "
                                  "every node on the fabric, apply switches and hosts in one window"),
    "rail_prefix": (Impact.DRAIN_REBOOT, "every host's fabric addresses and routes and every leaf's subnet change: "
                                         "drain every node on the fabric, apply switches and hosts in one window"),
    "ecn_min_bytes": (Impact.RESTART, _SWITCH_QOS.format(what="WRED_PROFILE: ECN marking thresholds")),
    "ecn_max_bytes": (Impact.RESTART, _SWITCH_QOS.format(what="WRED_PROFILE: ECN marking thresholds")),
    "ecn_probability": (Impact.RESTART, _SWITCH_QOS.format(what="WRED_PROFILE: ECN marking probability")),
    "pfcwd_detection_ms": (Impact.RESTART, _SWITCH_QOS.format(what="PFC_WD: the PFC watchdog")),
    "pfcwd_restoration_ms": (Impact.RESTART, _SWITCH_QOS.format(what="PFC_WD: the PFC watchdog")),
    "pfcwd_action": (Impact.RESTART, _SWITCH_QOS.format(what="PFC_WD: the PFC watchdog")),
    "host_cable": (Impact.RESTART, _SWITCH_QOS.format(what="CABLE_LENGTH: the leaves' lossless buffer headroom")),
    "fabric_cable": (Impact.RESTART, _SWITCH_QOS.format(what="CABLE_LENGTH: the lossless buffer headroom")),
    "spine_asn": (Impact.RESTART, _BGP.format(what="every spine changes its AS", more=
                                              "; one spine at a time keeps every leaf's other uplinks carrying the "
                                              "traffic (ECMP), with less bandwidth meanwhile")),
    "leaf_asn_base": (Impact.RESTART, _BGP.format(what="every leaf changes its AS", more=
                                                  ": while a leaf's sessions come back its hosts reach no other "
                                                  "SU on that rail, so drain the SU (or the fabric) first")),
    "loopbacks": (Impact.RESTART, _BGP.format(what="every switch's router id (loopback) changes", more=
                                              "; one switch at a time, leaves with their SU drained")),
}
FABRIC_SM_KEYS = ("kind", "routing_engine", "pool")  # fabric.<name>.subnet_manager.<key>
FABRIC_SM: Rule = (Impact.RESTART, Side.sm_pools, "subnet manager restarts with the new settings; routes are "
                                                  "recomputed, traffic pauses briefly")

SLURM: dict[str, Rule] = {
    "cluster_name": (Impact.DESTROYS_DATA, _CTL, "slurmctld refuses state saved under another ClusterName: the "
                                                 "queue and running jobs' state are lost; accounting keeps the "
                                                 "old name's history apart"),
    "topology": (Impact.RESTART, _CTL, "TopologyPlugin is read when slurmctld starts"),
    "gres_autodetect": (Impact.RESTART, _NODES, "gres.conf changes need slurmd restarted"),
    "enroot": (Impact.RESTART, _NODES, "plugstack.conf changes are read when slurmd starts"),
    "pyxis": (Impact.RESTART, _NODES, "plugstack.conf changes are read when slurmd starts"),
    "health_check_interval": (Impact.RECONFIGURE, _NONE, "HealthCheckInterval"),
    "accounting.enabled": (Impact.RESTART, lambda s: sorted(set(_CTL(s)) | set(_DBD(s))),
                           "AccountingStorageType is read when slurmctld starts"),
    "accounting.database_password": (Impact.RESTART, _DBD, "slurmdbd reads the password when it starts"),
    "accounting.retention_months": (Impact.RESTART, _DBD, "purge settings are read when slurmdbd starts"),
    "state_save": (Impact.RESTART, _CTL, "StateSaveLocation moves: stop slurmctld on every controller, copy the "
                                         "saved state to the new folder, then start them, or the queue is lost"),
    "state_save.filesystem": (Impact.RESTART, _CTL, "StateSaveLocation moves: stop slurmctld on every controller, "
                                                    "copy the saved state to the new folder, then start them"),
    "state_save.directory": (Impact.RESTART, _CTL, "StateSaveLocation moves: stop slurmctld on every controller, "
                                                   "copy the saved state to the new folder, then start them"),
}
# Spec settings -> the slurm.conf key or file they become, to ask gpucloud.plan.slurm_impact first.
SLURM_KEYS = {"topology": "TopologyPlugin", "gres_autodetect": "gres.conf", "enroot": "plugstack.conf",
              "pyxis": "plugstack.conf", "health_check_interval": "HealthCheckInterval",
              "accounting.enabled": "AccountingStorageType", "accounting.database_password": "slurmdbd.conf",
              "accounting.retention_months": "slurmdbd.conf", "state_save": "StateSaveLocation",
              "state_save.filesystem": "StateSaveLocation", "state_save.directory": "StateSaveLocation"}
# Site settings (slurm.settings, slurm.dbd_settings) -> the file they go into; each key is classified on its own.
SITE_SETTINGS = {"settings": "slurm.conf", "dbd_settings": "slurmdbd.conf"}
PARTITION: Rule = (Impact.RECONFIGURE, _NONE, "partition settings apply with scontrol reconfigure")
PARTITION_FIELD = {"max_time": "MaxTime", "default_time": "DefaultTime", "priority_tier": "PriorityTier",
                   "exclusive": "OverSubscribe", "default": "Default", "pools": "Nodes"}

STORAGE: dict[str, Rule] = {
    "kind": (Impact.DESTROYS_DATA, _NONE, "a different kind of filesystem: the old one and its data go away"),
    "fsname": (Impact.DESTROYS_DATA, _NONE, "a different Lustre filesystem: the old one is no longer mounted"),
    "mount": (Impact.DRAIN_REBOOT, _NONE, "clients unmount and mount again: drain the nodes first"),
    "options": (Impact.DRAIN_REBOOT, _NONE, "mount options apply on the next mount: drain the nodes first"),
    "mgs": (Impact.DRAIN_REBOOT, _NONE, "clients mount from the new MGS: drain the nodes first"),
    "lnet": (Impact.DRAIN_REBOOT, _NONE, "LNet moves to other interfaces: reload lnet, so drain the nodes"),
    "server": (Impact.DRAIN_REBOOT, _NONE, "clients mount from the new server: drain the nodes first"),
    "export": (Impact.DRAIN_REBOOT, _NONE, "clients mount the new export: drain the nodes first"),
    "version": (Impact.DRAIN_REBOOT, _NONE, "NFS version is chosen at mount time: drain the nodes first"),
    "raid": (Impact.DESTROYS_DATA, _NONE, "the local array is rebuilt: its data is lost"),
    "filesystem": (Impact.DESTROYS_DATA, _NONE, "the local filesystem is recreated: its data is lost"),
}
STORAGE_DEFAULT: Rule = (Impact.NONE, _NONE, "applied live")

TENANT: dict[str, Rule] = {
    "partitions": (Impact.RECONFIGURE, _NONE, "AllowAccounts of the partitions in slurm.conf"),
    "pools": (Impact.RECONFIGURE, _NONE, "partition access in slurm.conf"),
    "pkey": (Impact.RESTART, Side.sm_pools, "the subnet manager reloads partitions.conf; the tenant's jobs lose "
                                            "their old partition key"),
}
_LIVE_ACCOUNTING: Rule = (Impact.NONE, _NONE, "sacctmgr change through tenants.sh, applied live")
TENANT.update({
    "users": _LIVE_ACCOUNTING, "gpu_limit": _LIVE_ACCOUNTING, "max_time": _LIVE_ACCOUNTING,
    "priority": _LIVE_ACCOUNTING,
    "description": (Impact.NONE, _NONE, "plan.md and the account's description only"),
    "inode_quota": (Impact.NONE, _NONE, "the quota script sets the new inode limits, live"),
    "project_id": (Impact.NONE, _NONE, "the quota script re-tags every file of the tenant with the new project id: "
                                       "live, but it walks the whole tree (hours on a large filesystem)"),
})
TENANT_DEFAULT: Rule | None = None  # every tenant setting has its own class (tests/unit/test_impact_coverage.py)

PROVIDER: dict[str, Rule] = {
    key: (Impact.NONE, _NONE, "how machines are provisioned; nothing on the hosts changes")
    for key in ("kind", "username", "password", "verify_tls", "ca_bundle")
}
PROVIDER["pod_size"] = (Impact.REIMAGE, _ALL, "hosts move between Pulumi stacks: move their state first (`pulumi "
                                              "state move`), or the old stack deletes the machines and the new one "
                                              "provisions them again")
METADATA: dict[str, Rule] = {
    key: (Impact.NONE, _NONE, "plan.md and plan.json only; nothing on the cluster changes")
    for key in ("description", "site", "owner", "contact", "labels")
}


def _flat(record: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in record.items():
        if isinstance(v, dict) and k not in ("storage_quota", "inode_quota"):
            out.update(_flat(v, f"{prefix}{k}."))
        else:
            out[f"{prefix}{k}"] = v
    return out


def _change(section: str, subject: str, action: str, rule: Rule, side: Side, field: str = "",
            old=None, new=None, note: str = "") -> Change:
    impact, select, why = rule
    hosts, count = side.hosts_of(select(side))
    return Change(section, subject, action, impact, field=field, old=old, new=new, hosts=hosts, host_count=count,
                  note=note or why)


def _fields(section: str, subject: str, old: dict, new: dict, rules: dict[str, Rule], default: Rule | None,
            side: Side, hosts_for: Callable[[Rule], Rule] = lambda r: r) -> Iterator[Change]:
    fo, fn = _flat(old), _flat(new)
    for key in sorted(set(fo) | set(fn)):
        if fo.get(key) == fn.get(key):
            continue
        rule = rules.get(key, default)
        if rule is None:
            rule = (Impact.RESTART, _NONE, "")
        yield _change(section, subject, "change", hosts_for(rule), side, key, fo.get(key), fn.get(key))


def network_changes(old: Side, new: Side) -> Iterator[Change]:
    on, nn = old.doc.get("networks", {}), new.doc.get("networks", {})
    for name in sorted(set(on) | set(nn)):
        o = {k: v for k, v in on.get(name, {}).items() if k != "pool_blocks"}
        n = {k: v for k, v in nn.get(name, {}).items() if k != "pool_blocks"}
        if name not in on:
            yield Change("networks", f"network {name}", "add", Impact.DRAIN_REBOOT, new=n.get("cidr"),
                         note="hosts get an interface on the new network (listed under hosts)")
        elif name not in nn:
            yield Change("networks", f"network {name}", "remove", Impact.DRAIN_REBOOT, old=o.get("cidr"),
                         note="hosts lose their address on this network")
        elif name == "ipoib":
            # Only pools on the compute fabric have IPoIB interfaces.
            on_fabric = {k: (imp, lambda s: [p for p, rec in s.pools.items() if rec.get("rails")], why)
                         for k, (imp, _, why) in NETWORK.items()}
            yield from _fields("networks", f"network {name}", o, n, on_fabric, None, new)
        else:
            yield from _fields("networks", f"network {name}", o, n, NETWORK, None, new)


def software_changes(old: Side, new: Side) -> Iterator[Change]:
    so, sn = old.spec.get("software", {}), new.spec.get("software", {})
    for key in sorted(set(so) | set(sn)):
        if so.get(key) == sn.get(key):
            continue
        rule = SOFTWARE.get(key, (Impact.RESTART, _ALL, "package update"))
        if not rule[1](old) and not rule[1](new):
            # A pin for software no host runs (Fabric Manager without NVSwitch boards, a Lustre client without
            # Lustre): nothing is installed, so there is nothing to drain or restart. Fabric Manager's pin follows
            # the driver's unless the spec sets it; following, it is no change of its own.
            if key == "fabric_manager" and so.get(key) == so.get("nvidia_driver") and \
                    sn.get(key) == sn.get("nvidia_driver"):
                continue
            yield Change("software", "software", "change", Impact.NONE, field=key, old=so.get(key), new=sn.get(key),
                         note="no host of the plan runs it; the pin takes effect when a pool that needs it is added")
            continue
        yield _change("software", "software", "change", rule, new, key, so.get(key), sn.get(key))


def fabric_changes(old: Side, new: Side) -> Iterator[Change]:
    fo, fn = old.spec.get("fabric", {}), new.spec.get("fabric", {})
    for name in sorted(set(fo) | set(fn)):
        subject = f"fabric {name}"
        if name not in fo:
            yield _change("fabric", subject, "add", FABRIC["switch"], new, new=fn[name].get("switch"),
                          note="a new fabric: switches to rack and cable (see fabric/)")
        elif name not in fn:
            yield _change("fabric", subject, "remove", FABRIC["switch"], old, old=fo[name].get("switch"),
                          note="the fabric's switches and cables are taken out")
        else:
            sm: Rule = (FABRIC_SM[0], partial(Side.sm_pools, fabric=fn[name]), FABRIC_SM[2])
            rules = {**FABRIC, **{f"subnet_manager.{k}": sm for k in FABRIC_SM_KEYS}}
            if "ethernet" in (fo[name].get("kind"), fn[name].get("kind")):
                rules.update(_ethernet_rules(name))
            yield from _fields("fabric", subject, fo[name], fn[name], rules, None, new)


def _ethernet_rules(name: str) -> dict[str, Rule]:
    """An Ethernet fabric's rules: its own pools are the hosts (never the login or controller hosts off it), the
    layout keys are hardware as on InfiniBand, and each roce setting says what it changes."""
    on: Selector = partial(Side.fabric_pools, fabric=name)
    out: dict[str, Rule] = {key: (impact, on, why) for key, (impact, _, why) in FABRIC.items()
                            if impact is Impact.HARDWARE}
    out["switch"] = (Impact.HARDWARE, on, "a new switch model: every leaf and spine is replaced and recabled, and "
                                         "every switch gets a new config_db.json (hwsku, ports) and frr.conf; the "
                                         "fabric is down for the swap: drain every node on it")
    out.update({f"roce.{key}": (impact, on, why) for key, (impact, why) in ROCE.items()})
    return out


def fabric_layout_changes(old: Side, new: Side) -> Iterator[Change]:
    """Switches of the planned fabric that go away or move: existing cabling is redone. Growth that crosses a tier
    boundary (two tiers to three) does this, and a reviewer must see it as more than an addition."""
    fo = {**(old.doc.get("fabric") or {}), **(old.doc.get("ethernet") or {})}
    fn = {**(new.doc.get("fabric") or {}), **(new.doc.get("ethernet") or {})}
    for name in sorted(set(fo) & set(fn)):
        so = {s["name"]: s for s in fo[name].get("switches", ()) if isinstance(s, dict) and "name" in s}
        sn = {s["name"]: s for s in fn[name].get("switches", ()) if isinstance(s, dict) and "name" in s}
        gone = sorted(set(so) - set(sn))
        moved = sorted(k for k in set(so) & set(sn) if (so[k].get("rack"), so[k].get("u")) !=
                       (sn[k].get("rack"), sn[k].get("u")))
        tiers_o = (fo[name].get("summary") or {}).get("tiers")
        tiers_n = (fn[name].get("summary") or {}).get("tiers")
        if gone or moved or tiers_o != tiers_n:
            what = [f"tiers {tiers_o} -> {tiers_n}"] if tiers_o != tiers_n else []
            if gone:
                what.append(f"{len(gone):,} switch(es) of the current layout removed ({compress(gone)})")
            if moved:
                what.append(f"{len(moved):,} switch(es) move racks")
            ethernet = name in (new.doc.get("ethernet") or {})
            hosts, count = new.hosts_of(new.fabric_pools(name) if ethernet else new.hca_pools())
            yield Change("fabric", f"fabric {name}", "change", Impact.HARDWARE, field="switch layout",
                         old=f"{len(so):,} switches", new=f"{len(sn):,} switches", hosts=hosts, host_count=count,
                         note="; ".join(what) + ": existing switch-to-switch cables are redone, plan a maintenance "
                                                "window for the whole fabric")


def slurm_changes(old: Side, new: Side) -> Iterator[Change]:
    so, sn = old.spec.get("slurm", {}), new.spec.get("slurm", {})
    po, pn = so.get("partitions", {}), sn.get("partitions", {})
    settings_o = {k: v for k, v in so.items() if k not in ("partitions", *SITE_SETTINGS)}
    settings_n = {k: v for k, v in sn.items() if k not in ("partitions", *SITE_SETTINGS)}
    known = {k: (external.slurm_rule(SLURM_KEYS[k]) if k in SLURM_KEYS else None) or rule
             for k, rule in SLURM.items()}
    yield from _fields("slurm", "slurm", settings_o, settings_n, known, None, new)
    for field, file in SITE_SETTINGS.items():
        yield from _site_settings(field, file, so.get(field) or {}, sn.get(field) or {}, new)
    for name in sorted(set(po) | set(pn)):
        subject = f"partition {name}"
        if name not in po:
            yield _change("slurm", subject, "add", PARTITION, new, new=",".join(pn[name].get("pools", ())))
        elif name not in pn:
            yield _change("slurm", subject, "remove", PARTITION, old, old=",".join(po[name].get("pools", ())),
                          note="queued jobs in the partition are rejected; let it drain first")
        else:
            for key in sorted(set(po[name]) | set(pn[name])):
                if po[name].get(key) == pn[name].get(key):
                    continue
                setting = PARTITION_FIELD.get(key, key)
                rule = external.slurm_rule(setting) or (PARTITION[0], PARTITION[1], f"{setting}: {PARTITION[2]}")
                yield _change("slurm", subject, "change", rule, new, key, po[name].get(key), pn[name].get(key))


def _site_settings(field: str, file: str, old: dict, new: dict, side: Side) -> Iterator[Change]:
    """Changed keys of slurm.settings / slurm.dbd_settings, matched case-insensitively as Slurm reads them (a key
    whose spelling alone changed is no change), each classified by its own key."""
    o = {k.lower(): (k, v) for k, v in old.items()}
    n = {k.lower(): (k, v) for k, v in new.items()}
    for lower in sorted(set(o) | set(n)):
        ov, nv = o.get(lower, (None, None))[1], n.get(lower, (None, None))[1]
        if ov == nv:
            continue
        key = (n.get(lower) or o[lower])[0]
        rule = external.slurm_setting_rule(field, key)
        note = rule[2] if nv is not None else f"{rule[2]} (the key goes back to the plan's value or Slurm's default)"
        yield _change("slurm", f"slurm.{field} ({file})", "change", rule, side, key, ov, nv, note=note)


def storage_changes(old: Side, new: Side) -> Iterator[Change]:
    so, sn = old.spec.get("storage", {}), new.spec.get("storage", {})
    for name in sorted(set(so) | set(sn)):
        subject = f"filesystem {name}"
        if name not in so:
            fs = sn[name]
            hosts, count = new.hosts_of(new.mount_pools(fs))
            yield Change("storage", subject, "add", Impact.NONE, new=f"{fs.get('kind')} {fs.get('mount')}",
                         hosts=hosts, host_count=count, note="mounted on the listed hosts by the playbooks")
            continue
        fs = so[name]
        hosts, count = old.hosts_of(old.mount_pools(fs))
        if name not in sn:
            yield Change("storage", subject, "remove", Impact.DESTROYS_DATA, old=f"{fs.get('kind')} {fs.get('mount')}",
                         hosts=hosts, host_count=count,
                         note="unmounted everywhere and no longer managed: its data and the tenants' quotas on it "
                              "are gone for users; back it up first")
            continue
        new_hosts, new_count = new.hosts_of(new.mount_pools(sn[name]))
        for key in sorted(set(fs) | set(sn[name])):
            o, n = fs.get(key), sn[name].get(key)
            if o == n:
                continue
            rule = external.storage_rule(key, o, n) or STORAGE.get(key, STORAGE_DEFAULT)
            yield Change("storage", subject, "change", rule[0], field=key, old=o, new=n,
                         hosts=new_hosts if rule[0] is not Impact.NONE else "",
                         host_count=new_count if rule[0] is not Impact.NONE else 0, note=rule[2])


def _tenant_whole(side: Side, name: str, t: dict, action: str) -> Iterator[Change]:
    """A tenant that is added or removed: Slurm (slurm.conf's AllowAccounts on every Slurm host, slurm/tenants.sh on
    the controller), its IB partition key (OpenSM reads partitions.conf when it starts, so it restarts on its hosts)
    and its quotas (storage/quota/<fs>.sh), each a change of its own so each lands in its step with its hosts."""
    subject = f"tenant {name}"
    hosts, count = side.hosts_of(_SLURM(side))
    parts = ",".join(t.get("partitions") or t.get("pools") or ())
    if action == "add":
        yield Change("tenants", subject, "add", Impact.RECONFIGURE, new=parts, hosts=hosts, host_count=count,
                     note="install slurm.conf (AllowAccounts) on the Slurm hosts and scontrol reconfigure; run "
                          "slurm/tenants.sh on the controller for the account, QOS and users")
    else:
        yield Change("tenants", subject, "remove", Impact.RECONFIGURE, old=parts, hosts=hosts, host_count=count,
                     note="account and partition access removed (slurm.conf, scontrol reconfigure, then the account "
                          "in sacctmgr); the tenant's files on shared storage stay until someone deletes them")
    if t.get("pkey") and side.doc.get("fabric"):
        sm_hosts, sm_count = side.hosts_of(side.sm_pools())
        what = "gains" if action == "add" else "loses"
        yield Change("tenants", subject, action, Impact.RESTART, field="pkey",
                     old=t["pkey"] if action == "remove" else None, new=t["pkey"] if action == "add" else None,
                     hosts=sm_hosts, host_count=sm_count,
                     note=f"partitions.conf {what} the tenant's partition key: OpenSM restarts on its hosts to read "
                          "it (the standby takes over meanwhile)")
    for fs, quota in sorted((t.get("storage_quota") or {}).items()):
        yield Change("tenants", subject, action, Impact.NONE, field=f"storage_quota.{fs}",
                     old=quota if action == "remove" else None, new=quota if action == "add" else None,
                     note=f"run storage/quota/{fs}.sh: the tenant's project directory and quota"
                     if action == "add" else f"the quota on {fs} is no longer managed; the files stay")


def tenant_changes(old: Side, new: Side) -> Iterator[Change]:
    to, tn = old.spec.get("tenants", {}), new.spec.get("tenants", {})
    for name in sorted(set(to) | set(tn)):
        subject = f"tenant {name}"
        if name not in to:
            yield from _tenant_whole(new, name, tn[name], "add")
        elif name not in tn:
            yield from _tenant_whole(old, name, to[name], "remove")
        else:
            quotas = ("storage_quota",)
            yield from _fields("tenants", subject, {k: v for k, v in to[name].items() if k not in quotas},
                               {k: v for k, v in tn[name].items() if k not in quotas}, TENANT, TENANT_DEFAULT, new)
            yield from _quota_changes(name, to[name].get("storage_quota") or {}, tn[name].get("storage_quota") or {})


def _quota_changes(tenant: str, old: dict, new: dict) -> Iterator[Change]:
    for fs in sorted(set(old) | set(new)):
        a, b = old.get(fs), new.get(fs)
        if a == b:
            continue
        impact, why = external.quota_rule(tenant, fs, a, b) or (
            (Impact.NONE, "quota raised, added or lifted: applied live") if a is None or b is None or b > a else
            (Impact.DESTROYS_DATA, "quota lowered: below current use the tenant's writes fail until it deletes data"))
        yield Change("tenants", f"tenant {tenant}", "change", impact, field=f"storage_quota.{fs}", old=a, new=b,
                     note=why)


def metadata_changes(old: Side, new: Side) -> Iterator[Change]:
    """Who runs the cluster and where (description, site, owner, contact, labels): plan.md and plan.json change,
    nothing on the cluster does."""
    mo = old.doc.get("cluster", {}).get("metadata") or {}
    mn = new.doc.get("cluster", {}).get("metadata") or {}
    yield from _fields("metadata", "metadata", mo, mn, METADATA, METADATA["description"], new)


def provider_changes(old: Side, new: Side) -> Iterator[Change]:
    yield from _fields("provider", "provider", old.spec.get("provider", {}), new.spec.get("provider", {}), PROVIDER,
                       None, new)
