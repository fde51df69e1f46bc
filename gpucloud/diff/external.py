"""The planners' own impact tables, read when they exist so that a Slurm or storage setting is classified in one
place only. When a planner is not installed (or does not know a setting) the diff falls back to its own tables."""

from __future__ import annotations

import importlib
from functools import lru_cache

from gpucloud.diff.impact import Impact

_WORDS = {
    # Words the planners' tables use for their classes, mapped onto the diff's impact classes.
    "none": Impact.NONE, "live": Impact.NONE, "reconfigure": Impact.RECONFIGURE,
    "restart": Impact.RESTART, "restart_slurmctld": Impact.RESTART, "restart_slurmd": Impact.RESTART,
    "restart-slurmctld": Impact.RESTART, "restart-slurmd": Impact.RESTART, "restart-slurmdbd": Impact.RESTART,
    "restart_daemon": Impact.RESTART,
    "remount": Impact.DRAIN_REBOOT, "drain": Impact.DRAIN_REBOOT, "drain-reboot": Impact.DRAIN_REBOOT,
    "drain_reboot": Impact.DRAIN_REBOOT, "reboot": Impact.DRAIN_REBOOT, "reimage": Impact.REIMAGE,
    "hardware": Impact.HARDWARE, "destroys-data": Impact.DESTROYS_DATA, "destroys_data": Impact.DESTROYS_DATA,
    "destructive": Impact.DESTROYS_DATA, "data-loss": Impact.DESTROYS_DATA,
}


@lru_cache(maxsize=None)
def _module(name: str):
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def as_impact(value) -> Impact | None:
    """Map a planner's class (enum member, its value or name) onto an Impact."""
    if value is None:
        return None
    if isinstance(value, Impact):
        return value
    for candidate in (getattr(value, "value", None), getattr(value, "name", None), value):
        if isinstance(candidate, str):
            found = _WORDS.get(candidate.lower()) or _WORDS.get(candidate.lower().replace(" ", "-"))
            if found:
                return found
    return None


def _lookup(module_name: str, key: str):
    mod = _module(module_name)
    if mod is None:
        return None
    for fn_name in ("impact_of", "classify", "impact"):
        fn = getattr(mod, fn_name, None)
        if callable(fn):
            try:
                return fn(key)
            except (KeyError, LookupError, TypeError, ValueError):
                return None
    for table_name in ("IMPACT", "IMPACTS", "SETTINGS", "TABLE"):
        table = getattr(mod, table_name, None)
        if isinstance(table, dict) and key in table:
            return table[key]
    return None


# Which hosts a Slurm class touches: the daemons it restarts (slurmctld first where slurmd restarts too).
_SLURM_HOSTS = {
    "restart-slurmctld": lambda side: side.role_pools("slurm-controller"),
    "restart-slurmd": lambda side: sorted(set(side.partition_pools()) | set(side.role_pools("slurm-controller"))),
    "restart-slurmdbd": lambda side: side.role_pools("slurmdbd"),
}


def slurm_rule(setting: str):
    """(impact, selector, why) for a slurm.conf setting from gpucloud.plan.slurm_impact, or None."""
    found = _lookup("gpucloud.plan.slurm_impact", setting)
    raw = found[0] if isinstance(found, tuple) else found
    impact = as_impact(raw)
    if impact is None:
        return None
    why = found[1] if isinstance(found, tuple) and len(found) > 1 and isinstance(found[1], str) else ""
    select = _SLURM_HOSTS.get(str(getattr(raw, "value", raw)), lambda side: [])
    return (impact, select, f"{setting}: {why or impact.label}")


def storage_rule(key: str, old, new):
    found = _lookup("gpucloud.plan.storage_impact", key)
    impact = as_impact(found[0] if isinstance(found, tuple) else found)
    if impact is None:
        return None
    why = found[1] if isinstance(found, tuple) and len(found) > 1 and isinstance(found[1], str) else ""
    return (impact, lambda side: [], why or impact.label)


def quota_rule(tenant: str, filesystem: str, old: int | None, new: int | None):
    """(impact, why) for a tenant's quota change, by the storage planner's rule (a lowered quota with unknown use
    can stop the tenant's writes), or None when that planner is not installed."""
    mod = _module("gpucloud.plan.storage_impact")
    fn = getattr(mod, "quota_change", None) if mod is not None else None
    if fn is None:
        return None
    change = fn(tenant, filesystem, old, new, None)
    if change is None:
        return None
    impact = as_impact(change.impact)
    return (impact, change.why) if impact is not None else None
