"""Checks: every hardware model and switch named in the spec exists in the catalog."""

from __future__ import annotations

from gpucloud import catalog
from gpucloud.checks import check
from gpucloud.findings import Finding, choices_hint


@check("catalog-model")
def unknown_models(spec):
    """A pool names a hardware model that is not in the catalog."""
    for pool in spec.pools:
        if pool.model not in catalog.SERVERS:
            yield Finding("catalog-model", "error", (*pool.path, "model"),
                          f"unknown hardware model {pool.model!r} in pool {pool.name!r}",
                          choices_hint(pool.model, catalog.SERVERS, "models"))


@check("catalog-switch")
def unknown_switches(spec):
    """A fabric names a switch that is not in the catalog."""
    for fabric in spec.fabrics.values():
        if fabric.switch not in catalog.SWITCHES and fabric.switch not in catalog.SWITCH_ALIASES:
            yield Finding("catalog-switch", "error", (*fabric.path, "switch"),
                          f"unknown switch model {fabric.switch!r}",
                          choices_hint(fabric.switch, catalog.switch_names(), "switches"))
