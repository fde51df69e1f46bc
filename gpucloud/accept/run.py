"""One acceptance run over held nodes: reserve, resume into the reservation, test, drain the failures, release.

The order keeps every node out of user jobs until it passed: the maintenance reservation exists before any node
is resumed, a node that fails is drained with its reason at once, and whatever happens (an error, Ctrl-C) a node
without a verdict is drained again before the reservation goes away.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gpucloud.accept import node as node_checks
from gpucloud.accept.slurm import Slurm
from gpucloud.hostlist import compress
from gpucloud.plan.acceptance import AcceptNode, PairSchedule, by_su

RESERVATION = "gpucloud-accept"
REASON_PREFIX = "accept:"
PENDING_REASON = "accept: pending"
INTERRUPTED_REASON = "accept: interrupted before a verdict"


@dataclass
class Options:
    parallel: int = 8
    account: str | None = None
    user: str = "root"
    immediate_s: int = 300  # how long a test job may wait for its node before the node counts as failed
    time_limit_min: int = 120
    srun_args: tuple[str, ...] = ()
    pairs: bool = True


@dataclass
class Verdict:
    node: AcceptNode
    result: str = "untested"  # pass, fail, skipped, untested
    reason: str = ""
    checks: list[dict] = field(default_factory=list)
    pairs: list[dict] = field(default_factory=list)

    def as_dict(self) -> dict:
        n = self.node
        return {"name": n.name, "pool": n.pool, "su": n.su, "result": self.result, "reason": self.reason,
                "checks": self.checks, "pairs": self.pairs, "thresholds": n.thresholds.as_dict()}


def node_args(n: AcceptNode) -> list[str]:
    """node.py's arguments for ``n``: what to run and the gates, from the plan and the catalog."""
    t = n.thresholds
    args = ["--gpus", str(n.gpus), "--dcgm-level", str(t.dcgm_level)]
    if t.nccl_busbw is not None:
        args += ["--nccl-min", f"{t.nccl_busbw.value:g}"]
    if n.devices:
        args += ["--devices", ",".join(n.devices), "--rate", str(t.link_rate_gbps), "--width", t.link_width]
        if t.ib_write_bw is not None:
            args += ["--ib-min", f"{t.ib_write_bw.value:g}"]
    return args


def _job_args(opts: Options, nodes: list[AcceptNode], label: str) -> list[str]:
    first = nodes[0]
    args = [f"--reservation={RESERVATION}", f"--nodelist={','.join(n.name for n in nodes)}", f"--nodes={len(nodes)}",
            "--ntasks-per-node=1", "--exclusive", f"--immediate={opts.immediate_s}", f"--time={opts.time_limit_min}",
            f"--job-name=gpucloud-accept-{label}", "--quiet"]
    if first.gpus:
        args.append(f"--gres=gpu:{first.gpus}")
    if first.partition:
        args.append(f"--partition={first.partition}")
    if opts.account:
        args.append(f"--account={opts.account}")
    return args + list(opts.srun_args)


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip()[:160] if lines else ""


def run_node(slurm: Slurm, opts: Options, n: AcceptNode) -> tuple[bool, str, list[dict]]:
    script = Path(node_checks.__file__).read_text()
    args = _job_args(opts, [n], "node") + ["python3", "-c", script, *node_args(n)]
    rc, out, err = slurm.srun(args, timeout=opts.immediate_s + opts.time_limit_min * 60 + 60)
    checks, verdict = [], None
    for line in out.splitlines():
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict) and "verdict" in obj:
            verdict = obj
        elif isinstance(obj, dict) and "check" in obj:
            checks.append(obj)
    if verdict is None:
        return False, f"{REASON_PREFIX} test job failed (exit {rc}): {_last_line(err or out)}", checks
    if verdict["verdict"] != "pass":
        return False, f"{REASON_PREFIX} {verdict['reason']}", checks
    return True, "", checks


def run_pair(slurm: Slurm, opts: Options, a: AcceptNode, b: AcceptNode) -> tuple[bool, dict]:
    gate = a.thresholds.nccl_pair_busbw
    args = _job_args(opts, [a, b], "pair") + ["all_reduce_perf", "-b", "8M", "-e", "8G", "-f", "2",
                                               "-g", str(a.gpus)]
    rc, out, err = slurm.srun(args, timeout=opts.immediate_s + opts.time_limit_min * 60 + 60)
    record = {"nodes": [a.name, b.name], "min_gbs": gate.value if gate else None}
    try:
        got = node_checks.parse_nccl(out)
    except node_checks.ParseError as exc:
        return False, {**record, "ok": False, "reason": f"nccl pair job failed (exit {rc}): {exc}; "
                                                        f"{_last_line(err)}"[:200]}
    record["busbw_gbs"] = got["busbw"]
    if got["wrong"]:
        return False, {**record, "ok": False, "reason": f"nccl pair {got['wrong']} wrong values"}
    if gate is not None and got["busbw"] < gate.value:
        got_s, want_s = node_checks.fmt(got["busbw"]), node_checks.fmt(gate.value)
        return False, {**record, "ok": False, "reason": f"nccl pair busbw {got_s} < {want_s} GB/s"}
    return True, {**record, "ok": True}


def accept(slurm: Slurm, nodes: tuple[AcceptNode, ...], opts: Options,
           say: Callable[[str], None] = lambda m: None) -> list[Verdict]:
    """Test the held ones among ``nodes``; the others are skipped with the reason why."""
    states = slurm.nodes()
    verdicts = {n.name: Verdict(n) for n in nodes}
    held = []
    for n in nodes:
        st = states.get(n.name)
        v = verdicts[n.name]
        if st is None:
            v.result, v.reason = "skipped", "not known to Slurm (is it in slurm.conf and is slurmd running?)"
        elif not st.held:
            v.result, v.reason = "skipped", (f"not held (state {st.state}): drain it first "
                                             "(gpucloud accept --hold) so it runs no user job while tested")
        else:
            held.append(n)
    if not held:
        return list(verdicts.values())
    names = compress(n.name for n in held)
    slurm.reserve(RESERVATION, names, opts.user)
    try:
        slurm.resume(names)
        say(f"testing {len(held)} node(s) in reservation {RESERVATION}, {opts.parallel} job(s) at a time")

        def fail(v: Verdict, reason: str) -> None:
            v.result, v.reason = "fail", reason[:250]
            slurm.drain(v.node.name, v.reason)
            say(f"{v.node.name}: {v.reason}")

        with ThreadPoolExecutor(max_workers=opts.parallel) as pool:
            for n, (ok, reason, checks) in zip(held, pool.map(lambda n: run_node(slurm, opts, n), held)):
                v = verdicts[n.name]
                v.checks = checks
                if ok:
                    v.result = "checked"  # not "pass" until the pair runs are done too
                else:
                    fail(v, reason)
            checked = [n for n in held if verdicts[n.name].result == "checked"]
            if opts.pairs:
                _pairs(slurm, opts, checked, verdicts, pool, fail)
        for v in verdicts.values():
            if v.result == "checked":
                v.result = "pass"
                say(f"{v.node.name}: passed")
    finally:
        # A node resumed into the reservation without a verdict must not leave it in service.
        unjudged = [n.name for n in held if verdicts[n.name].result not in ("pass", "fail")]
        if unjudged:
            for name in unjudged:
                verdicts[name].result, verdicts[name].reason = "untested", INTERRUPTED_REASON
            slurm.drain(compress(unjudged), INTERRUPTED_REASON)
        slurm.unreserve(RESERVATION)
    return list(verdicts.values())


def _pairs(slurm, opts, passed, verdicts, pool, fail) -> None:
    by_name = {n.name: n for n in passed}
    groups = by_su(passed)
    schedules = {key: PairSchedule(names) for key, names in groups.items() if
                 by_name[names[0]].gpus and by_name[names[0]].devices}
    for round_no in (1, 2):
        runs = []
        for (pool_name, _), sched in sorted(schedules.items()):
            spares = [g for (p, _), other in sorted(schedules.items()) if p == pool_name and other is not sched
                      for g in other.good]
            runs += [(sched, pair) for pair in sched.next_round(spares)]
        results = pool.map(lambda r: run_pair(slurm, opts, by_name[r[1][0]], by_name[r[1][1]]), runs)
        for (sched, pair), (ok, record) in zip(runs, results):
            record["round"] = round_no
            for name in pair:
                verdicts[name].pairs.append(record)
            sched.record(pair, ok)
    for sched in schedules.values():
        for name, pair in sorted(sched.bad.items()):
            record = next(r for r in verdicts[name].pairs if r["nodes"] == list(pair))
            partner = pair[1] if pair[0] == name else pair[0]
            fail(verdicts[name], f"{REASON_PREFIX} {record['reason']} (with {partner})")
        for name in sched.untested:
            verdicts[name].pairs.append({"nodes": [name], "ok": None,
                                         "reason": "no partner in its pool for a two-node run"})


# --- reports ------------------------------------------------------------------------------------------------------


def report_json(cluster: str, verdicts: list[Verdict]) -> bytes:
    counts = {k: sum(v.result == k for v in verdicts) for k in ("pass", "fail", "skipped", "untested")}
    data = {"cluster": cluster, "reservation": RESERVATION, "summary": counts,
            "nodes": [v.as_dict() for v in verdicts]}
    return (json.dumps(data, indent=2, sort_keys=True) + "\n").encode()


def report_markdown(cluster: str, verdicts: list[Verdict]) -> bytes:
    counts = {k: sum(v.result == k for v in verdicts) for k in ("pass", "fail", "skipped", "untested")}
    lines = [f"# Acceptance of {cluster}", "",
             ", ".join(f"{c} {k}" for k, c in counts.items()), "",
             "| node | pool | SU | result | reason | NCCL GB/s | pair NCCL GB/s |", "|---|---|---|---|---|---|---|"]
    for v in verdicts:
        nccl = next((f"{c['busbw_gbs']:.1f}" for c in v.checks if c.get("check") == "nccl" and "busbw_gbs" in c), "")
        pair = ", ".join(f"{p['busbw_gbs']:.1f}" for p in v.pairs if "busbw_gbs" in p)
        reason = v.reason.replace("|", "\\|")
        lines.append(f"| {v.node.name} | {v.node.pool} | {v.node.su} | {v.result} | {reason} | {nccl} | {pair} |")
    return ("\n".join(lines) + "\n").encode()
