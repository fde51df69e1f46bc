"""Stage 2: semantic checks, one module per domain.

A check is a function ``(spec) -> Iterable[Finding]`` registered with ``@check("id")``; the id is what users pass to
``--ignore``. Checks never raise for a user mistake; they run only on a schema-valid spec.
"""

from __future__ import annotations

import importlib
from typing import Callable, Iterable

from gpucloud.findings import Finding
from gpucloud.spec.model import Spec

CheckFn = Callable[[Spec], Iterable[Finding]]
REGISTRY: dict[str, CheckFn] = {}

# Domain modules, imported on first use so that the registry is complete.
MODULES = ("catalog", "names", "pools", "networks", "racks", "references", "fabric", "slurm", "storage", "tenants",
           "software", "provider")


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


def run_checks(spec: Spec, ignore: Iterable[str] = ()) -> list[Finding]:
    skip = set(ignore)
    out: list[Finding] = []
    for check_id, fn in all_checks().items():
        if check_id in skip:
            continue
        try:
            found = list(fn(spec))
        except Exception as exc:  # one broken check must not hide the findings of the others
            from gpucloud.spec import internal_error

            found = [internal_error(f"running check {check_id}", exc)]
        out.extend(f for f in found if f.check not in skip)
    return out
