"""The provisioner role over SSH on a loopback test host, through `gpucloud converge --tags provision`.

The lab plan's provisioning host (ctl01) gets Kea with the plan's reservations and the HTTP boot and phone-home
server, started by the daemon role (direct service manager: the test hosts have no systemd). Asserted: the files land
where the role puts them, Kea answers the plan's MACs through the load generator of bench/bench_dhcp.py with exactly
their reserved addresses (and a stranger gets nothing), the HTTP server serves the plan's scripts and takes
phone-home only from a node's planned address, a second run changes nothing, and a plan whose Kea configuration Kea
refuses (a MAC reserved twice) fails at `kea-dhcp4 -t` without replacing the running configuration or stopping Kea.

What differs from a real provisioning host is configuration only: Kea listens with udp sockets on 127.0.0.1 and a
free port (clients arrive as relayed packets, as from a DHCP relay), and the HTTP server on the test host's address
and a free port, its files under the test's folder.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from conftest import CLUSTERS, ROOT, run_cli

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench import bench_dhcp  # noqa: E402

pytestmark = pytest.mark.integration

ADDRESS = "127.0.0.21"
NEEDED = ("sshd", "ssh", "ssh-keygen", "unshare", "nsenter", "start-stop-daemon", "ansible-playbook", "kea-dhcp4",
          "tar")


def _rig_module():
    sys.path.insert(0, str(Path(__file__).parent))
    import converge_rig

    return converge_rig


@pytest.fixture(scope="module")
def rig(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.skip("the loopback host needs root (mount namespaces, overlays, sshd)")
    missing = [b for b in NEEDED if shutil.which(b) is None and not Path("/usr/sbin", b).exists()]
    if missing or not Path("/usr/lib/ipxe/ipxe.efi").exists():
        pytest.skip(f"not installed: {', '.join(missing) or 'ipxe'} (.ci/run installs them)")
    r = _rig_module().Rig(tmp_path_factory.mktemp("provision-role"), {"ctl01": (ADDRESS, 0)})
    try:
        r.start()
        yield r
    finally:
        r.stop()


@pytest.fixture(scope="module")
def setup(rig):
    root = rig.root
    plan = root / "plan"
    res = run_cli("plan", str(CLUSTERS / "lab.yaml"), "--out", str(plan))
    assert res.returncode == 0, res.stderr
    inv = root / "inventory"
    shutil.copytree(plan / "inventory", inv)
    # The planned literal addresses are inline in hosts.yml; the test host answers on ADDRESS, which a host_vars file
    # (outranking the inline variables) gives it.
    (inv / "host_vars").mkdir()
    (inv / "host_vars" / "ctl01.json").write_text(json.dumps({"ansible_host": ADDRESS}))
    srv = root / "srv"
    test_vars = {
        **_rig_module().ssh_vars(rig),
        # No Slurm secrets: `--tags provision` runs the provision layer alone, so no Slurm role checks its arguments.
        "provisioner_kea_interfaces": ["lo/127.0.0.1"],
        "provisioner_kea_socket_type": "udp",
        "provisioner_kea_port": bench_dhcp.free_udp_port(),
        "provisioner_http_bind": ADDRESS,
        "provisioner_http_port": _rig_module().free_port(),
        "provisioner_http_root": str(srv / "http"),
        "provisioner_state_dir": str(srv / "state"),
        "provisioner_known_hosts": str(srv / "state" / "known_hosts"),
    }
    (root / "test-vars.yml").write_text(yaml.safe_dump(test_vars))
    return plan, inv, root / "test-vars.yml", test_vars


def _converge(setup, plan: Path | None = None):
    default_plan, inv, test_vars, _ = setup
    return run_cli("converge", str(CLUSTERS / "lab.yaml"), "--plan", str(plan or default_plan), "-i", str(inv),
                   "-e", f"@{test_vars}", "--tags", "provision", "--limit", "ctl01", timeout=600)


def _summary(text: str) -> dict[str, int]:
    for line in text.splitlines():
        m = re.match(r"^ctl01\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)$", line)
        if m:
            return dict(zip(("ok", "changed", "failed", "unreachable", "skipped"), map(int, m.groups())))
    return {}


def _lab_clients(plan_dir: Path):
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan

    p = build_plan(check_spec(CLUSTERS / "lab.yaml").spec).provision
    clients = bench_dhcp.clients_for(p.reservations) + [bench_dhcp.Client("stranger", "52:54:00:99:99:97", None)]
    return p, clients


def _dhcp(setup):
    p, clients = _lab_clients(setup[0])
    port = setup[3]["provisioner_kea_port"]
    result = bench_dhcp.run_clients(clients, ("127.0.0.1", port), p.gateway,
                                    boot_file=f"{p.http_base}/ipxe/boot.ipxe")
    return p, clients, result


def _kea_pids(rig) -> list[int]:
    return sorted(pid for pid in rig.pids_in("ctl01")
                  if Path(f"/proc/{pid}/exe").exists() and os.readlink(f"/proc/{pid}/exe").endswith("/kea-dhcp4"))


def test_role_installs_the_plans_files_and_kea_answers_with_the_reservations(rig, setup):
    plan, _inv, _vars, test_vars = setup
    res = _converge(setup)
    assert res.returncode == 0, res.stdout + res.stderr[-4000:]

    conf = json.loads(rig.ssh("ctl01", "cat /etc/kea/kea-dhcp4.conf").stdout)
    rendered = json.loads((plan / "provision" / "dhcp" / "kea-dhcp4.conf").read_text())
    assert conf["Dhcp4"]["subnet4"] == rendered["Dhcp4"]["subnet4"]
    assert conf["Dhcp4"]["client-classes"] == rendered["Dhcp4"]["client-classes"]
    assert conf["Dhcp4"]["interfaces-config"] == {"interfaces": ["lo/127.0.0.1"], "dhcp-socket-type": "udp"}
    http = Path(test_vars["provisioner_http_root"])
    for rel in ("ipxe/boot.ipxe", "ipxe/52-54-00-10-00-01.ipxe", "install/gpu01/user-data",
                "install/login01/meta-data"):
        assert (http / rel).read_bytes() == (plan / "provision" / "http" / rel).read_bytes(), rel
    assert (http / "ipxe" / "ipxe.efi").read_bytes() == Path("/usr/lib/ipxe/ipxe.efi").read_bytes()
    assert len(_kea_pids(rig)) == 1

    p, clients, result = _dhcp(setup)
    assert result.problems() == []
    assert [(c.host, c.state) for c in clients] == [("gpu01", "bound"), ("gpu02", "bound"), ("login01", "bound"),
                                                    ("stranger", "silent")]

    base = f"http://{ADDRESS}:{test_vars['provisioner_http_port']}"
    with urllib.request.urlopen(f"{base}/ipxe/52-54-00-10-00-01.ipxe", timeout=10) as resp:
        assert resp.read() == (plan / "provision" / "http" / "ipxe" / "52-54-00-10-00-01.ipxe").read_bytes()
    with pytest.raises(urllib.error.HTTPError) as refused:
        # From the test's address, not gpu01's planned one: the server read the plan's nodes.
        urllib.request.urlopen(f"{base}/phone-home/gpu01", data=b"pub_key_ed25519=x", timeout=10)
    assert refused.value.code == 403 and b"gpu01 phones home from 10.100.0.65" in refused.value.read()

    again = _converge(setup)
    assert again.returncode == 0, again.stdout + again.stderr[-4000:]
    assert _summary(again.stdout)["changed"] == 0, again.stdout + again.stderr[-4000:]


def test_a_config_kea_refuses_fails_the_run_and_leaves_the_running_kea_alone(rig, setup):
    plan = setup[0]
    if not _kea_pids(rig):
        assert _converge(setup).returncode == 0
    before = rig.ssh("ctl01", "cat /etc/kea/kea-dhcp4.conf").stdout
    pids = _kea_pids(rig)
    bad = rig.root / "bad-plan"
    shutil.copytree(plan, bad)
    path = bad / "provision" / "dhcp" / "kea-dhcp4.conf"
    conf = json.loads(path.read_text())
    rows = conf["Dhcp4"]["subnet4"][0]["reservations"]
    rows[1]["hw-address"] = rows[0]["hw-address"]  # valid JSON; only Kea's own check refuses it
    path.write_text(json.dumps(conf))

    res = _converge(setup, bad)
    assert res.returncode != 0
    assert "failed to validate" in res.stdout + res.stderr, res.stdout + res.stderr[-4000:]
    assert rig.ssh("ctl01", "cat /etc/kea/kea-dhcp4.conf").stdout == before
    assert _kea_pids(rig) == pids
    _p, clients, result = _dhcp(setup)
    assert result.problems() == [] and clients[0].state == "bound"


def test_without_an_interface_holding_the_planned_address_the_role_says_how_to_fix_it(rig, setup):
    """Kea's interfaces default to the one that holds the planned server address (10.100.0.129): none here."""
    _plan, inv, _vars, test_vars = setup
    only = rig.root / "no-interface.yml"
    only.write_text(yaml.safe_dump({**test_vars, "provisioner_kea_interfaces": []}))
    before = rig.ssh("ctl01", "cat /etc/kea/kea-dhcp4.conf").stdout
    res = run_cli("converge", str(CLUSTERS / "lab.yaml"), "--plan", str(setup[0]), "-i", str(inv), "-e", f"@{only}",
                  "--tags", "provision", "--limit", "ctl01", timeout=600)
    assert res.returncode != 0
    assert "no interface of ctl01 holds the planned server address 10.100.0.129" in res.stdout + res.stderr, \
        res.stdout + res.stderr[-4000:]
    assert rig.ssh("ctl01", "cat /etc/kea/kea-dhcp4.conf").stdout == before


def test_a_new_listen_address_restarts_the_http_server_and_one_it_cannot_take_fails_the_run(rig, setup):
    """Direct service manager: the HTTP server's arguments changed, so it restarts (a running daemon is otherwise left
    alone); listening on the planned 10.100.0.129, which this host does not have, fails with the fix named."""
    _plan, inv, _vars, test_vars = setup
    port = _rig_module().free_port()
    moved = rig.root / "moved.yml"
    moved.write_text(yaml.safe_dump({**test_vars, "provisioner_http_port": port}))
    res = run_cli("converge", str(CLUSTERS / "lab.yaml"), "--plan", str(setup[0]), "-i", str(inv), "-e", f"@{moved}",
                  "--tags", "provision", "--limit", "ctl01", timeout=600)
    assert res.returncode == 0, res.stdout + res.stderr[-4000:]
    with urllib.request.urlopen(f"http://{ADDRESS}:{port}/ipxe/boot.ipxe", timeout=10) as resp:
        assert resp.read().startswith(b"#!ipxe")

    planned = rig.root / "planned-address.yml"
    planned.write_text(yaml.safe_dump({**test_vars, "provisioner_http_bind": ""}))
    res = run_cli("converge", str(CLUSTERS / "lab.yaml"), "--plan", str(setup[0]), "-i", str(inv), "-e", f"@{planned}",
                  "--tags", "provision", "--limit", "ctl01", timeout=600)
    assert res.returncode != 0
    where = f"nothing listens on 10.100.0.129:{test_vars['provisioner_http_port']}"
    assert where in res.stdout + res.stderr, res.stdout + res.stderr[-4000:]


def test_a_kea_that_stops_after_its_start_fails_the_run(rig, setup):
    """kea-dhcp4 -t accepts a lease file in a folder that does not exist; Kea itself stops at start. Runs last: it
    leaves the host without DHCP, which is what the run must report."""
    _plan, inv, _vars, test_vars = setup
    broken = rig.root / "no-lease-folder.yml"
    broken.write_text(yaml.safe_dump({**test_vars, "provisioner_kea_overrides": {
        "lease-database": {"name": "/nonexistent/kea-leases4.csv"}}}))
    res = run_cli("converge", str(CLUSTERS / "lab.yaml"), "--plan", str(setup[0]), "-i", str(inv), "-e", f"@{broken}",
                  "--tags", "provision", "--limit", "ctl01", timeout=600)
    assert res.returncode != 0
    assert "Kea stopped just after its start" in res.stdout + res.stderr, res.stdout + res.stderr[-4000:]
    assert _kea_pids(rig) == []
