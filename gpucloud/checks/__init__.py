"""Stage 2: semantic checks, one module per domain.

A check is a function ``(spec) -> Iterable[Finding]`` registered with ``@check("id")``; the id is what users pass to
``--ignore``. Checks never raise for a user mistake.

Every check that can run does, so one run shows every mistake. A check runs on a model whose broken parts (a section
the schema refused) are left out; while it runs, the runner records which parts of the spec it reads and which
catalog models it looks up, and keeps its findings only if it read nothing broken and no unknown model. A check
that needs a broken part says nothing rather than something misleading, and speaks once that part is fixed.
"""

from __future__ import annotations

import dataclasses
import importlib
from typing import Any, Callable, Iterable

# Not 'catalog': importing the checks.catalog module sets that name on this package.
from gpucloud import catalog as _hardware
from gpucloud.findings import Finding
from gpucloud.spec.model import Spec

CheckFn = Callable[[Spec], Iterable[Finding]]
REGISTRY: dict[str, CheckFn] = {}

# Domain modules, imported on first use so that the registry is complete.
MODULES = ("catalog", "names", "pools", "networks", "racks", "references", "fabric", "ethernet", "slurm",
           "slurm_settings", "storage", "tenants", "software", "provider", "provisioning", "nvlink")


def check(check_id: str) -> Callable[[CheckFn], CheckFn]:
    def register(fn: CheckFn) -> CheckFn:
        if check_id in REGISTRY:
            raise RuntimeError(f"check id {check_id} registered twice")
        REGISTRY[check_id] = fn
        fn.check_id = check_id  # type: ignore[attr-defined]
        return fn

    return register


def built_hosts(pool) -> int:
    """Hosts a pool really has: its index range minus the excluded indices that fall inside it."""
    return pool.count - sum(1 for i in pool.exclude if pool.start <= i < pool.start + pool.count)


def _load_modules() -> None:
    for name in MODULES:
        importlib.import_module(f"gpucloud.checks.{name}")


def all_checks() -> dict[str, CheckFn]:
    _load_modules()
    return dict(sorted(REGISTRY.items()))


# Checks that report unknown models themselves: they look the names up to say so.
REPORTS_UNKNOWN_MODELS = frozenset({"catalog-model"})
_FIELDS = frozenset(f.name for f in dataclasses.fields(Spec))
# Spec methods and the fields they read.
_METHODS = {"pool": ("pools",), "pools_with_role": ("pools",)}


class _ReadSpec:
    """Stands in for the Spec while one check runs, recording which of its fields the check reads."""

    __slots__ = ("_spec", "_read")

    def __init__(self, spec: Spec) -> None:
        object.__setattr__(self, "_spec", spec)
        object.__setattr__(self, "_read", set())

    def __getattr__(self, name: str) -> Any:
        read = self._read
        if name in _FIELDS:
            read.add(name)
        else:  # a method: the fields it reads, or, not knowing, every field
            read.update(_METHODS.get(name, _FIELDS))
        return getattr(self._spec, name)

    def __setattr__(self, name: str, value: Any) -> None:
        raise dataclasses.FrozenInstanceError(name)


class _Lookups(dict):
    """The catalog's servers, recording lookups of model names it does not have."""

    def __init__(self, servers: dict) -> None:
        super().__init__(servers)
        self.missed: set[str] = set()

    def _note(self, name: Any) -> None:
        if not dict.__contains__(self, name):
            self.missed.add(name)

    def get(self, name, default=None):
        self._note(name)
        return super().get(name, default)

    def __getitem__(self, name):
        self._note(name)
        return super().__getitem__(name)

    def __contains__(self, name) -> bool:
        self._note(name)
        return super().__contains__(name)


def _run_one(check_id: str, fn: CheckFn, spec: Any) -> list[Finding]:
    try:
        return list(fn(spec))
    except Exception as exc:  # one broken check must not hide the findings of the others
        from gpucloud.spec import internal_error

        return [internal_error(f"running check {check_id}", exc)]


def run_checks(spec: Spec, ignore: Iterable[str] = (), broken: Iterable[str] = ()) -> list[Finding]:
    """Run every check on ``spec``; ``broken`` names Spec fields built from parts of the spec that failed (left out
    of the model): the findings of a check that reads one of them, or looks up a model the catalog does not have,
    are dropped."""
    skip = set(ignore)
    unusable = frozenset(broken)
    if "pools" in unusable:
        unknown: set[str] = set()
    else:
        unknown = {p.model for p in spec.pools if p.model not in _hardware.SERVERS}
    out: list[Finding] = []
    for check_id, fn in all_checks().items():
        if check_id in skip:
            continue
        if not unusable and not unknown:
            found = _run_one(check_id, fn, spec)
        else:
            found = _guarded(check_id, fn, spec, unusable, unknown)
        out.extend(f for f in found if f.check not in skip)
    return out


def _guarded(check_id: str, fn: CheckFn, spec: Spec, unusable: frozenset[str], unknown: set[str]) -> list[Finding]:
    reads = _ReadSpec(spec)
    servers = _hardware.SERVERS
    lookups = _Lookups(servers)
    _hardware.SERVERS = lookups
    try:
        found = _run_one(check_id, fn, reads)
    finally:
        _hardware.SERVERS = servers
    if reads._read & unusable:
        return []
    if lookups.missed & unknown and check_id not in REPORTS_UNKNOWN_MODELS:
        return []
    return found
