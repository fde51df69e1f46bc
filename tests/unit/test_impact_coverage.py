"""Every setting of the spec has an impact class, as every ParallelCluster setting has an update policy: a new
schema key that no table classifies fails here, instead of reaching reviewers as an unexplained default."""

from __future__ import annotations

import pytest

from conftest import CLUSTERS
from gpucloud.diff import intent
from gpucloud.impact import Impact
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan, slurm_impact, storage_impact
from gpucloud.render.resolved import spec_section
from gpucloud.spec.schema import schema

DEFS = schema()["$defs"]


def _keys(node: dict, prefix: str = "", nested: bool = True) -> set[str]:
    """Leaf keys of a schema object, dotted below nested objects (as the diff flattens them)."""
    out = set()
    alts = [node, *[a for k in ("allOf", "oneOf", "anyOf") for a in node.get(k, [])]]
    alts += [a[t] for a in list(alts) for t in ("then", "else") if t in a]
    for alt in alts:
        if not isinstance(alt, dict):
            continue
        for key, sub in alt.get("properties", {}).items():
            ref = sub.get("$ref", "").rsplit("/", 1)[-1] if isinstance(sub, dict) else ""
            if ref and ref != "secret_ref":  # a secret reference is one value: the secret's name
                sub = {**DEFS[ref], **sub}
            if nested and ref != "secret_ref" and sub.get("type") == "object" and sub.get("properties"):
                out |= _keys(sub, f"{prefix}{key}.")
            else:
                out.add(prefix + key)
    return out


# The spec's names where plan.json's resolved spec (what the diff compares) calls them otherwise.
SLURM_RENAMES = {"containers": None, "containers.enroot": "enroot", "containers.pyxis": "pyxis", "partitions": None}


def test_software_settings():
    assert _keys(DEFS["software"]) <= set(intent.SOFTWARE)


def test_network_settings():
    assert _keys(DEFS["network"]) | _keys(DEFS["ipoib_network"]) <= set(intent.NETWORK)


def test_fabric_settings():
    keys = _keys(DEFS["fabric"], nested=False) - {"subnet_manager"}
    assert keys <= set(intent.FABRIC)
    sm = _keys(DEFS["fabric"]["properties"]["subnet_manager"])
    assert sm == set(intent.FABRIC_SM_KEYS)


def test_slurm_settings():
    keys = {SLURM_RENAMES.get(k, k) for k in _keys(DEFS["slurm"])} - {None}
    site = set(intent.SITE_SETTINGS)  # classified per key, below
    assert keys <= set(intent.SLURM) | site, sorted(keys - set(intent.SLURM) - site)
    assert site <= set(DEFS["slurm"]["properties"])
    partition = _keys(DEFS["slurm"]["properties"]["partitions"]["items"]) - {"name"}
    assert partition <= set(intent.PARTITION_FIELD)
    assert {intent.PARTITION_FIELD[k] for k in partition} <= set(slurm_impact.IMPACT)


# slurm.conf(5) of 22.05 says a restart is needed for these (each entry's "A restart of slurmctld [and the slurmd
# daemons] is required"); plugin choices are loaded when the daemons start.
RESTART_KEYS = ("AccountingStorageEnforce", "AuthType", "CoreSpecPlugin", "CredType", "GresTypes", "JobContainerType",
                "MaxJobCount", "MaxNodeCount", "PluginDir", "PowerPlugin", "ProctrackType", "SchedulerType",
                "SelectType", "SelectTypeParameters", "SlurmctldHost", "SlurmctldParameters", "SlurmctldPort",
                "SlurmdPort", "StateSaveLocation", "SwitchType", "TopologyPlugin", "LaunchType", "MpiDefault")


def test_every_slurm_conf_key_a_setting_may_name_has_a_class():
    """slurm.settings takes any key of slurm.conf(5): each one gets a class, and the keys Slurm reads only when a
    daemon starts get a restart, matched case-insensitively as Slurm matches keys."""
    from gpucloud.plan import slurm_keys

    assert all(slurm_impact.setting_impact(k)[0] in slurm_impact.Effect for k in slurm_keys.KNOWN)
    for key in RESTART_KEYS:
        for spelling in (key, key.lower(), key.upper()):
            assert slurm_impact.setting_impact(spelling)[0].impact == Impact.RESTART, spelling
    assert slurm_impact.setting_impact("KillWait")[0] == slurm_impact.RECONFIGURE
    assert slurm_impact.setting_impact("schedulerparameters")[0] == slurm_impact.RECONFIGURE
    assert slurm_impact.DBD_SETTING[0].impact == Impact.RESTART


def test_storage_settings():
    keys = _keys(DEFS["filesystem"], nested=False) - {"name"}
    assert keys <= set(intent.STORAGE) | set(storage_impact.IMPACT), sorted(keys - set(storage_impact.IMPACT))


def test_tenant_settings():
    keys = _keys(DEFS["tenant"], nested=False) - {"name", "storage_quota"}  # quotas: their own rule per filesystem
    assert keys <= set(intent.TENANT), sorted(keys - set(intent.TENANT))


def test_provider_and_metadata_settings():
    assert _keys(DEFS["provider"]) <= set(intent.PROVIDER)
    assert _keys(schema()["properties"]["metadata"], nested=False) <= set(intent.METADATA)


@pytest.mark.parametrize("cluster", ["abci3", "ishikari"])
def test_the_diff_sees_every_classified_setting(cluster):
    """The diff compares plan.json's resolved spec: a setting it leaves out is never classified at all."""
    checked = check_spec(CLUSTERS / f"{cluster}.yaml")
    resolved = spec_section(build_plan(checked.spec, tuple(checked.findings)))
    slurm = {SLURM_RENAMES.get(k, k) for k in _keys(DEFS["slurm"], nested=False)} - {None}
    assert slurm <= set(resolved["slurm"])
    assert _keys(DEFS["software"]) <= set(resolved["software"])
    assert _keys(DEFS["provider"]) <= set(resolved["provider"])
    tenant = _keys(DEFS["tenant"], nested=False) - {"name"}
    assert all(tenant <= set(t) for t in resolved["tenants"].values())


def test_a_setting_without_a_class_is_caught():
    assert not _keys({"properties": {"newthing": {"type": "string"}}}) <= set(intent.SOFTWARE)
