"""Checks: slurm.settings and slurm.dbd_settings, the site's own slurm.conf and slurmdbd.conf keys.

A setting may not replace what another part of the spec drives (NodeName, PartitionName, SlurmctldHost, ...) nor
hold a password; the same key twice in different case is ambiguous (Slurm reads keys case-insensitively); a key
that Slurm's manual does not list is a warning with did-you-mean (slurmctld refuses a key it does not know).
"""

from __future__ import annotations

from typing import Iterable

from gpucloud.checks import check
from gpucloud.findings import Finding, choices_hint
from gpucloud.plan import slurm_keys
from gpucloud.spec.model import Spec
from gpucloud.spec.schema import shorten

# field -> (file, owned keys, known keys)
_FIELDS = {
    "settings": ("slurm.conf", slurm_keys.OWNED, slurm_keys.KNOWN),
    "dbd_settings": ("slurmdbd.conf", slurm_keys.DBD_OWNED, slurm_keys.DBD_KNOWN),
}


def _each(spec: Spec):
    for field, (file, owned, known) in _FIELDS.items():
        for key, value in getattr(spec.slurm, field):
            yield field, file, owned, known, key, value


@check("slurm-setting-owned")
def owned(spec: Spec) -> Iterable[Finding]:
    """A setting does not replace a key the plan writes from another part of the spec."""
    for field, file, table, _known, key, _value in _each(spec):
        if key.lower() in table:
            name, driver = table[key.lower()]
            yield Finding("slurm-setting-owned", "error", ("slurm", field, key),
                          f"{file}'s {name} is written by the plan and cannot be a setting",
                          f"remove it from slurm.{field}; it follows {driver}")


@check("slurm-setting-secret")
def secret(spec: Spec) -> Iterable[Finding]:
    """Passwords stay secret references: a setting's value is written into the plan in clear."""
    for field, file, table, _known, key, _value in _each(spec):
        if slurm_keys.SECRET.search(key) and key.lower() not in table:
            yield Finding("slurm-setting-secret", "error", ("slurm", field, key),
                          f"{file} key {key} holds a secret, and settings are written into the plan in clear",
                          "remove it; the database password is slurm.accounting.database_password (a secret "
                          "reference the slurmdbd role fills from Ansible Vault)")


@check("slurm-setting-duplicate")
def duplicate(spec: Spec) -> Iterable[Finding]:
    """One key once: Slurm reads keys case-insensitively, so MaxJobCount and maxjobcount are the same key."""
    for field, (file, _owned, _known) in _FIELDS.items():
        first: dict[str, str] = {}
        for key, _value in getattr(spec.slurm, field):
            if key.lower() in first:
                yield Finding("slurm-setting-duplicate", "error", ("slurm", field, key),
                              f"{file} key {key} is set twice in slurm.{field} (also as {first[key.lower()]}); "
                              "Slurm reads keys case-insensitively",
                              "keep one of them")
            else:
                first[key.lower()] = key


@check("slurm-setting-unknown")
def unknown(spec: Spec) -> Iterable[Finding]:
    """A key Slurm's manual lists (slurm.conf(5), slurmdbd.conf(5)); a warning, since newer releases add keys."""
    for field, file, table, known, key, _value in _each(spec):
        if key.lower() in table or slurm_keys.SECRET.search(key) or key in known:
            continue
        if any(k.lower() == key.lower() for k in known):
            continue  # another spelling of a known key: Slurm matches keys case-insensitively
        yield Finding("slurm-setting-unknown", "warning", ("slurm", field, key),
                      f"{key} is not a {file} key of Slurm 22.05 or 23.x; slurmctld refuses keys it does not know",
                      choices_hint(key, known, f"{file} keys"))


@check("slurm-setting-port")
def port(spec: Spec) -> Iterable[Finding]:
    """DbdPort is one port number: the plan writes it into slurm.conf's AccountingStoragePort as well."""
    for key, value in spec.slurm.dbd_settings:
        if key.lower() == "dbdport" and not (value.isdigit() and 0 < int(value) < 65536):
            yield Finding("slurm-setting-port", "error", ("slurm", "dbd_settings", key),
                          f"DbdPort must be a port number (1-65535), not {shorten(repr(value))}",
                          "write one port, e.g. 6819")
