"""The checks of one node that need no other node, and the parsers of the tools' outputs.

This file runs on the node itself, inside a Slurm job (``gpucloud accept``) or from the slurmd role's resume gate
(copied there as a script): it uses the standard library only and never imports gpucloud. It prints one JSON
object per check and a last line ``{"verdict": ...}``; it exits 0 when every check passed, 1 when one failed.

The tools and the output formats read here:

* ``dcgmi diag -r <level> -j``: DCGM's diagnostic as JSON; DCGM 3 names the top object "DCGM GPU Diagnostic",
  DCGM 4 "DCGM Diagnostic"; each of ``test_categories[].tests[].results[]`` has a ``status`` (Pass, Fail, Warn,
  Skip) and the failing ones ``warnings[].warning``;
* nccl-tests ``all_reduce_perf -b 8M -e 8G -f 2 -g <gpus>``: the summary line ``# Avg bus bandwidth : <GB/s>``,
  the ``#wrong`` columns and ``# Out of bounds values : <n> OK|FAILED``;
* ``ibstat``: per ``CA '<dev>'`` and ``Port <n>:`` the ``State``, ``Physical state`` and ``Rate`` lines;
  ``/sys/class/infiniband/<dev>/ports/<n>/rate`` for the width: ``400 Gb/sec (4X NDR)``;
* perftest ``ib_write_bw --report_gbits``: the row under the ``#bytes #iterations BW peak[Gb/sec]
  BW average[Gb/sec] MsgRate[Mpps]`` header (MB/sec without ``--report_gbits``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time

# --- parsers (pure; unit-tested with the tools' formats) -------------------------------------------------------


class ParseError(ValueError):
    """The output does not look like the tool's output at all (the tool crashed or is a different one)."""


def parse_dcgm(text: str) -> list[str]:
    """The failures of a ``dcgmi diag -j`` run, each as ``<test>: <what>`` (empty when every test passed or was
    skipped). A warning is not a failure: DCGM marks what must stop a node as Fail."""
    start, end = text.find("{"), text.rfind("}")
    if start < 0 or end < start:
        raise ParseError("no JSON object in the dcgmi output")
    try:
        data = json.loads(text[start:end + 1])
    except json.JSONDecodeError as exc:
        raise ParseError(f"dcgmi output is not JSON: {exc}") from None
    body = data.get("DCGM GPU Diagnostic") or data.get("DCGM Diagnostic")
    if not isinstance(body, dict) or not isinstance(body.get("test_categories"), list):
        raise ParseError("dcgmi JSON has no test_categories")
    failures = []
    for category in body["test_categories"]:
        for test in category.get("tests", ()):
            for result in test.get("results", ()):
                if str(result.get("status", "")).lower() != "fail":
                    continue
                gpu = result.get("gpu_id", result.get("gpu_ids"))
                what = "; ".join(str(w.get("warning", "")).strip() for w in result.get("warnings", ()) or ()
                                 if isinstance(w, dict)) or str(result.get("info", "")).strip() or "fail"
                where = f" gpu {gpu}" if gpu not in (None, "") else ""
                failures.append(f"{test.get('name', '?')}{where}: {what}")
    return failures


_AVG_BUSBW = re.compile(r"^#\s*Avg bus bandwidth\s*:\s*([0-9.]+)", re.M)
_OOB = re.compile(r"^#\s*Out of bounds values\s*:\s*(\d+)\s+(\w+)", re.M)
_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+\w+\s+\w+\s+-?\d+\s+(.*)$")


def parse_nccl(text: str) -> dict:
    """``{"busbw": GB/s, "wrong": n}`` from an nccl-tests run: the average bus bandwidth of its summary line and
    the sum of the ``#wrong`` columns (data corruption, whatever the speed)."""
    m = _AVG_BUSBW.search(text)
    if not m:
        raise ParseError("no '# Avg bus bandwidth' line in the nccl-tests output")
    wrong = 0
    for line in text.splitlines():
        row = _ROW.match(line)
        if row:
            cols = row.group(3).split()
            # time algbw busbw #wrong, out-of-place then in-place; "N/A" when validation is off
            wrong += sum(int(c) for c in cols[3::4] if c.isdigit())
    oob = _OOB.search(text)
    if oob and oob.group(2).upper() != "OK":
        wrong += max(int(oob.group(1)), 1)
    return {"busbw": float(m.group(1)), "wrong": wrong}


def parse_ibstat(text: str) -> dict[str, dict[int, dict]]:
    """``{device: {port: {"state", "physical", "rate", "link_layer"}}}`` from ``ibstat``."""
    out: dict[str, dict[int, dict]] = {}
    dev, port = None, None
    for raw in text.splitlines():
        line = raw.strip()
        m = re.match(r"^CA '([^']+)'", line)
        if m:
            dev, port = m.group(1), None
            out[dev] = {}
            continue
        m = re.match(r"^Port (\d+):$", line)
        if m and dev is not None:
            port = int(m.group(1))
            out[dev][port] = {}
            continue
        if dev is None or port is None or ":" not in line:
            continue
        label, _, value = line.partition(":")
        key = {"State": "state", "Physical state": "physical", "Rate": "rate",
               "Link layer": "link_layer"}.get(label.strip())
        if key:
            value = value.strip()
            out[dev][port][key] = int(value) if key == "rate" and value.isdigit() else value
    if not out:
        raise ParseError("no CA in the ibstat output")
    return out


def parse_sysfs_rate(text: str) -> tuple[int, str, str]:
    """(Gb/s, width, speed) from a sysfs port rate: ``400 Gb/sec (4X NDR)`` -> (400, "4X", "NDR")."""
    m = re.match(r"^\s*(\d+)\s*Gb/sec\s*\((\d+X)\s*(\w+)\)", text)
    if not m:
        raise ParseError(f"unexpected sysfs rate {text.strip()!r}")
    return int(m.group(1)), m.group(2), m.group(3)


def parse_ib_write_bw(text: str) -> float:
    """The average bandwidth of a perftest bandwidth run, in Gb/s (MB/sec output is converted)."""
    lines = text.splitlines()
    for i, line in enumerate(lines):
        if "#bytes" not in line or "BW average" not in line:
            continue
        heads = re.findall(r"#bytes|#iterations|BW peak\[[^\]]+\]|BW average\[[^\]]+\]|MsgRate\[[^\]]+\]", line)
        col = next(j for j, h in enumerate(heads) if h.startswith("BW average"))
        unit = heads[col][len("BW average["):-1]
        for row in lines[i + 1:]:
            cols = row.split()
            if len(cols) > col and cols[0].isdigit():
                value = float(cols[col])
                return value if unit.lower().startswith("gb") else value * 8 / 1000
        break
    raise ParseError("no bandwidth row in the ib_write_bw output")


# --- running the checks on the node ----------------------------------------------------------------------------


def _run(argv: list[str], timeout: float) -> tuple[int, str]:
    try:
        p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except FileNotFoundError:
        return 127, f"{argv[0]}: not found on PATH"
    except subprocess.TimeoutExpired:
        return 124, f"{argv[0]}: no result after {timeout:.0f}s"
    return p.returncode, p.stdout + p.stderr


def fmt(x: float) -> str:
    """One decimal, none for a whole number: 41.2, 360."""
    text = f"{x:.1f}"
    return text[:-2] if text.endswith(".0") else text


def check_dcgm(level: int, timeout: float) -> dict:
    rc, out = _run(["dcgmi", "diag", "-r", str(level), "-j"], timeout)
    try:
        failures = parse_dcgm(out)
    except ParseError as exc:
        return {"check": "dcgm", "ok": False, "reason": f"dcgm diag -r {level}: {exc} (exit {rc})"}
    if failures:
        return {"check": "dcgm", "ok": False, "failures": failures,
                "reason": f"dcgm {failures[0]}"[:200]}
    return {"check": "dcgm", "ok": True, "level": level}


def check_nccl(gpus: int, minimum: float | None, timeout: float) -> dict:
    rc, out = _run(["all_reduce_perf", "-b", "8M", "-e", "8G", "-f", "2", "-g", str(gpus)], timeout)
    try:
        got = parse_nccl(out)
    except ParseError as exc:
        return {"check": "nccl", "ok": False, "reason": f"nccl all_reduce_perf: {exc} (exit {rc})"}
    result = {"check": "nccl", "busbw_gbs": got["busbw"], "min_gbs": minimum}
    if got["wrong"]:
        return {**result, "ok": False, "reason": f"nccl {got['wrong']} wrong values"}
    if minimum is not None and got["busbw"] < minimum:
        return {**result, "ok": False, "reason": f"nccl busbw {fmt(got['busbw'])} < {fmt(minimum)} GB/s"}
    return {**result, "ok": True}


def check_links(devices: list[str], rate: int, width: str, sysfs: str, timeout: float) -> dict:
    rc, out = _run(["ibstat"], timeout)
    try:
        cas = parse_ibstat(out)
    except ParseError as exc:
        return {"check": "ib_links", "ok": False, "reason": f"ibstat: {exc} (exit {rc})"}
    links = {}
    for dev in devices:
        port = cas.get(dev, {}).get(1)
        if port is None:
            return {"check": "ib_links", "ok": False, "reason": f"ib {dev} missing"}
        if port.get("state") != "Active" or port.get("physical") != "LinkUp":
            return {"check": "ib_links", "ok": False,
                    "reason": f"ib {dev} {port.get('state', '?')}/{port.get('physical', '?')}"}
        if port.get("rate") != rate:
            return {"check": "ib_links", "ok": False, "reason": f"ib {dev} rate {port.get('rate')} != {rate}"}
        try:
            with open(os.path.join(sysfs, dev, "ports", "1", "rate")) as f:
                _, got_width, speed = parse_sysfs_rate(f.read())
        except (OSError, ParseError) as exc:
            return {"check": "ib_links", "ok": False, "reason": f"ib {dev} width unreadable: {exc}"[:200]}
        if width and got_width != width:
            return {"check": "ib_links", "ok": False, "reason": f"ib {dev} width {got_width} != {width}"}
        links[dev] = f"{rate} {got_width} {speed}"
    return {"check": "ib_links", "ok": True, "links": links}


def check_write_bw(devices: list[str], minimum: float | None, timeout: float) -> dict:
    """Loopback per rail: a server and a client on the same HCA, one rail after the other."""
    figures = {}
    for i, dev in enumerate(devices):
        port = str(18515 + i)
        common = ["ib_write_bw", "-d", dev, "-F", "--report_gbits", "-D", "5", "-p", port]
        server = subprocess.Popen(common, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.5)
            rc, out = _run(common + ["localhost"], timeout)
        finally:
            try:
                server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()
        try:
            figures[dev] = parse_ib_write_bw(out)
        except ParseError as exc:
            return {"check": "ib_write_bw", "ok": False, "reason": f"ib_write_bw {dev}: {exc} (exit {rc})"}
        if minimum is not None and figures[dev] < minimum:
            return {"check": "ib_write_bw", "ok": False, "gbps": figures, "min_gbps": minimum,
                    "reason": f"ib_write_bw {dev} {fmt(figures[dev])} < {fmt(minimum)} Gb/s"}
    return {"check": "ib_write_bw", "ok": True, "gbps": figures, "min_gbps": minimum}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="gpucloud acceptance checks of this node")
    ap.add_argument("--gpus", type=int, default=0)
    ap.add_argument("--dcgm-level", type=int, default=2, choices=(1, 2, 3, 4))
    ap.add_argument("--nccl-min", type=float, default=None, help="GB/s")
    ap.add_argument("--devices", default="", help="comma-separated compute HCAs (mlx5_0,...)")
    ap.add_argument("--rate", type=int, default=0, help="expected link rate, Gb/s")
    ap.add_argument("--width", default="", help="expected link width (4X, 2X)")
    ap.add_argument("--ib-min", type=float, default=None, help="ib_write_bw gate, Gb/s")
    # Where the kernel lists the HCAs; another root where sysfs is mounted elsewhere (a container, a test).
    ap.add_argument("--sysfs", default=os.environ.get("GPUCLOUD_ACCEPT_SYSFS", "/sys/class/infiniband"))
    ap.add_argument("--timeout", type=float, default=3600, help="seconds per tool")
    args = ap.parse_args(argv)
    devices = [d for d in args.devices.split(",") if d]
    results = []
    # Cheapest first; the first failure ends the run (its reason is what the operator sees).
    steps = []
    if devices:
        steps.append(lambda: check_links(devices, args.rate, args.width, args.sysfs, args.timeout))
    if args.gpus:
        steps.append(lambda: check_dcgm(args.dcgm_level, args.timeout))
        steps.append(lambda: check_nccl(args.gpus, args.nccl_min, args.timeout))
    if devices:
        steps.append(lambda: check_write_bw(devices, args.ib_min, args.timeout))
    for step in steps:
        result = step()
        results.append(result)
        print(json.dumps(result, sort_keys=True), flush=True)
        if not result["ok"]:
            break
    failed = next((r for r in results if not r["ok"]), None)
    verdict = {"verdict": "fail" if failed else "pass", "reason": failed["reason"] if failed else ""}
    print(json.dumps(verdict, sort_keys=True), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
