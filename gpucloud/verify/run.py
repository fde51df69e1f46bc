"""Verify many hosts at once: a thread pool of SSH sessions, each bounded by the per-host timeout.

Threads suit the work: each host is mostly waiting on the network and the node's tools, and paramiko releases the
GIL while it waits. Results come back in plan order whatever order hosts answer in.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable

from gpucloud.verify.collect import ConnectFailed, SshOptions, run_host
from gpucloud.verify.compare import compare, pool_drift
from gpucloud.verify.expect import HostExpect
from gpucloud.verify.model import HostFinding, HostResult

_REACHED = {"host-key-unknown": "refused", "host-key-changed": "refused", "host-key-revoked": "refused",
            "ssh-auth": "auth-failed", "timeout": "timeout", "output-limit": "nonconforming"}
_MESSAGES = {"unreachable": "unreachable", "timeout": "no SSH session within the host timeout",
             "host-key-unknown": "host key unknown: refused", "host-key-changed": "host key changed: refused",
             "host-key-revoked": "host key revoked: refused", "ssh-auth": "SSH authentication failed",
             "ssh-error": "SSH failed", "output-limit": "collector output over the limit"}


def verify_host(he: HostExpect, known, opts: SshOptions) -> HostResult:
    try:
        collected = run_host(he, known, opts)
    except ConnectFailed as exc:
        finding = HostFinding(he.name, exc.check, _MESSAGES.get(exc.check, exc.check), exc.detail)
        return HostResult(he.name, he.pool.pool, he.address, _REACHED.get(exc.check, "unreachable"), [finding])
    return compare(he, collected)


def verify_all(expects: list[HostExpect], known, opts: SshOptions, parallel: int,
               on_done: Callable[[HostResult], None] | None = None) -> list[HostResult]:
    results: list[HostResult | None] = [None] * len(expects)
    if not expects:
        return []
    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(expects))),
                            thread_name_prefix="verify") as pool:
        futures = {pool.submit(verify_host, he, known, opts): i for i, he in enumerate(expects)}
        for fut in as_completed(futures):
            i = futures[fut]
            try:
                result = fut.result()
            except Exception as exc:  # a bug for one host must not hide the other 9,999 results
                he = expects[i]
                result = HostResult(he.name, he.pool.pool, he.address, "unreachable",
                                    [HostFinding(he.name, "ssh-error", "verify failed on this host",
                                                 f"{type(exc).__name__}: {exc}"[:300])])
            results[i] = result
            if on_done is not None:
                on_done(result)
    done = [r for r in results if r is not None]
    pool_drift([r for r in done if r.reached == "ok"])
    return done


def progress_bar(total: int):
    """A rich progress bar on stderr; returns (context manager, callback)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    progress = Progress(TextColumn("verify"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                        TextColumn("{task.fields[bad]} not conforming"),
                        console=Console(stderr=True), transient=True)
    task = progress.add_task("verify", total=total, bad=0)
    bad = 0

    def advance(result: HostResult) -> None:
        nonlocal bad
        if result.status not in ("conforming", "warning"):
            bad += 1
        progress.update(task, advance=1, bad=bad)

    return progress, advance
