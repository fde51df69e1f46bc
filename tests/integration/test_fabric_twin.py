"""The fabric twin: the planned topology.net loaded into ibsim and routed by real OpenSM with the rendered opensm.conf.

ibsim and the diagnostic tools talk over a socket named by IBSIM_SOCKNAME (unique per test); every tool runs with
libumad2sim preloaded and SIM_HOST naming the HCA it sits on.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest

from conftest import CLUSTERS, ROOT, run_cli, stop_process
from gpucloud.plan import build_plan
from gpucloud.plan.fabric import DEFAULT_PKEY, SHARED_PKEY, STORAGE_PKEY, partition_keys
from gpucloud.render import render_all
from gpucloud.render.fabric import render
from gpucloud.spec import load
from gpucloud.verify.fabric import compare

pytestmark = pytest.mark.integration

UMAD2SIM = "/usr/lib/x86_64-linux-gnu/umad2sim/libumad2sim.so"
SPECS = {"lab": CLUSTERS / "lab.yaml", "mid": ROOT / "tests" / "specs" / "valid" / "fabric-mid.yaml"}
needs_ibsim = pytest.mark.skipif(
    not (shutil.which("ibsim") and shutil.which("opensm") and shutil.which("ibnetdiscover")
         and os.path.exists(UMAD2SIM)),
    reason="ibsim-utils, opensm and infiniband-diags are not installed (.ci/run installs them)")


class Twin:
    def __init__(self, workdir: Path, net: Path, sm_host: str):
        self.dir = workdir
        self.sock = f"gpucloud-{uuid.uuid4().hex[:12]}"
        self.sm_host = sm_host
        self.log = open(workdir / "ibsim.log", "wb")
        self.proc = subprocess.Popen(["ibsim", "-s", "-n", str(net)], stdin=subprocess.DEVNULL, stdout=self.log,
                                     stderr=subprocess.STDOUT, env={**os.environ, "IBSIM_SOCKNAME": self.sock},
                                     cwd=workdir)
        deadline = time.monotonic() + 20
        while True:  # ready once a tool gets an answer
            if self.proc.poll() is not None:
                raise RuntimeError((workdir / "ibsim.log").read_text())
            if self.tool("ibnetdiscover", check=False).returncode == 0:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("ibsim did not come up")
            time.sleep(0.2)

    def env(self, host: str | None = None) -> dict:
        return {**os.environ, "LD_PRELOAD": UMAD2SIM, "SIM_HOST": host or self.sm_host, "IBSIM_SOCKNAME": self.sock,
                "OSM_CACHE_DIR": str(self.dir), "OSM_TMP_DIR": str(self.dir)}

    def tool(self, *args: str, check: bool = True, host: str | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(list(args), env=self.env(host), capture_output=True, text=True, timeout=120,
                              check=check, cwd=self.dir)

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


# Variants of the mid spec: forced three tiers (a core layer over one pod), one subnet per rail (rail 3 loaded), and
# 128 HCA nodes (1,027 HCA ports in one subnet) whose partition lines OpenSM once cut at 4,096 bytes.
VARIANTS = {"mid-3tier": ("mid", {"tiers": 3}, ""), "mid-per-rail": ("mid", {"split": "per-rail"}, "rail3/"),
            "mid-1k": ("mid", {"scalable_unit": 16}, ""), "mid-storage": ("mid", {}, "")}
POOL_COUNTS = {"mid-1k": {"a": 96, "b": 32}}
POOL_ROLES = {"mid-storage": {"login": ("storage-server",)}}  # the login pool stands in for Lustre servers


def _write_plan(name: str, tmp_path: Path):
    base, fabric_changes, subdir = VARIANTS.get(name, (name, {}, ""))
    spec = load(SPECS[base]).spec
    if fabric_changes:
        fabric = dataclasses.replace(spec.fabrics["compute"], **fabric_changes)
        spec = dataclasses.replace(spec, fabrics={"compute": fabric})
    counts, roles = POOL_COUNTS.get(name, {}), POOL_ROLES.get(name, {})
    if counts or roles:
        spec = dataclasses.replace(spec, pools=tuple(
            dataclasses.replace(p, count=counts.get(p.name, p.count), roles=roles.get(p.name, p.roles))
            for p in spec.pools))
    plan = build_plan(spec)
    files = render(plan)
    for rel, data in files.items():
        if rel.startswith("fabric/compute/" + subdir) and "/" not in rel.removeprefix("fabric/compute/" + subdir):
            out = tmp_path / rel.removeprefix("fabric/compute/" + subdir)
            out.write_bytes(data.replace(b"/etc/opensm", str(tmp_path).encode())
                            .replace(b"/var/log/opensm.log", str(tmp_path / "opensm.log").encode()))
    return plan, plan.fabrics[0]


def _lids(dump: str) -> dict[str, int]:
    """Node description of every CA -> its LID, from ibnetdiscover output."""
    out, current = {}, None
    for line in dump.splitlines():
        m = re.match(r'^Ca\s+\d+\s+"[^"]+"\s+#\s+"([^"]+)"', line)
        if m:
            current = m.group(1)
            continue
        m = re.match(r"^\[\d+\]\(\w+\)\s+\"[^\"]+\"\[\d+\]\s+#\s+lid (\d+)", line)
        if m and current:
            out[current] = int(m.group(1))
            current = None
    return out


def dump_switch(dump: str) -> str:
    """The node description of the first switch in an ibnetdiscover dump."""
    return re.search(r'^Switch\s+\d+\s+"[^"]+"\s+#\s+"([^"]+)"', dump, re.M).group(1)


def _switches_on_path(twin: Twin, src: int, dst: int) -> list[str]:
    trace = twin.tool("ibtracert", str(src), str(dst)).stdout
    return re.findall(r'-> switch port \{\w+\}\[\d+\] lid [\d-]+ "([^"]+)"', trace)


def _pkey_table(twin: Twin, lid: int) -> list[int]:
    """The port's P_Key table in index order, as the subnet manager programmed it (smpquery pkeys)."""
    out = twin.tool("smpquery", "pkeys", str(lid)).stdout
    return [int(v, 16) for v in re.findall(r"0x[0-9a-f]{4}", out)]


def _pkeys(twin: Twin, lid: int) -> set[int]:
    return set(_pkey_table(twin, lid)) - {0}


@pytest.fixture
def routed_twin(request, tmp_path):
    name = request.param
    plan, fp = _write_plan(name, tmp_path)
    subnet = 3 if name == "mid-per-rail" else 0
    # the subnet's OpenSM host, or (a rail without one) any HCA on it
    sm_host = next(e.desc for e in fp.endpoints if fp.switches[e.leaf].subnet == subnet
                   and (e.host in fp.subnets[subnet].sm_hosts or not fp.subnets[subnet].sm_hosts))
    twin = Twin(tmp_path, tmp_path / "topology.net", sm_host)
    try:
        sm = twin.tool("opensm", "-F", str(tmp_path / "opensm.conf"), "--once", check=False)
        assert sm.returncode == 0, sm.stdout + sm.stderr
        yield plan, fp, twin
    finally:
        twin.stop()


@needs_ibsim
@pytest.mark.parametrize("routed_twin", ["lab", "mid", "mid-3tier", "mid-per-rail"], indirect=True)
def test_opensm_routes_the_planned_fabric(routed_twin, tmp_path):
    plan, fp, twin = routed_twin
    log = (tmp_path / "opensm.log").read_text()
    assert "ftree tables configured on all switches" in log
    assert "fallback" not in log.lower() and "falling back" not in log.lower()
    dump = twin.tool("ibnetdiscover").stdout
    # cable for cable, by device and port
    result = compare(fp, dump)
    assert result.clean, (result.missing[:5], result.unexpected[:5], result.swapped[:2])
    # every HCA of the plan (in this subnet) got a LID
    lids = _lids(dump)
    subnet = {s.name: s.subnet for s in fp.switches}[dump_switch(dump)]
    planned = {e.desc for e in fp.endpoints if fp.switches[e.leaf].subnet == subnet}
    assert set(lids) == planned and all(lid > 0 for lid in lids.values())
    rail = min(e.hca for e in fp.endpoints if e.desc in planned and not e.service)
    # same rail, same SU: one leaf and nothing else
    first, second = (h.name for h in plan.pools[0].hosts[:2])
    dev = f"mlx5_{rail}"
    assert len(_switches_on_path(twin, lids[f"{first} {dev}"], lids[f"{second} {dev}"])) == 1
    su_of = {e.host: fp.switches[e.leaf].group for e in fp.endpoints if e.hca == rail and not e.service}
    other = next((h for h, su in sorted(su_of.items()) if su != su_of[first]), None)
    if other is not None:  # different SUs, same rail: leaf, spine, leaf
        path = _switches_on_path(twin, lids[f"{first} {dev}"], lids[f"{other} {dev}"])
        assert len(path) == 3 and "-spine" in path[1], path


FULL = 0x8000  # the membership bit of a P_Key table entry


def _planned_keys(plan, host: str) -> set[int]:
    """The P_Keys the plan gives the compute-fabric ports of ``host``, membership bit included."""
    pool = next(pp.pool for pp in plan.pools if any(h.name == host for h in pp.hosts))
    sm = {h for s in plan.fabrics[0].subnets for h in s.sm_hosts}
    keys = {DEFAULT_PKEY | (FULL if host in sm else 0),
            STORAGE_PKEY | (FULL if "storage-server" in pool.roles else 0)}
    got = partition_keys(plan.spec).get(pool.name)
    if got:
        keys |= {pkey | FULL for _, pkey in got.tenants} | ({SHARED_PKEY | FULL} if got.shared else set())
    return keys


@needs_ibsim
@pytest.mark.parametrize("routed_twin", ["mid", "mid-storage"], indirect=True)
def test_pkey_tables_match_the_tenants(routed_twin):
    plan, fp, twin = routed_twin
    lids = _lids(twin.tool("ibnetdiscover").stdout)
    alpha, beta = 0x0A01, 0x0B02
    tables = {d: _pkey_table(twin, lids[d]) for d in ("a01 mlx5_3", "b02 mlx5_5", "ctl01 mlx5_0", "login01 mlx5_0")}
    server = "storage-server" in plan.spec.pool("login").roles
    for desc, table in tables.items():
        assert set(table) - {0} == _planned_keys(plan, desc.split()[0]), (desc, [hex(k) for k in table if k])
        # the storage partition sits at index 0 (IPoIB interfaces and LNet over them use it): servers full
        assert table[0] == STORAGE_PKEY | (FULL if server and desc.startswith("login") else 0), desc
    # tenant nodes are full members of their own partition and hold no other tenant's key
    assert alpha | FULL in tables["a01 mlx5_3"] and not {beta, beta | FULL} & set(tables["a01 mlx5_3"])
    assert beta | FULL in tables["b02 mlx5_5"] and not {alpha, alpha | FULL} & set(tables["b02 mlx5_5"])
    # compute and login ports are limited members of Default (they reach the SA, not each other); the SM host full
    assert DEFAULT_PKEY in tables["a01 mlx5_3"] and DEFAULT_PKEY in tables["login01 mlx5_0"]
    assert DEFAULT_PKEY | FULL in tables["ctl01 mlx5_0"]


def _task_env(plan, tmp_path: Path, tables: dict[str, list[int]], account: str) -> dict[str, str]:
    """Run the rendered TaskProlog as Slurm would, over a sysfs tree holding ``tables``; the exports it prints."""
    sysfs = tmp_path / f"sysfs-{account}"
    for dev, table in tables.items():
        d = sysfs / dev / "ports" / "1" / "pkeys"
        d.mkdir(parents=True)
        for i, key in enumerate(table):
            (d / str(i)).write_text(f"0x{key:04x}\n")
    script = tmp_path / "task_prolog.sh"
    script.write_bytes(render_all(plan)["slurm/task_prolog.sh"])
    env = {"PATH": os.environ["PATH"], "SLURM_JOB_ACCOUNT": account, "GPUCLOUD_IB_SYSFS": str(sysfs)}
    out = subprocess.run(["sh", str(script)], env=env, capture_output=True, text=True, check=True).stdout
    return dict(ln.removeprefix("export ").split("=", 1) for ln in out.splitlines() if ln.startswith("export "))


@needs_ibsim
@pytest.mark.parametrize("routed_twin", ["mid-1k"], indirect=True)
def test_partitions_hold_on_a_thousand_port_fabric(routed_twin, tmp_path):
    """1,027 HCA ports in one subnet: every tenant line is far past OpenSM's 4,096-byte read buffer unless wrapped."""
    plan, fp, twin = routed_twin
    assert len(fp.endpoints) >= 1000
    conf = (tmp_path / "partitions.conf").read_text()
    assert conf.count("0x") > 1000  # the members are listed, not folded into a keyword
    log = (tmp_path / "opensm.log").read_text()
    assert "PARSE ERROR" not in log and "default config" not in log, log[-2000:]
    lids = _lids(twin.tool("ibnetdiscover").stdout)
    alpha, beta = 0x0A01, 0x0B02
    # two nodes of tenant alpha in different scalable units, and one of beta: every rail, exactly the planned keys
    tables = {}
    for host in ("a01", "a96", "b32"):
        for rail in range(8):
            table = _pkey_table(twin, lids[f"{host} mlx5_{rail}"])
            assert set(table) - {0} == _planned_keys(plan, host), (host, rail, [hex(k) for k in table if k])
            tables[host, rail] = table
    for rail in range(8):
        assert alpha | FULL in tables["a01", rail] and alpha | FULL in tables["a96", rail]
        assert not {alpha, alpha | FULL} & set(tables["b32", rail]) and beta | FULL in tables["b32", rail]
        assert not {beta, beta | FULL} & set(tables["a01", rail])
    # the TaskProlog reads the same tables on the node: alpha's jobs get alpha's index (NCCL) and value (UCX)
    a01 = {f"mlx5_{r}": tables["a01", r] for r in range(8)}
    env = _task_env(plan, tmp_path, a01, "alpha")
    assert env == {"NCCL_IB_PKEY": str(a01["mlx5_0"].index(alpha | FULL)), "UCX_IB_PKEY": "0x0a01"}
    assert _task_env(plan, tmp_path, a01, "beta") == {}  # beta holds no key on alpha's nodes


def _miswired(tmp_path: Path, net: str, fp) -> str:
    path = tmp_path / "twin.net"
    path.write_text(net)
    sm = next(f"{e.host} mlx5_0" for e in fp.endpoints if e.service)
    twin = Twin(tmp_path, path, sm)
    try:
        return twin.tool("ibnetdiscover").stdout
    finally:
        twin.stop()


def _verify(tmp_path: Path, dump: str) -> subprocess.CompletedProcess:
    out = tmp_path / "ibnetdiscover.txt"
    out.write_text(dump)
    return run_cli("fabric", "verify", str(SPECS["mid"]), "--ibnetdiscover", str(out))


@needs_ibsim
def test_verify_finds_a_swapped_cable(tmp_path):
    _, fp = _write_plan("mid", tmp_path)
    net = (tmp_path / "topology.net").read_text()
    # swap a03 and a04 on the rail-2 leaf of SU 1: both ends of both links
    net = net.replace('"a03 mlx5_2"[1]', "@A").replace('"a04 mlx5_2"[1]', '"a03 mlx5_2"[1]').replace("@A",
                                                                                                     '"a04 mlx5_2"[1]')
    net = (net.replace('"c-leaf-su001-r2"[3]\n', "@L\n").replace('"c-leaf-su001-r2"[4]\n', '"c-leaf-su001-r2"[3]\n')
           .replace("@L\n", '"c-leaf-su001-r2"[4]\n'))
    proc = _verify(tmp_path, _miswired(tmp_path, net, fp))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert ("swapped: planned a03 mlx5_2 <-> c-leaf-su001-r2 2/1 and a04 mlx5_2 <-> c-leaf-su001-r2 2/2; "
            "cabled a03 mlx5_2 <-> c-leaf-su001-r2 2/2 and a04 mlx5_2 <-> c-leaf-su001-r2 2/1") in proc.stdout
    assert "missing:" not in proc.stdout and "unexpected:" not in proc.stdout


@needs_ibsim
def test_verify_finds_a_removed_cable(tmp_path):
    _, fp = _write_plan("mid", tmp_path)
    net = (tmp_path / "topology.net").read_text()
    # unplug the second uplink of the SU 2 rail-5 leaf
    leaf = "c-leaf-su002-r5"
    spine_line = next(ln for ln in net.split(f'Switch\t64 "{leaf}"\n', 1)[1].splitlines() if ln.startswith("[62]"))
    spine, sport = re.match(r'\[62\]\t"([^"]+)"\[(\d+)\]', spine_line).groups()
    net = "\n".join(ln for ln in net.splitlines()
                    if ln != spine_line and ln != f'[{sport}]\t"{leaf}"[62]')
    proc = _verify(tmp_path, _miswired(tmp_path, net, fp))
    assert proc.returncode == 1
    label = fp.port_label(int(sport))
    assert proc.stdout.splitlines()[:-1] == [f"missing: {leaf} 31/2 <-> {spine} {label}"]


@needs_ibsim
def test_verify_finds_a_missing_switch(tmp_path):
    _, fp = _write_plan("mid", tmp_path)
    net = (tmp_path / "topology.net").read_text()
    gone = "c-spine-002"
    blocks = [b for b in net.split("\n\n") if f'Switch\t64 "{gone}"' not in b]
    net = "\n".join(ln for ln in "\n\n".join(blocks).splitlines() if f'"{gone}"' not in ln)
    proc = _verify(tmp_path, _miswired(tmp_path, net, fp))
    assert proc.returncode == 1
    lines = proc.stdout.splitlines()
    assert f"absent: {gone} is not in the fabric (50 planned cable(s) missing with it)" in lines
    assert sum(ln.startswith("missing:") and gone in ln for ln in lines) == 50
    assert not any(ln.startswith(("unexpected:", "swapped:")) for ln in lines)
