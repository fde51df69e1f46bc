"""What it takes for a changed Slurm setting to take effect: the table the diff reads, and a diff of two rendered
slurm/ folders classified with it.

Classes: ``reconfigure`` (install the files, one ``scontrol reconfigure``), ``restart-slurmctld``,
``restart-slurmd`` (every slurmd of the affected nodes, and slurmctld first where both are named),
``restart-slurmdbd``. Sources: slurm.conf(5) of 22.05 ("A restart of slurmctld is required ...", and NODE
CONFIGURATION: changing nodes requires restarting slurmctld and every slurmd); gres.conf, cgroup.conf and
plugstack.conf are read when slurmd (or the job step) starts. A node or partition attribute not listed is a restart
of both, the safe guess; a plain key not listed is a site setting (slurm.settings), classified by ``setting_impact``:
a plugin choice restarts the daemons, anything else is a reconfigure, as slurm.conf(5) says.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Mapping

from gpucloud.impact import Impact


class Effect(str, Enum):
    """What a Slurm change takes, finer than an Impact: which daemon restarts. ``impact`` is its diff class."""

    NONE = "none"
    RECONFIGURE = "reconfigure"
    RESTART_SLURMDBD = "restart-slurmdbd"
    RESTART_SLURMCTLD = "restart-slurmctld"
    RESTART_SLURMD = "restart-slurmd"

    @property
    def impact(self) -> Impact:
        return _IMPACT_OF[self]


_IMPACT_OF = {Effect.NONE: Impact.NONE, Effect.RECONFIGURE: Impact.RECONFIGURE, Effect.RESTART_SLURMDBD: Impact.RESTART,
              Effect.RESTART_SLURMCTLD: Impact.RESTART, Effect.RESTART_SLURMD: Impact.RESTART}
NONE, RECONFIGURE = Effect.NONE, Effect.RECONFIGURE
RESTART_SLURMCTLD, RESTART_SLURMD = Effect.RESTART_SLURMCTLD, Effect.RESTART_SLURMD
RESTART_SLURMDBD = Effect.RESTART_SLURMDBD
_ORDER = tuple(Effect)

_CTLD = "read when slurmctld starts (slurm.conf(5))"
_BOTH = "slurmctld and every slurmd must be restarted (slurm.conf(5))"
_LIVE = "re-read by scontrol reconfigure"

# slurm.conf key (or '<file>' for a whole file) -> (class, why)
IMPACT: dict[str, tuple[Effect, str]] = {
    # Read only at start-up.
    # The restart alone fails: the saved state must be cleared first, losing the queue (the diff says destroys-data).
    "ClusterName": (RESTART_SLURMCTLD, "slurmctld refuses state saved under another ClusterName: clear "
                                       "StateSaveLocation before the restart; queued and running jobs are lost"),
    "SlurmctldHost": (RESTART_SLURMCTLD, _CTLD),
    "SlurmctldPort": (RESTART_SLURMCTLD, _CTLD),
    "SlurmdPort": (RESTART_SLURMD, _BOTH),
    "SlurmUser": (RESTART_SLURMCTLD, _CTLD),
    "AuthType": (RESTART_SLURMD, _BOTH),
    # Moving it (e.g. onto the shared filesystem of slurm.state_save): stop slurmctld, copy the folder, start it.
    "StateSaveLocation": (RESTART_SLURMCTLD, "read when slurmctld starts (slurm.conf(5)); stop slurmctld and copy the "
                                             "saved state to the new folder before starting it, or the queue is lost"),
    "SlurmdSpoolDir": (RESTART_SLURMD, "read when slurmd starts"),
    "SchedulerType": (RESTART_SLURMCTLD, _CTLD),
    "SelectType": (RESTART_SLURMD, _BOTH),
    "SelectTypeParameters": (RESTART_SLURMD, _BOTH),
    "GresTypes": (RESTART_SLURMD, _BOTH),
    "ProctrackType": (RESTART_SLURMD, _BOTH),
    "TaskPlugin": (RESTART_SLURMD, "read when slurmd starts"),
    "JobAcctGatherType": (RESTART_SLURMD, "read when slurmd starts"),
    "PrologFlags": (RESTART_SLURMD, _BOTH),
    "MpiDefault": (RESTART_SLURMD, "read when slurmd starts"),
    "PlugStackConfig": (RESTART_SLURMD, "SPANK plugins are loaded when slurmd and the job steps start"),
    "TopologyPlugin": (RESTART_SLURMCTLD, _CTLD),
    "AccountingStorageType": (RESTART_SLURMCTLD, _CTLD),
    "AccountingStorageHost": (RESTART_SLURMCTLD, _CTLD),
    "AccountingStoragePort": (RESTART_SLURMCTLD, _CTLD),
    "AccountingStorageEnforce": (RESTART_SLURMCTLD, _CTLD),
    "AccountingStorageTRES": (RESTART_SLURMCTLD, _CTLD),
    "PriorityType": (RESTART_SLURMCTLD, _CTLD),
    "MaxJobCount": (RESTART_SLURMCTLD, _CTLD),
    # Nodes: adding, removing or resizing them restarts everything (NODE CONFIGURATION in slurm.conf(5)).
    "NodeName": (RESTART_SLURMD, "adding, removing or changing nodes: " + _BOTH),
    "Sockets": (RESTART_SLURMD, _BOTH), "CoresPerSocket": (RESTART_SLURMD, _BOTH),
    "ThreadsPerCore": (RESTART_SLURMD, _BOTH), "RealMemory": (RESTART_SLURMD, _BOTH),
    "Gres": (RESTART_SLURMD, _BOTH),
    "Feature": (RECONFIGURE, _LIVE),
    "State": (RECONFIGURE, _LIVE),
    # Partitions and scheduling knobs are live.
    "PartitionName": (RECONFIGURE, "partitions are re-read by scontrol reconfigure"),
    "Nodes": (RECONFIGURE, "partition membership is re-read by scontrol reconfigure"),
    "Default": (RECONFIGURE, _LIVE), "MaxTime": (RECONFIGURE, _LIVE), "DefaultTime": (RECONFIGURE, _LIVE),
    "PriorityTier": (RECONFIGURE, _LIVE), "OverSubscribe": (RECONFIGURE, _LIVE),
    "AllowAccounts": (RECONFIGURE, _LIVE), "DefCpuPerGPU": (RECONFIGURE, _LIVE),
    "DefMemPerGPU": (RECONFIGURE, _LIVE),
    "TreeWidth": (RECONFIGURE, _LIVE), "MessageTimeout": (RECONFIGURE, _LIVE),
    "SlurmdTimeout": (RECONFIGURE, _LIVE), "SlurmctldTimeout": (RECONFIGURE, _LIVE),
    "TCPTimeout": (RECONFIGURE, _LIVE), "MinJobAge": (RECONFIGURE, _LIVE),
    "HealthCheckProgram": (RECONFIGURE, _LIVE), "HealthCheckInterval": (RECONFIGURE, _LIVE),
    "HealthCheckNodeState": (RECONFIGURE, _LIVE), "Prolog": (RECONFIGURE, _LIVE), "Epilog": (RECONFIGURE, _LIVE),
    "TaskProlog": (RECONFIGURE, _LIVE),
    "ReturnToService": (RECONFIGURE, _LIVE), "EnforcePartLimits": (RECONFIGURE, _LIVE), "JobAcctGatherFrequency": (RECONFIGURE, _LIVE),
    "PriorityWeightQOS": (RECONFIGURE, _LIVE), "PriorityWeightFairshare": (RECONFIGURE, _LIVE),
    "PriorityWeightAge": (RECONFIGURE, _LIVE),
    "SlurmctldLogFile": (RECONFIGURE, _LIVE), "SlurmdLogFile": (RECONFIGURE, _LIVE),
    "SlurmctldPidFile": (RESTART_SLURMCTLD, _CTLD), "SlurmdPidFile": (RESTART_SLURMD, "read when slurmd starts"),
    # Other files.
    "topology.conf": (RECONFIGURE, "topology/tree re-reads topology.conf on scontrol reconfigure"),
    "topology.yaml": (RECONFIGURE, "slurmctld re-reads topology.yaml on scontrol reconfigure (as topology.conf)"),
    "Topology": (RECONFIGURE, "a partition's topology changes on scontrol reconfigure"),
    "gres.conf": (RESTART_SLURMD, "slurmd reads gres.conf when it starts"),
    "cgroup.conf": (RESTART_SLURMD, "slurmd reads cgroup.conf when it starts"),
    "plugstack.conf": (RESTART_SLURMD, "SPANK plugins are loaded when slurmd and the job steps start"),
    "slurmdbd.conf": (RESTART_SLURMDBD, "slurmdbd reads its configuration when it starts"),
    "tenants.sh": (NONE, "accounts and QOS change live when the script runs"),
    "task_prolog.sh": (NONE, "slurmd runs the installed script before every new task; running tasks keep their keys"),
}

DEFAULT = (RESTART_SLURMD, "not in the table: restart slurmctld and every slurmd to be safe")

# Keys a spec setting (slurm.settings) may change that the plan itself does not write, where slurm.conf(5) of 22.05
# says a restart is needed ("A restart of slurmctld [and the slurmd daemons] is required for changes to this
# parameter to take effect").
IMPACT.update({
    "CredType": (RESTART_SLURMD, "slurmctld signs and every slurmd checks job credentials with it: " + _BOTH),
    "CoreSpecPlugin": (RESTART_SLURMD, "a restart of the slurmd daemons is required (slurm.conf(5))"),
    "JobContainerType": (RESTART_SLURMD, "the plugin runs in slurmctld and every slurmd: " + _BOTH),
    "MaxNodeCount": (RESTART_SLURMCTLD, _CTLD),
    "PluginDir": (RESTART_SLURMD, _BOTH),
    "PowerPlugin": (RESTART_SLURMCTLD, _CTLD),
    "SlurmctldParameters": (RESTART_SLURMCTLD, _CTLD),
    "SwitchType": (RESTART_SLURMD, "all daemons, commands and running jobs restart with a new switch plugin "
                                   "(slurm.conf(5)): drain first"),
    "SlurmctldAddr": (RESTART_SLURMCTLD, _CTLD),
    "SlurmdUser": (RESTART_SLURMD, "read when slurmd starts"),
    "SlurmdParameters": (RESTART_SLURMD, "read when slurmd starts"),
    "CommunicationParameters": (RESTART_SLURMD, "sockets are opened when the daemons start: " + _BOTH),
    "AuthInfo": (RESTART_SLURMD, "authentication is set up when the daemons start: " + _BOTH),
    "AuthAltTypes": (RESTART_SLURMD, "authentication is set up when the daemons start: " + _BOTH),
    "AuthAltParameters": (RESTART_SLURMD, "authentication is set up when the daemons start: " + _BOTH),
})
_BY_LOWER = {k.lower(): k for k in IMPACT}
_PLUGIN = ("type", "types", "plugin", "plugins")
SETTING_DEFAULT = (RECONFIGURE, "slurm.conf(5): changes take effect with scontrol reconfigure unless its entry "
                                "says otherwise")
DBD_SETTING = (RESTART_SLURMDBD, "slurmdbd reads slurmdbd.conf when it starts")


def setting_impact(key: str) -> tuple[Effect, str]:
    """(class, why) for a changed slurm.conf setting of the spec (slurm.settings), by key case-insensitively: the
    table's class; a plugin choice (a key ending in Type or Plugins) is loaded when the daemons start; any other
    key takes effect with scontrol reconfigure, as slurm.conf(5) says of every key it does not mark."""
    name = _BY_LOWER.get(key.lower())
    if name is not None:
        return IMPACT[name]
    if key.lower().endswith(_PLUGIN):
        return (RESTART_SLURMD, "plugins are loaded when the daemons start: " + _BOTH)
    return SETTING_DEFAULT


def impact_of(key: str) -> tuple[Effect, str]:
    """(class, why) for a slurm.conf key or a file name under slurm/. KeyError for keys not in the table."""
    return IMPACT[key]


def worst(classes) -> Effect:
    return max(classes, key=_ORDER.index, default=NONE)


@dataclass(frozen=True)
class SettingChange:
    where: str  # "slurm.conf", "slurm.conf NodeName=gpu[01-02]", "gres.conf"
    key: str
    old: str | None
    new: str | None
    impact: Effect
    why: str


def _records(text: str) -> dict[tuple[str, str], str]:
    """slurm.conf as {(record, key): value}: record '' for plain settings, 'NodeName=x' / 'PartitionName=y' for
    the keys of those lines. Repeated keys (SlurmctldHost) are joined in order."""
    out: dict[tuple[str, str], str] = {}
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line or "=" not in line:
            continue
        words = line.split()
        head_key, _, head_value = words[0].partition("=")
        if head_key in ("NodeName", "PartitionName"):
            record = f"{head_key}={head_value}"
            out[(record, head_key)] = head_value
            for word in words[1:]:
                k, _, v = word.partition("=")
                out[(record, k)] = v
        else:
            key = ("", head_key)
            out[key] = f"{out[key]},{head_value}" if key in out else head_value
    return out


def setting_changes(old: Mapping[str, bytes], new: Mapping[str, bytes]) -> list[SettingChange]:
    """Every changed slurm.conf setting and every changed other file under slurm/, with its class."""
    changes: list[SettingChange] = []
    o = _records(old.get("slurm/slurm.conf", b"").decode())
    n = _records(new.get("slurm/slurm.conf", b"").decode())
    for record, key in sorted(set(o) | set(n)):
        if o.get((record, key)) == n.get((record, key)):
            continue
        head = record.split("=", 1)[0]
        if record and key != head and ((record, head) not in o or (record, head) not in n):
            continue  # a whole node or partition line came or went: reported once, on its head key
        # A plain key the table lacks is a site setting (slurm.settings): classified as the spec's settings are.
        impact, why = IMPACT.get(key if key != head or not record else head) or \
            (setting_impact(key) if not record else DEFAULT)
        changes.append(SettingChange(f"slurm.conf {record}".strip(), key, o.get((record, key)),
                                     n.get((record, key)), impact, why))
    for path in sorted(set(old) | set(new)):
        name = path.rsplit("/", 1)[-1]
        if not path.startswith("slurm/") or name == "slurm.conf" or old.get(path) == new.get(path):
            continue
        impact, why = IMPACT.get(name, DEFAULT)
        changes.append(SettingChange(name, "(file)", "present" if path in old else None,
                                     "present" if path in new else None, impact, why))
    return changes
