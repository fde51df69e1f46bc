"""``gpucloud fabric verify``: compare an ``ibnetdiscover`` dump with the planned cables of one fabric of a spec."""

from __future__ import annotations

import sys
from typing import Callable

from gpucloud.findings import choices_hint
from gpucloud.plan.fabric import FabricPlan, plan_fabric
from gpucloud.plan.hosts import plan_hosts
from gpucloud.verify.fabric import compare, parse_ibnetdiscover, report, subnet_names
from gpucloud.verify.inputs import DEFAULT_MAX_MIB, InputError, lines


def scope_of(fp: FabricPlan, subnets: list[str], rails: list[int]) -> set[int] | None:
    """--subnet NAME and --rail N as subnet indexes; ValueError naming the fix when one does not exist."""
    if not subnets and not rails:
        return None
    names = subnet_names(fp)
    if len(names) == 1:
        raise ValueError(f"the {fp.name} fabric is one subnet (split: {fp.split}); --subnet/--rail only apply to a "
                         f"fabric split into per-rail subnets", "leave out --subnet/--rail")
    out = set()
    for name in list(subnets) + [f"rail{r}" for r in rails]:
        if name.isdigit():
            name = f"rail{name}"
        if name not in names:
            raise ValueError(f"the {fp.name} fabric has no subnet {name!r}", choices_hint(name, names, "subnets"))
        out.add(names.index(name))
    return out


def run_cli(spec_path, dump_path, fabric_name: str, checked_or_exit: Callable, subnets: list[str] | None = None,
            rails: list[int] | None = None, max_input_mib: int | None = None) -> int:
    """The 'gpucloud fabric verify' command: 0 when the dump matches the plan (every subnet, or the ones named with
    --subnet/--rail), 1 when not or when subnets were left unchecked, 2 when it cannot run."""
    def fail(message: str, hint: str = "") -> int:
        print(f"error: {message}", file=sys.stderr)
        if hint:
            print(f"  hint: {hint}", file=sys.stderr)
        return 2

    checked = checked_or_exit(spec_path)
    spec = checked.spec
    if fabric_name not in spec.fabrics:
        return fail(f"the spec has no {fabric_name!r} fabric; {choices_hint(fabric_name, spec.fabrics, 'fabrics')}")
    try:
        dump = parse_ibnetdiscover(line for _, line in lines(dump_path, "ibnetdiscover dump",
                                                             max_input_mib or DEFAULT_MAX_MIB))
    except InputError as exc:
        return fail(exc.message, exc.hint)
    if not dump.ports:
        return fail(f"{dump_path} holds no ibnetdiscover records", "run 'ibnetdiscover > FILE' on the fabric")
    fp = plan_fabric(spec, plan_hosts(spec), fabric_name)
    try:
        scope = scope_of(fp, list(subnets or ()), list(rails or ()))
    except ValueError as exc:
        return fail(*exc.args)
    result = compare(fp, dump, scope)
    for line in report(result):
        print(line)
    return 0 if result.matches else 1
