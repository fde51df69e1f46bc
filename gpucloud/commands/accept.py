"""``gpucloud accept``: the command's glue between the spec, the plan, Slurm (gpucloud.accept) and the report files."""

from __future__ import annotations

import getpass
import os
import tempfile
from pathlib import Path
from typing import Callable

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def _write(path: Path, data: bytes) -> None:
    """Whole or not at all: a temporary file in the same folder, renamed over the old report."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def run_cli(spec: Path, limit: str | None, parallel: int, report: Path, hold: bool, account: str | None,
            srun_args: list[str], pairs: bool, checked_or_exit: Callable, say: Callable[[str], None]) -> int:
    from gpucloud.accept.run import PENDING_REASON, Options, accept, report_json, report_markdown
    from gpucloud.accept.slurm import Slurm, SlurmError
    from gpucloud.hostlist import compress, expand
    from gpucloud.plan import build_plan
    from gpucloud.plan.acceptance import acceptance_nodes

    from ClusterShell.NodeSet import NodeSetException

    from gpucloud.hostlist import HostlistTooLarge

    only = None
    if limit is not None:
        shown = limit if len(limit) <= 80 else limit[:77] + "..."
        try:
            only = expand(limit)
        except HostlistTooLarge as exc:
            say(f"error: --limit {shown!r} is too large: {exc}; hint: name the hosts to test, e.g. gpu[0001-0128]")
            return EXIT_USAGE
        except (NodeSetException, ValueError, OverflowError) as exc:
            say(f"error: --limit {shown!r} is not a hostlist: {exc}; hint: write e.g. gpu[001-016]")
            return EXIT_USAGE
    checked = checked_or_exit(spec)
    plan = build_plan(checked.spec)
    overrides = ((checked.loaded.data or {}).get("acceptance") or {}).get("thresholds") or {}
    nodes = acceptance_nodes(plan, overrides, only)
    if only is not None:
        unknown = sorted(set(only) - {n.name for n in nodes})
        if unknown:
            say(f"error: --limit names hosts that are not compute nodes of {plan.spec.name}: "
                f"{compress(unknown)}; hint: `gpucloud hosts {spec}` lists them")
            return EXIT_USAGE
    if not nodes:
        say(f"error: {plan.spec.name} has no compute nodes to accept")
        return EXIT_USAGE
    slurm = Slurm()
    try:
        if hold:
            states = slurm.nodes()
            todo = [n.name for n in nodes if n.name in states and not states[n.name].held]
            if todo:
                slurm.drain(compress(todo), PENDING_REASON)
            say(f"held {len(todo)} node(s) with reason '{PENDING_REASON}'; "
                f"{len(nodes) - len(todo)} already held or unknown to Slurm")
            return EXIT_OK
        if slurm.reservation_exists("gpucloud-accept"):
            say("error: reservation gpucloud-accept exists: another acceptance run is going on (or one was killed; "
                "`scontrol delete ReservationName=gpucloud-accept` once no test job runs)")
            return EXIT_USAGE
        report.mkdir(parents=True, exist_ok=True)
        opts = Options(parallel=parallel, account=account, user=getpass.getuser(), srun_args=tuple(srun_args),
                       pairs=pairs)
        verdicts = accept(slurm, nodes, opts, say)
    except SlurmError as exc:
        say(f"error: {exc}")
        return EXIT_USAGE
    except OSError as exc:
        say(f"error: could not write the report to {report}: {exc}")
        return EXIT_USAGE
    _write(report / "accept.json", report_json(plan.spec.name, verdicts))
    _write(report / "accept.md", report_markdown(plan.spec.name, verdicts))
    counts = {k: sum(v.result == k for v in verdicts) for k in ("pass", "fail", "skipped", "untested")}
    say(f"{counts['pass']} passed, {counts['fail']} failed and held, {counts['skipped']} skipped; "
        f"report in {report}/accept.md and accept.json")
    return EXIT_FAILED if counts["fail"] else EXIT_OK
