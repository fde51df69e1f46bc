"""The planners' own impact tables (gpucloud.plan.slurm_impact, gpucloud.plan.storage_impact) as diff rules, so
that a Slurm or storage setting is classified in one place only. Both tables use gpucloud.impact.Impact (Slurm's
through its finer Effect), so there is nothing to translate: a class that does not exist cannot be written."""

from __future__ import annotations

from gpucloud.impact import Impact
from gpucloud.plan import slurm_impact, storage_impact
from gpucloud.plan.slurm_impact import Effect

# Which hosts a Slurm effect touches: the daemons it restarts (slurmctld first where slurmd restarts too).
_SLURM_HOSTS = {
    Effect.RESTART_SLURMCTLD: lambda side: side.role_pools("slurm-controller"),
    Effect.RESTART_SLURMD: lambda side: sorted(set(side.partition_pools()) | set(side.role_pools("slurm-controller"))),
    Effect.RESTART_SLURMDBD: lambda side: side.role_pools("slurmdbd"),
}


def slurm_rule(setting: str):
    """(impact, selector, why) for a slurm.conf setting the Slurm planner's table knows, or None."""
    found = slurm_impact.IMPACT.get(setting)
    if found is None:
        return None
    effect, why = found
    select = _SLURM_HOSTS.get(effect, lambda side: [])
    return (effect.impact, select, f"{setting}: {why or effect.impact.label}")


def slurm_setting_rule(field: str, key: str):
    """(impact, selector, why) for a changed spec setting: ``field`` 'settings' (slurm.conf, by the Slurm planner's
    setting_impact) or 'dbd_settings' (slurmdbd.conf: slurmdbd restarts; a new DbdPort moves slurm.conf's
    AccountingStoragePort as well, so slurmctld restarts with it)."""
    if field == "dbd_settings":
        effect, why = slurm_impact.DBD_SETTING
        if key.lower() == "dbdport":
            return (effect.impact, lambda side: sorted(set(side.role_pools("slurmdbd")) |
                                                       set(side.role_pools("slurm-controller"))),
                    f"{key}: {why}; slurm.conf's AccountingStoragePort follows it, read when slurmctld starts")
    else:
        effect, why = slurm_impact.setting_impact(key)
    return (effect.impact, _SLURM_HOSTS.get(effect, lambda side: []), f"{key}: {why}")


def storage_rule(key: str, old, new):
    """(impact, selector, why) for a filesystem setting the storage planner's table knows, or None."""
    found = storage_impact.IMPACT.get(key)
    if found is None:
        return None
    impact, why = found
    return (impact, lambda side: [], why or impact.label)


def quota_rule(tenant: str, filesystem: str, old: int | None, new: int | None) -> tuple[Impact, str] | None:
    """(impact, why) for a tenant's quota change, by the storage planner's rule (a lowered quota with unknown use
    can stop the tenant's writes)."""
    change = storage_impact.quota_change(tenant, filesystem, old, new, None)
    return (change.impact, change.why) if change is not None else None
