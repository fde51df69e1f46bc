"""``gpucloud apply``: plan the spec, then preview, gate and update one stack (``--stack``) or every stack of the
split (``--all``) with the Pulumi engine (gpucloud/stack/apply.py)."""

from __future__ import annotations

from pathlib import Path

from gpucloud.stack.apply import EXIT_USAGE, ApplyError, Request, run_stacks, stack_names


def run_cli(spec: Path, stack: str | None, backend: str | None, preview: bool, checked_or_exit, echo,
            allow_replace: bool = False, refresh: bool = False, all_stacks: bool = False) -> int:
    """The `apply` command: exit 2 for usage problems (bad spec, unknown stack, no engine) before anything changes,
    3 when the update would replace or delete nodes and --allow-replace was not given. ``all_stacks``: every stack
    of the plan's split, in order."""
    if (stack is None) == (not all_stacks):
        echo("error: name one stack with --stack NAME, or every stack of the cluster with --all")
        return EXIT_USAGE
    checked = checked_or_exit(spec)
    from gpucloud.plan import build_plan

    plan = build_plan(checked.spec, tuple(checked.findings))
    names = stack_names(plan) if all_stacks or stack is None else [stack]
    requests = [Request(spec=spec, stack=name, backend=backend, preview=preview, allow_replace=allow_replace,
                        refresh=refresh) for name in names]
    try:
        return run_stacks(requests, plan, echo).code
    except ApplyError as exc:
        echo(f"error: {exc}")
        return EXIT_USAGE
