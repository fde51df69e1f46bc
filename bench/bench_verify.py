"""Benchmark: ``gpucloud verify`` over 1,000 loopback hosts; prints the time, it asserts nothing about it.

Every host is a loopback alias (127.78.x.y) of a real sshd (16 aliases per sshd, OpenSSH's listen limit), with the
stand-in tools of tests/fixtures/verify printing a healthy H100 node's recorded output. The figure includes
everything an operator waits for: loading the spec, planning, one SSH session per host with strict host-key
checking, running the collectors and comparing. A second figure, bare sessions running only ``true``, shows how
much of that is sshd and the login shell of this machine rather than verify.
Run: python bench/bench_verify.py [--hosts N] [--parallel P,...] [--no-floor]
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT / "tests" / "fixtures" / "verify"

_spec = importlib.util.spec_from_file_location("verify_harness", FIXTURES / "harness.py")
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

SPEC = """\
name: benchverify
networks:
  management: {{cidr: 10.16.0.0/16, pool_prefix: 20}}
  bmc: {{cidr: 10.17.0.0/16, pool_prefix: 20}}
  ipoib: {{cidr: 10.32.0.0/13, rail_prefix: 16, pool_prefix: 20}}
node_pools:
  - {{name: gpu, id: 0, model: hgx-h100-8, count: {hosts}, hostname: "gpu{{index:04}}", roles: [compute]}}
  - {{name: ctl, id: 1, model: cpu-1u, count: 1, hostname: "ctl{{index:02}}", roles: [slurm-controller, subnet-manager],
     rack: {{first: 900}}}}
fabric:
  compute: {{switch: qm9700, scalable_unit: 32}}
slurm:
  partitions: [{{name: gpu, pools: [gpu], default: true}}]
storage:
  - {{name: home, kind: nfs, server: 10.200.0.10, export: /export/home, mount: /home, pools: [gpu]}}
software: {{nvidia_driver: "550.90.07"}}
"""


def alias(i: int) -> str:
    return f"127.78.{i // 250}.{i % 250 + 1}"


def session_floor(hosts, addresses, port, known_path, key_path, parallel) -> float:
    """Wall time of one SSH session per host running only ``true``, with the same strict host-key checking and
    parallelism: what sshd, key exchange and the login shell cost on this machine before any collector runs."""
    from concurrent.futures import ThreadPoolExecutor

    import paramiko

    from gpucloud.verify.known_hosts import KnownHosts, StrictPolicy, lookup_names

    known = KnownHosts.load(known_path)
    pkey = paramiko.PKey.from_path(key_path)

    def one(name):
        client = paramiko.SSHClient()
        client.set_missing_host_key_policy(StrictPolicy(known, lookup_names(addresses[name], name, port)))
        try:
            client.connect(addresses[name], port=port, pkey=pkey, allow_agent=False, look_for_keys=False, timeout=120)
            chan = client.get_transport().open_session()
            chan.exec_command("true")
            chan.recv_exit_status()
        finally:
            client.close()

    t = time.perf_counter()
    with ThreadPoolExecutor(max_workers=parallel) as pool:
        list(pool.map(one, [he.name for he in hosts]))
    return time.perf_counter() - t


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--parallel", default="32,64", help="comma-separated --parallel values to time")
    ap.add_argument("--no-floor", dest="floor", action="store_false",
                    help="skip timing bare SSH sessions (the cost of sshd and the login shell here)")
    args = ap.parse_args()
    if harness.SSHD is None or harness.SSH_KEYGEN is None:
        print("sshd and ssh-keygen are needed (apt-get install openssh-server openssh-client)")
        return 2
    sys.path.insert(0, str(ROOT))
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan
    from gpucloud.verify.expect import expectations

    with tempfile.TemporaryDirectory(prefix="bench-verify-") as tmpdir:
        tmp = Path(tmpdir)
        spec = tmp / "bench.yaml"
        spec.write_text(SPEC.format(hosts=args.hosts))
        t0 = time.perf_counter()
        plan = build_plan(check_spec(spec).spec)
        hosts = [he for he in expectations(plan) if he.host.pool == "gpu"]
        client_pub = harness.keygen(tmp / "client_key")
        host_key = tmp / "host_key"
        host_pub = harness.keygen(host_key)
        port = harness.free_port()
        addresses = {}
        for i, he in enumerate(hosts):
            addresses[he.name] = alias(i)
            d = harness.render_host(tmp / "hosts", alias(i), he, "hgx-h100-8",
                                    {"findmnt.json": "cpu-2u/findmnt.json"})  # this spec mounts only /home
            # and its rails are /16s
            ip = d / "ip-addr.json"
            ip.write_text(ip.read_text().replace('"prefixlen":22', '"prefixlen":16'))
        (tmp / "addresses.yaml").write_text("".join(f"{n}: {a}\n" for n, a in addresses.items()))
        (tmp / "known_hosts").write_text("".join(
            harness.known_hosts_line([harness.host_entry(a, port)], host_pub) for a in addresses.values()))
        listen = list(addresses.values())
        daemons = []
        try:
            for k in range(0, len(listen), harness.MAX_LISTEN):
                daemons.append(harness.Sshd(tmp / f"sshd{k // harness.MAX_LISTEN}", listen[k:k + harness.MAX_LISTEN],
                                            port, tmp / "hosts", client_pub).start(host_key))
            setup = time.perf_counter() - t0
            print(f"setup: {len(hosts)} hosts on {len(daemons)} sshd processes in {setup:.1f} s")
            if args.floor:
                parallel = int(args.parallel.split(",")[0])
                floor = session_floor(hosts, addresses, port, tmp / "known_hosts", tmp / "client_key", parallel)
                print(f"floor: {len(hosts)} sessions running only 'true' (--parallel {parallel}) in {floor:.1f} s")
            for parallel in [int(p) for p in args.parallel.split(",")]:
                t = time.perf_counter()
                cpu = resource.getrusage(resource.RUSAGE_CHILDREN)
                proc = subprocess.run(
                    [sys.executable, "-m", "gpucloud", "verify", str(spec), "--limit", f"gpu[0001-{args.hosts:04}]",
                     "--known-hosts", str(tmp / "known_hosts"), "--key", str(tmp / "client_key"),
                     "--port", str(port), "--addresses", str(tmp / "addresses.yaml"), "--parallel", str(parallel),
                     "--timeout", "120", "--output", "json"],
                    capture_output=True, text=True, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
                wall = time.perf_counter() - t
                after = resource.getrusage(resource.RUSAGE_CHILDREN)
                client_cpu = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
                try:
                    summary = json.loads(proc.stdout)["summary"]
                except (ValueError, KeyError):
                    print(proc.stdout[-2000:], proc.stderr[-2000:])
                    return 1
                shown = {k: v for k, v in summary.items() if v}
                print(f"verify --parallel {parallel}: {len(hosts)} hosts in {wall:.1f} s "
                      f"({len(hosts) / wall:.0f} hosts/s), exit {proc.returncode}, {shown}; "
                      f"the verify process used {client_cpu:.1f} s of CPU")
        finally:
            for d in daemons:
                d.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
