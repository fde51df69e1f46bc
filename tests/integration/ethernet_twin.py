"""A twin of a planned Ethernet fabric: one network namespace per switch, a veth pair per planned leaf-spine cable
(named after the SONiC ports at both ends), and the switch's own rendered frr.conf run by FRR's zebra and bgpd in its
namespace; lldpd in the same namespaces answers ``lldpcli show neighbors -f json`` as a switch would.

Each leaf holds its hosts' subnet on a local veth pair (the gateway address the SONiC VLAN interface carries), so BGP
announces exactly what the switch would. Started and stopped by PID; the namespaces are removed on stop.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from gpucloud.plan.ethernet import LEAF_TIER, EthernetFabricPlan

FRR = Path("/usr/lib/frr")


def available() -> str | None:
    """Why the twin cannot run here, or None."""
    for tool in (FRR / "zebra", FRR / "bgpd"):
        if not tool.exists():
            return f"{tool} is missing (apt: frr)"
    for tool in ("vtysh", "lldpd", "lldpcli", "ip"):
        if shutil.which(tool) is None:
            return f"{tool} is missing (apt: frr lldpd iproute2)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    try:
        pwd.getpwnam("frr")
    except KeyError:
        return "the frr user is missing (apt: frr)"
    return None


# The kernel's neighbour tables are shared by every namespace (gc_thresh* are set in the first one only): each end
# of a cable holds its peer's IPv6 link-local address (BGP unnumbered) and its IPv4 stand-in, so 512 cables fill
# the default hard limit of 1,024 entries exactly and the table overflows ("ndisc_cache: neighbor table overflow!"),
# leaving sessions without routes. The twin raises the limits to fit its cables while it runs and puts them back.
NEIGH = Path("/proc/sys/net")


def _neigh_limits(cables: int) -> dict[Path, int]:
    need = 4 * cables + 1024
    return {NEIGH / family / "neigh" / "default" / f"gc_thresh{i}": value
            for family in ("ipv4", "ipv6") for i, value in ((1, need // 4), (2, need // 2), (3, need))}


def _run(*args: str, stdin: str | None = None) -> str:
    out = subprocess.run(args, input=stdin, capture_output=True, text=True, timeout=120)
    if out.returncode:
        raise RuntimeError(f"{' '.join(args[:6])}: {out.stderr.strip()}")
    return out.stdout


class Twin:
    def __init__(self, fp: EthernetFabricPlan, files: dict[str, bytes]):
        self.fp = fp
        self.files = files
        tag = f"gct{os.getpid() % 100000}"
        self.ns = {sw.name: f"{tag}-{i}" for i, sw in enumerate(fp.switches)}
        # FRR drops to the frr user: its files live in a folder it can reach (pytest's tmp_path is private to root).
        self.root = Path(tempfile.mkdtemp(prefix=f"{tag}-"))
        os.chmod(self.root, 0o755)
        self.procs: list[subprocess.Popen] = []
        self.saved_limits: dict[Path, int] = {}  # neighbour-table limits the twin raised, to put back on stop
        self.cables = [(fp.switches[c.leaf].name, c.leaf_port, fp.switches[c.spine].name, c.spine_port)
                       for c in fp.links]

    def _dir(self, name: str) -> Path:
        return self.root / name

    def start(self) -> None:
        frr = pwd.getpwnam("frr")
        for path, value in _neigh_limits(len(self.cables)).items():
            old = int(path.read_text())
            if old < value:
                self.saved_limits[path] = old
                path.write_text(f"{value}\n")
        batch = []
        for name, ns in self.ns.items():
            _run("ip", "netns", "add", ns)
        for a, ap, b, bp in self.cables:
            batch.append(f"link add name {ap} netns {self.ns[a]} mtu 9100 type veth peer name {bp} netns {self.ns[b]}")
        _run("ip", "-batch", "-", stdin="\n".join(batch) + "\n")
        up: dict[str, list[str]] = {name: [] for name in self.ns}
        for a, ap, b, bp in self.cables:
            up[a].append(ap)
            up[b].append(bp)
        for sw in self.fp.switches:
            ns = self.ns[sw.name]
            lines = ["link set lo up", f"addr add {sw.loopback}/32 dev lo", *(f"link set {p} up" for p in up[sw.name])]
            if sw.tier == LEAF_TIER:
                gw = next(p for p in self.fp.ports if p.leaf == self.fp.switches.index(sw))
                # The hosts' side as a veth pair inside the namespace (the test kernel has no dummy driver).
                lines += ["link add hosts type veth peer name hostside",
                          f"addr add {gw.gateway}/{gw.prefixlen} dev hosts", "link set hostside up",
                          "link set hosts up"]
            _run("ip", "-n", ns, "-batch", "-", stdin="\n".join(lines) + "\n")
            _run("ip", "netns", "exec", ns, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1",
                 "net.ipv6.conf.all.forwarding=1")
            d = self._dir(sw.name)
            d.mkdir()
            (d / "frr.conf").write_bytes(self.files[f"fabric/{self.fp.name}/switches/{sw.name}/frr.conf"])
            (d / "zebra.conf").write_text(f"hostname {sw.name}\n")
            (d / "lldpd.conf").write_text(f"configure system hostname {sw.name}\nconfigure lldp portidsubtype ifname\n"
                                          "configure lldp tx-interval 1\n")
            for f in (d, *d.iterdir()):
                os.chown(f, frr.pw_uid, frr.pw_gid)
            common = ["-u", "frr", "-g", "frr", "-z", str(d / "zserv.api"), "--vty_socket", str(d)]
            self._spawn(ns, d / "zebra.log", str(FRR / "zebra"), *common, "-i", str(d / "zebra.pid"),
                        "-f", str(d / "zebra.conf"), "--log", f"file:{d / 'zebra.log'}")
        for sw in self.fp.switches:
            d = self._dir(sw.name)
            self._wait_for(d / "zserv.api")
            self._spawn(self.ns[sw.name], d / "bgpd.out", str(FRR / "bgpd"), "-u", "frr", "-g", "frr",
                        "-z", str(d / "zserv.api"), "--vty_socket", str(d), "-i", str(d / "bgpd.pid"),
                        "-f", str(d / "frr.conf"), "--log", f"file:{d / 'bgpd.log'}")
            self._spawn(self.ns[sw.name], d / "lldpd.out", "lldpd", "-d", "-u", str(d / "lldpd.socket"),
                        "-O", str(d / "lldpd.conf"), "-I", "Ethernet*", "-L", shutil.which("lldpcli") or "lldpcli")

    def _spawn(self, ns: str, log: Path, *cmd: str) -> None:
        with open(log, "ab") as out:
            self.procs.append(subprocess.Popen(["ip", "netns", "exec", ns, *cmd], stdout=out, stderr=out,
                                               stdin=subprocess.DEVNULL))

    def _wait_for(self, path: Path, timeout: float = 30) -> None:
        end = time.monotonic() + timeout
        while not path.exists():
            dead = [p for p in self.procs if p.poll() is not None]
            if dead or time.monotonic() > end:
                raise RuntimeError(f"{path} did not appear; logs under {self.root}")
            time.sleep(0.05)

    def vtysh(self, switch: str, command: str) -> str:
        return _run("vtysh", "--vty_socket", str(self._dir(switch)), "-c", command)

    def ecmp(self, leaf: str) -> dict[str, tuple[int, int]]:
        """Per IPv4 prefix learned by BGP: (installed next hops, distinct neighbour switches behind them)."""
        routes = json.loads(self.vtysh(leaf, "show ip route bgp json"))
        out = {}
        for prefix, entries in routes.items():
            for e in entries:
                if e.get("selected"):
                    hops = [h for h in e.get("nexthops", []) if h.get("fib")]
                    out[prefix] = (len(hops), len({h.get("interfaceName") for h in hops}))
        return out

    def wait(self, done, timeout: float = 120, step: float = 0.5):
        end = time.monotonic() + timeout
        while True:
            result = done()
            if result or time.monotonic() > end:
                return result
            dead = [p.args for p in self.procs if p.poll() is not None]
            if dead:
                raise RuntimeError(f"a twin daemon stopped: {dead[0]}; logs under {self.root}")
            time.sleep(step)

    def lldp(self, switch: str) -> dict:
        return json.loads(_run("lldpcli", "-u", str(self._dir(switch) / "lldpd.socket"), "show", "neighbors",
                               "-f", "json"))

    def swap_spine_ends(self, first: int, second: int) -> None:
        """Re-plug two leaf-spine cables with their spine ends swapped (the mistake an installer makes)."""
        a = self.cables[first]
        b = self.cables[second]
        for leaf, lp, _, _ in (a, b):
            _run("ip", "-n", self.ns[leaf], "link", "del", lp)
        batch = [f"link add name {x[1]} netns {self.ns[x[0]]} mtu 9100 type veth peer name {y[3]} netns {self.ns[y[2]]}"
                 for x, y in ((a, b), (b, a))]
        _run("ip", "-batch", "-", stdin="\n".join(batch) + "\n")
        for sw, port in ((a[0], a[1]), (b[2], b[3]), (b[0], b[1]), (a[2], a[3])):
            _run("ip", "-n", self.ns[sw], "link", "set", port, "up")

    def memory_kib(self) -> int:
        total = 0
        for p in self.procs:
            try:
                for line in Path(f"/proc/{p.pid}/status").read_text().splitlines():
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
            except OSError:
                pass
        return total

    def stop(self, keep_logs: bool = False) -> None:
        """Stop every daemon and remove the namespaces; ``keep_logs`` leaves the daemons' folder for a post-mortem."""
        for p in self.procs:
            if p.poll() is None:
                p.terminate()
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)
        for ns in self.ns.values():
            subprocess.run(["ip", "netns", "del", ns], capture_output=True, timeout=60)
        # Put back in reverse (gc_thresh1 <= 2 <= 3 must hold at every write).
        for path, old in sorted(self.saved_limits.items(), reverse=True):
            path.write_text(f"{old}\n")
        self.saved_limits.clear()
        if not keep_logs:
            shutil.rmtree(self.root, ignore_errors=True)
