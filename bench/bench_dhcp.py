"""Benchmark: Kea serving N DHCP clients (DISCOVER/OFFER/REQUEST/ACK) with the plan's rendered reservations.

Each simulated client is a reserved MAC of the plan and speaks as a relay agent would on its behalf: a relayed
DHCPv4 packet (giaddr set) sent by unicast to Kea's UDP port. Two sub-options of the Relay Agent Information option
(82) keep everything on loopback without raw sockets or root: link selection (RFC 3527) names an address in the
management subnet, so Kea picks the planned subnet by it and not by giaddr, and relay source port (RFC 8357) makes
Kea answer the port the packet came from rather than 67. Kea runs the rendered configuration unchanged except for
where it listens (udp on 127.0.0.1, a free port), its lease file and its pid folder.

Every client must get exactly its reserved address in the OFFER and in the ACK, its planned host name, and the boot
file its class gives an iPXE client (option 77 = iPXE); the run exits 1 when one does not. Printed: leases/s, p50/p99
latency of a whole exchange, total time, the configuration's size, `kea-dhcp4 -t` time and Kea's start-up time.
Nothing is asserted about a time.

Run: python bench/bench_dhcp.py [--example colossus-100k] [--clients 1000] [--window 32]

``--example lab`` uses the committed MACs of the lab; the other examples get a provisioner role on their controller
pool and a made-up MAC for every host.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import selectors
import shutil
import socket
import statistics
import struct
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

KEA = shutil.which("kea-dhcp4") or ("/usr/sbin/kea-dhcp4" if Path("/usr/sbin/kea-dhcp4").exists() else None)

DISCOVER, OFFER, REQUEST, DECLINE, ACK, NAK = 1, 2, 3, 4, 5, 6
MAGIC = b"\x63\x82\x53\x63"
IPXE = b"iPXE"


# -- the packets


def relayed(kind: int, mac: str, xid: int, relay: str, link: str, extra: bytes = b"") -> bytes:
    """A DHCPv4 request from ``mac`` as relay ``relay`` forwards it, for the subnet holding ``link``."""
    chaddr = bytes.fromhex(mac.replace(":", "")).ljust(16, b"\0")
    zero = b"\0" * 4
    head = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 1, xid, 0, 0, zero, zero, zero,
                       socket.inet_aton(relay), chaddr, b"", b"")
    rai = bytes([5, 4]) + socket.inet_aton(link) + bytes([19, 0])  # link selection, relay source port
    opts = (bytes([53, 1, kind]) + bytes([55, 4, 1, 3, 12, 67]) + bytes([77, len(IPXE)]) + IPXE + extra
            + bytes([82, len(rai)]) + rai + bytes([255]))
    return head + MAGIC + opts


@dataclass(frozen=True)
class Reply:
    kind: int
    xid: int
    mac: str
    yiaddr: str
    server_id: str | None
    hostname: str | None
    boot_file: str | None


def parse(data: bytes) -> Reply | None:
    if len(data) < 240 or data[0] != 2 or data[236:240] != MAGIC:
        return None
    xid = struct.unpack("!I", data[4:8])[0]
    mac = ":".join(f"{b:02x}" for b in data[28:34])
    opts: dict[int, bytes] = {}
    i = 240
    while i < len(data) and data[i] != 255:
        if data[i] == 0:
            i += 1
            continue
        if i + 1 >= len(data):
            break
        code, n = data[i], data[i + 1]
        opts[code] = data[i + 2:i + 2 + n]
        i += 2 + n
    kind = opts.get(53, b"\0")[0]
    boot = opts.get(67) or data[108:236].rstrip(b"\0") or None
    return Reply(kind, xid, mac, socket.inet_ntoa(data[16:20]),
                 socket.inet_ntoa(opts[54]) if len(opts.get(54, b"")) == 4 else None,
                 opts[12].decode() if 12 in opts else None, boot.decode() if boot else None)


# -- the load generator


@dataclass
class Client:
    host: str
    mac: str
    address: str | None  # the reserved address; None: a MAC the plan does not know, which must get nothing
    xid: int = 0
    state: str = "new"  # new -> discovering -> requesting -> bound | failed
    tries: int = 0
    sent_at: float = 0.0
    started: float = 0.0
    latency: float = 0.0
    problems: list[str] = field(default_factory=list)
    boot_file: str | None = None


@dataclass
class Result:
    clients: list[Client]
    seconds: float

    @property
    def bound(self) -> list[Client]:
        return [c for c in self.clients if c.state == "bound"]

    def problems(self) -> list[str]:
        """Every way a client's exchange differs from its plan; empty when all is right."""
        out = []
        for c in self.clients:
            out += [f"{c.host} ({c.mac}): {p}" for p in c.problems]
            if c.address is not None and c.state != "bound" and not c.problems:
                out.append(f"{c.host} ({c.mac}): no lease ({c.state} after {c.tries} tries)")
        return out


def run_clients(clients: list[Client], server: tuple[str, int], link: str, relay: str = "127.0.0.1",
                window: int = 32, timeout: float = 1.0, tries: int = 3, boot_file: str | None = None) -> Result:
    """Run every client's DISCOVER/OFFER/REQUEST/ACK against ``server``, at most ``window`` exchanges at once.

    A client is right when its OFFER and ACK carry its reserved address (and ``boot_file``, when given); a client
    without a reservation is right when it gets no answer at all."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    sock.bind((relay, 0))
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ)
    rng = random.Random(4242)  # transaction ids differ per client, the same on every run
    by_xid: dict[int, Client] = {}
    waiting = list(reversed(clients))
    active: list[Client] = []
    t0 = time.perf_counter()

    def send(c: Client, kind: int, extra: bytes = b"") -> None:
        c.sent_at = time.perf_counter()
        sock.sendto(relayed(kind, c.mac, c.xid, relay, link, extra), server)

    def start(c: Client) -> None:
        c.xid = rng.getrandbits(32)
        while c.xid in by_xid:
            c.xid = rng.getrandbits(32)
        by_xid[c.xid] = c
        c.state, c.tries, c.started = "discovering", 1, time.perf_counter()
        send(c, DISCOVER)

    def finish(c: Client, state: str) -> None:
        c.state = state
        active.remove(c)
        del by_xid[c.xid]

    while waiting or active:
        while waiting and len(active) < window:
            c = waiting.pop()
            active.append(c)
            start(c)
        for _key, _ev in sel.select(timeout=0.05):
            while True:
                try:
                    data = sock.recv(4096)
                except BlockingIOError:
                    break
                r = parse(data)
                c = by_xid.get(r.xid) if r else None
                if c is None or r.mac != c.mac:
                    continue
                if c.address is None:
                    c.problems.append(f"a MAC without a reservation was answered (type {r.kind}, {r.yiaddr})")
                    finish(c, "failed")
                elif c.state == "discovering" and r.kind == OFFER:
                    if r.yiaddr != c.address:
                        c.problems.append(f"offered {r.yiaddr}, reserved {c.address}")
                    c.state, c.tries = "requesting", 1
                    server_id = socket.inet_aton(r.server_id or server[0])
                    send(c, REQUEST, bytes([50, 4]) + socket.inet_aton(r.yiaddr) + bytes([54, 4]) + server_id)
                elif c.state == "requesting" and r.kind in (ACK, NAK):
                    if r.kind == NAK:
                        c.problems.append("NAK for its reserved address")
                    elif r.yiaddr != c.address:
                        c.problems.append(f"acknowledged {r.yiaddr}, reserved {c.address}")
                    if r.kind == ACK and r.hostname != c.host:
                        c.problems.append(f"host name {r.hostname!r}, planned {c.host!r}")
                    c.boot_file = r.boot_file
                    if boot_file is not None and r.kind == ACK and r.boot_file != boot_file:
                        c.problems.append(f"boot file {r.boot_file!r}, expected {boot_file!r}")
                    c.latency = time.perf_counter() - c.started
                    finish(c, "bound" if not c.problems else "failed")
        now = time.perf_counter()
        for c in list(active):
            if now - c.sent_at < timeout:
                continue
            if c.tries >= tries:
                finish(c, "silent" if c.address is None else "failed")
            else:
                c.tries += 1
                c.state = "discovering"  # a lost OFFER or ACK: the exchange again, as a client would
                send(c, DISCOVER)
    seconds = time.perf_counter() - t0
    sel.close()
    sock.close()
    return Result(clients, seconds)


# -- Kea with a rendered configuration


def local_config(rendered: bytes, work: Path, address: str = "127.0.0.1", log: bool = False) -> dict:
    """The rendered configuration, listening with udp sockets on ``address`` of the loopback, leases under ``work``."""
    conf = json.loads(rendered)
    d = conf["Dhcp4"]
    d["interfaces-config"] = {"interfaces": [f"lo/{address}"], "dhcp-socket-type": "udp"}
    d["lease-database"].update(name=str(work / "kea-leases4.csv"), **{"lfc-interval": 0})
    if log:
        d["loggers"] = [{"name": "kea-dhcp4", "output_options": [{"output": str(work / "kea.log")}],
                         "severity": "INFO"}]
    return conf


def free_udp_port(address: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((address, 0))
        return s.getsockname()[1]


class Kea:
    """kea-dhcp4 on a free loopback port with ``conf``; stopped by PID."""

    def __init__(self, conf: dict, work: Path, address: str = "127.0.0.1"):
        self.work = work
        self.address = address
        self.port = free_udp_port(address)
        self.path = work / "kea-dhcp4.conf"
        self.path.write_text(json.dumps(conf))
        run = work / "kea-run"
        run.mkdir(exist_ok=True)
        self.out = work / "kea.out"
        t0 = time.perf_counter()
        with open(self.out, "wb") as fh:
            self.proc = subprocess.Popen([KEA, "-c", str(self.path), "-p", str(self.port)], stdout=fh,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, "KEA_PIDFILE_DIR": str(run),
                                              "KEA_LOCKFILE_DIR": str(run)})
        log = work / "kea.log"
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            text = self.out.read_text(errors="replace") + (log.read_text(errors="replace") if log.exists() else "")
            if "DHCP4_STARTED" in text:
                break
            if self.proc.poll() is not None:
                raise RuntimeError(f"kea-dhcp4 exited {self.proc.returncode}: {text[-3000:]}")
            time.sleep(0.01)
        else:
            self.stop()
            raise RuntimeError(f"kea-dhcp4 did not start: {self.out.read_text()[-3000:]}")
        self.start_seconds = time.perf_counter() - t0

    @property
    def server(self) -> tuple[str, int]:
        return self.address, self.port

    def cpu_seconds(self) -> float:
        """User and system CPU time Kea has used so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# -- a plan with many recorded MACs


def made_up_mac(n: int) -> str:
    return f"52:54:{n >> 24 & 255:02x}:{n >> 16 & 255:02x}:{n >> 8 & 255:02x}:{n & 255:02x}"


def example_plan(example: str, work: Path):
    """The plan of a cluster example with a provisioner and every host's MAC recorded (lab: its committed MACs)."""
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan

    if example == "lab":
        checked = check_spec(ROOT / "clusters" / "lab.yaml")
    else:
        from gpucloud.spec import discovered
        from gpucloud.spec.model import HostHardware

        text = (ROOT / "clusters" / f"{example}.yaml").read_text()
        # The controller pool also runs the provisioning service.
        text, n = re.subn(r"roles: \[slurm-controller,", "roles: [provisioner, slurm-controller,", text, count=1)
        if n != 1:
            raise SystemExit(f"{example}: no controller pool to give the provisioner role")
        spec = work / f"{example}.yaml"
        spec.write_text(text)
        checked = check_spec(spec)
        hosts, n = {}, 0
        for pool in checked.spec.pools:
            for i in pool.indices:
                n += 1
                hosts[pool.hostname_for(i)] = HostHardware(made_up_mac(n), (made_up_mac(n),))
        (work / "discovered").mkdir(exist_ok=True)
        discovered.write(work / "discovered" / f"{example}.yaml", example, hosts)
        checked = check_spec(spec)
    errors = [f for f in checked.findings if f.level == "error"]
    if errors:
        raise SystemExit(f"{example}: {errors[:3]}")
    return build_plan(checked.spec)


def pick(reservations, count: int) -> list:
    """``count`` reservations spread evenly over all of them (every pool, first and last host)."""
    if count >= len(reservations):
        return list(reservations)
    if count <= 1:
        return list(reservations[:count])
    last = len(reservations) - 1
    return [reservations[i * last // (count - 1)] for i in range(count)]


def clients_for(reservations) -> list[Client]:
    return [Client(r.host, r.mac, r.address) for r in reservations]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--example", default="colossus-100k")
    ap.add_argument("--clients", type=int, default=1000)
    ap.add_argument("--window", type=int, default=32, help="exchanges in flight at once")
    args = ap.parse_args(argv)
    if KEA is None:
        print("kea-dhcp4 is missing (apt-get install kea-dhcp4-server)", file=sys.stderr)
        return 2
    from gpucloud.render.provision import kea_config

    with tempfile.TemporaryDirectory(prefix="bench-dhcp-") as tmp:
        work = Path(tmp)
        t0 = time.perf_counter()
        plan = example_plan(args.example, work)
        p = plan.provision
        rendered = kea_config(p)
        render_s = time.perf_counter() - t0
        (work / "rendered.conf").write_bytes(rendered)
        t0 = time.perf_counter()
        check = subprocess.run([KEA, "-t", str(work / "rendered.conf")], capture_output=True, text=True)
        check_s = time.perf_counter() - t0
        if check.returncode != 0:
            print(check.stdout[-3000:] + check.stderr[-3000:], file=sys.stderr)
            return 1
        kea = Kea(local_config(rendered, work), work)
        try:
            chosen = pick(p.reservations, args.clients)
            cpu0, ours0 = kea.cpu_seconds(), time.process_time()
            result = run_clients(clients_for(chosen), kea.server, p.gateway, window=args.window,
                                 boot_file=f"{p.http_base}/ipxe/boot.ipxe")
            kea_cpu, our_cpu = kea.cpu_seconds() - cpu0, time.process_time() - ours0
        finally:
            kea.stop()
        problems = result.problems()
        lat = [c.latency * 1000 for c in result.bound]
        print(f"example {args.example}: {len(p.reservations):,} reservations, kea-dhcp4.conf "
              f"{len(rendered) / 1e6:.2f} MB (planned and rendered in {render_s:.1f} s)")
        print(f"kea-dhcp4 -t            {check_s:.2f} s")
        print(f"kea-dhcp4 start-up      {kea.start_seconds:.2f} s (until DHCP4_STARTED)")
        print(f"clients                 {len(result.clients):,}, {args.window} in flight, each with a reserved MAC")
        print(f"total                   {result.seconds:.2f} s for {len(result.bound):,} DISCOVER/OFFER/REQUEST/ACK")
        if lat:
            print(f"leases/s                {len(result.bound) / result.seconds:,.0f}")
            print(f"latency p50 / p99       {statistics.median(lat):.1f} ms / {percentile(lat, 99):.1f} ms "
                  f"(a whole exchange, DISCOVER sent to ACK received)")
        print(f"CPU                     Kea {kea_cpu:.2f} s, this load generator {our_cpu:.2f} s "
              f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
        retried = sum(1 for c in result.clients if c.tries > 1)
        print(f"retransmitted           {retried}")
        if problems:
            print(f"WRONG: {len(problems)} client(s) did not get their reservation:", *problems[:20], sep="\n  ")
            return 1
        print(f"every client got exactly its reserved address ({len(result.bound):,} of {len(result.clients):,})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
