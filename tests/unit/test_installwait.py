"""The phone-home record (GET /phone-home/<host>) and the wait of the Redfish node resource on it.

Against the real phone-home server (gpucloud.phonehome, in a thread on 127.0.0.1). The waits run on a clock the
test moves, so no test depends on how long anything takes.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import pytest

from gpucloud.checks.provisioning import phone_home_timeout
from gpucloud.phonehome import Node, make_server
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.plan import stacks as layout
from gpucloud.stack import graph
from gpucloud.stack.installwait import InstallWaitError, Record, Waiter

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "clusters" / "lab.yaml"
BMC = "https://127.0.0.1:1"


@pytest.fixture(scope="module")
def host_key(tmp_path_factory):
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is missing")
    d = tmp_path_factory.mktemp("keys")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "root@gpu01", "-f", str(d / "k")], check=True)
    fp = subprocess.run(["ssh-keygen", "-l", "-E", "sha256", "-f", str(d / "k.pub")], check=True, capture_output=True,
                        text=True).stdout.split()[1]
    return (d / "k.pub").read_text().strip(), fp


@pytest.fixture()
def server(tmp_path):
    root = tmp_path / "http"
    (root / "ipxe").mkdir(parents=True)
    (root / "ipxe" / "boot.ipxe").write_text("#!ipxe\n")
    nodes = {"gpu01": Node("gpu01", "127.0.0.1", "gpu01.lab"), "gpu02": Node("gpu02", "127.0.0.2")}
    srv = make_server(root, nodes, tmp_path / "known_hosts", "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{srv.server_address[1]}/phone-home/"
    finally:
        srv.shutdown()
        srv.server_close()


def _post(url: str, key: str) -> int:
    req = urllib.request.Request(url, data=urlencode({"pub_key_ed25519": key, "hostname": "gpu01"}).encode())
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status


def _get(url: str) -> tuple[int, dict | None]:
    try:
        with urllib.request.urlopen(url, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, None


class Clock:
    """A monotonic clock that moves only when the waiter sleeps; ``on_sleep`` runs at each sleep."""

    def __init__(self, on_sleep=lambda n: None):
        self.now = 0.0
        self.sleeps = 0
        self.on_sleep = on_sleep

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps += 1
        self.now += seconds
        self.on_sleep(self.sleeps)


def test_get_answers_each_planned_hosts_record_and_404_for_others(server, host_key):
    key, fp = host_key
    assert _get(server + "gpu01") == (200, {"node": "gpu01", "reports": 0, "last": None, "fingerprints": []})
    assert _get(server + "gpu09")[0] == 404
    assert _get(server + "gpu01/x")[0] == 404
    assert _post(server + "gpu01", key) == 200
    code, body = _get(server + "gpu01")
    assert code == 200 and body is not None
    assert body["reports"] == 1 and body["last"].endswith("Z")
    assert body["fingerprints"] == [f"ssh-ed25519 {fp}"]  # as ssh-keygen -l prints it; no key, nothing secret
    assert key.split()[1] not in json.dumps(body)
    assert _post(server + "gpu01", key) == 200
    assert _get(server + "gpu01")[1]["reports"] == 2  # type: ignore[index]
    assert _get(server + "gpu02")[1]["reports"] == 0  # type: ignore[index]
    # The files are still served beside the receiver.
    with urllib.request.urlopen(server.replace("/phone-home/", "/ipxe/boot.ipxe"), timeout=10) as resp:
        assert resp.read() == b"#!ipxe\n"


def test_wait_returns_when_a_new_report_arrives(server, host_key):
    waiter = Waiter("gpu01", BMC, server + "gpu01", timeout=60, poll_interval=5)
    before = waiter.read()
    assert before == Record(0, None)
    clock = Clock(lambda n: n == 3 and _post(server + "gpu01", host_key[0]))
    after = waiter.wait(before, clock=clock, sleep=clock.sleep)
    assert after.reports == 1 and clock.sleeps == 3
    assert after.fingerprints == (f"ssh-ed25519 {host_key[1]}",)


def test_a_report_from_before_the_boot_does_not_count(server, host_key):
    _post(server + "gpu01", host_key[0])  # an earlier install's report
    waiter = Waiter("gpu01", BMC, server + "gpu01", timeout=30, poll_interval=5)
    before = waiter.read()
    assert before.reports == 1
    clock = Clock()
    with pytest.raises(InstallWaitError) as err:
        waiter.wait(before, clock=clock, sleep=clock.sleep)
    msg = str(err.value)
    assert msg.startswith(f"node gpu01: BMC {BMC}: phone-home {server}gpu01: no report 30 s after the PXE boot")
    assert "console through its BMC" in msg and "provisioning.phone_home_timeout" in msg
    assert clock.now == 30


def test_a_host_the_server_does_not_install_fails_at_once(server):
    waiter = Waiter("gpu07", BMC, server + "gpu07", timeout=3600)
    with pytest.raises(InstallWaitError) as err:
        waiter.read()
    assert err.value.final
    assert str(err.value).startswith(f"node gpu07: BMC {BMC}: phone-home {server}gpu07: the provisioning server "
                                     "plans no install for this node")
    assert "gpucloud provision discover" in str(err.value)
    clock = Clock()
    with pytest.raises(InstallWaitError):
        waiter.wait(Record(0, None), clock=clock, sleep=clock.sleep)
    assert clock.sleeps == 0  # no point polling a server that will never take the node's report


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_server_that_does_not_answer_is_named_with_what_to_start():
    url = f"http://127.0.0.1:{_closed_port()}/phone-home/gpu01"
    waiter = Waiter("gpu01", BMC, url, timeout=20, poll_interval=5, request_timeout=2)
    with pytest.raises(InstallWaitError) as err:
        waiter.read()
    assert not err.value.final
    assert str(err.value).startswith(f"node gpu01: BMC {BMC}: phone-home {url}: the provisioning server does not "
                                     "answer (ConnectionError)")
    assert "gpucloud provision serve" in str(err.value)
    # While waiting, a server that is down (restarting) is polled on; the timeout names the last problem.
    clock = Clock()
    with pytest.raises(InstallWaitError) as err:
        waiter.wait(Record(0, None), clock=clock, sleep=clock.sleep)
    assert "no report 20 s after the PXE boot (the last poll: the provisioning server does not answer" in str(err.value)
    assert clock.sleeps == 4


def test_an_answer_that_is_not_a_record_is_refused(tmp_path, server):
    url = server.replace("/phone-home/", "/ipxe/boot.ipxe")
    with pytest.raises(InstallWaitError, match="is not a phone-home record"):
        Waiter("gpu01", BMC, url, timeout=1).read()


def test_a_restarted_server_counts_only_a_report():
    before = Record(3, "2026-12-07T00:00:00Z")
    assert not Record(0, None).newer_than(before)  # restarted: its count starts again, no report yet
    assert not Record(3, "2026-12-07T00:00:00Z").newer_than(before)
    assert Record(1, "2026-12-07T00:40:00Z").newer_than(before)  # restarted, then the new install reported
    assert Record(4, "2026-12-07T00:40:00Z").newer_than(before)
    assert Record(1, "2026-12-07T00:40:00Z").newer_than(Record(0, None))


def _lab_inputs(tmp_path: Path, edit=lambda s: s, macs: str | None = None) -> dict:
    spec = tmp_path / "lab.yaml"
    spec.write_text(edit(LAB.read_text()))
    (tmp_path / "discovered").mkdir()
    recorded = (ROOT / "clusters" / "discovered" / "lab.yaml").read_text()
    (tmp_path / "discovered" / "lab.yaml").write_text(recorded if macs is None else macs)
    checked = check_spec(spec)
    (data,) = layout.stack_inputs(build_plan(checked.spec, tuple(checked.findings)), {})
    return data


def test_every_pxe_booted_lab_node_but_the_server_waits_on_its_own_url(tmp_path):
    data = _lab_inputs(tmp_path)
    assert data["phone_home"] == {"base": "http://10.100.0.129:8080/phone-home/", "timeout": 3600,
                                  "server": "ctl01", "hosts": ["gpu01", "gpu02", "login01"]}
    nodes = {r["name"]: r["inputs"] for r in graph.stack_graph(data) if r["type"] == graph.REDFISH}
    assert nodes["gpu01-bmc"]["phone_home"] == "http://10.100.0.129:8080/phone-home/gpu01"
    assert nodes["login01-bmc"]["phone_home"] == "http://10.100.0.129:8080/phone-home/login01"
    assert {n: i["phone_home_timeout"] for n, i in nodes.items()} == {
        "ctl01-bmc": None, "gpu01-bmc": 3600, "gpu02-bmc": 3600, "login01-bmc": 3600}
    assert nodes["ctl01-bmc"]["phone_home"] is None  # installed by hand; it runs the server
    assert graph.PhoneHome.of(data["phone_home"]).wait("gpu01", None) == (None, None)  # no image, nothing installs


def test_the_provisioning_server_is_powered_on_never_pxe_booted(tmp_path):
    """Nothing could install the server (it runs the service), and a PXE boot would restart it while the other
    nodes install from it: its BMC resource has no image, so create only powers it on and a changed image of its
    pool replaces nothing. Its node keeps the pool's image; the other nodes still install theirs."""
    data = _lab_inputs(tmp_path)
    resources = {r["name"]: r["inputs"] for r in graph.stack_graph(data)}
    assert resources["ctl01-bmc"]["image"] == "" and resources["ctl01"]["image"] == "ubuntu-22.04-base"
    assert resources["gpu01-bmc"]["image"] == "ubuntu-22.04-gpu"
    assert resources["login01-bmc"]["image"] == "ubuntu-22.04-base"  # same pool image as ctl01, still installed
    (tmp_path / "moved").mkdir()
    moved = _lab_inputs(tmp_path / "moved", lambda s: s.replace("ubuntu-22.04-base", "ubuntu-24.04-base"))
    after = {r["name"]: r["inputs"] for r in graph.stack_graph(moved)}
    assert after["ctl01-bmc"] == resources["ctl01-bmc"]
    assert after["login01-bmc"]["image"] == "ubuntu-24.04-base"


def test_a_host_without_a_recorded_mac_has_no_install_to_wait_for(tmp_path):
    macs = (ROOT / "clusters" / "discovered" / "lab.yaml").read_text()
    data = _lab_inputs(tmp_path, macs="\n".join(ln for ln in macs.splitlines() if "gpu02:" not in ln) + "\n")
    assert data["phone_home"]["hosts"] == ["gpu01", "login01"]
    nodes = {r["name"]: r["inputs"] for r in graph.stack_graph(data) if r["type"] == graph.REDFISH}
    assert nodes["gpu02-bmc"]["phone_home"] is None and nodes["gpu01-bmc"]["phone_home"]


def test_the_timeout_comes_from_the_spec_and_a_short_one_is_a_warning(tmp_path):
    data = _lab_inputs(tmp_path, lambda s: s.replace("  mirror: http://archive.ubuntu.com/ubuntu\n",
                                                     "  mirror: http://archive.ubuntu.com/ubuntu\n"
                                                     "  phone_home_timeout: 120\n"))
    assert data["phone_home"]["timeout"] == 120
    spec = check_spec(tmp_path / "lab.yaml").spec
    (finding,) = phone_home_timeout(spec)
    assert finding.level == "warning" and finding.path == ("provisioning", "phone_home_timeout")
    assert not list(phone_home_timeout(check_spec(LAB).spec))


def test_without_a_provisioning_server_nothing_waits(tmp_path):
    data = _lab_inputs(tmp_path, lambda s: s.replace(", provisioner]", "]"))
    assert "phone_home" not in data
    nodes = [r["inputs"] for r in graph.stack_graph(data) if r["type"] == graph.REDFISH]
    assert nodes and all(i["phone_home"] is None for i in nodes)


def test_create_reads_the_record_before_touching_the_bmc():
    """A server that does not answer fails the create before the one-time boot or any power change."""
    pytest.importorskip("pulumi")
    from gpucloud.stack.provider import RedfishNodeProvider

    url = f"http://127.0.0.1:{_closed_port()}/phone-home/gpu01"
    props = {**graph.redfish_inputs("gpu01", f"127.0.0.1:{_closed_port()}", "ubuntu-22.04", "admin", "pw", True, None,
                                    url, 3600), "password": "pw"}
    assert not RedfishNodeProvider().check({}, props).failures
    with pytest.raises(InstallWaitError, match="node gpu01: .* the provisioning server does not answer"):
        RedfishNodeProvider().create(props)
    bad = RedfishNodeProvider().check({}, {**props, "phone_home": "ftp://x", "phone_home_timeout": 0})
    assert sorted(f.property for f in bad.failures) == ["phone_home", "phone_home_timeout"]
