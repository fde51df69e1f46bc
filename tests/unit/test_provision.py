"""Provisioning: the discovered-MAC file, the plan, the rendered Kea/iPXE/autoinstall files, checks and phone-home."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import yaml

from gpucloud.checks.provisioning import duplicate_macs, mac_changes, server, unknown_hosts
from gpucloud.discover import merge, read_bmcs, secret_env
from gpucloud.phonehome import KnownHosts, Node, known_hosts_lines, load_nodes, make_server, nodes_from_plan, parse_key
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render.provision import KEA, NODES, SERVER, render, script_name
from gpucloud.spec import discovered, load
from gpucloud.spec.model import HostHardware

ROOT = Path(__file__).resolve().parents[2]
LAB = ROOT / "clusters" / "lab.yaml"
HTTP = "provision/http"


def lab_copy(tmp_path: Path, hardware_text: str | None = None, spec_edit=lambda s: s) -> Path:
    spec = tmp_path / "lab.yaml"
    spec.write_text(spec_edit(LAB.read_text()))
    if hardware_text is not None:
        (tmp_path / "discovered").mkdir(exist_ok=True)
        (tmp_path / "discovered" / "lab.yaml").write_text(hardware_text)
    return spec


def lab_plan(path: Path = LAB):
    loaded = load(path)
    assert loaded.ok, loaded.findings
    return build_plan(loaded.spec)


# -- the discovered-MAC file


def test_hardware_file_round_trip_and_normalised_macs(tmp_path):
    text = 'hosts:\n  gpu01: {mac: "52-54-00-AA-00-01", macs: ["52:54:00:aa:00:02"]}\n'
    hosts, findings = discovered.parse(text, "x.hardware.yaml")
    assert findings == []
    assert hosts == {"gpu01": HostHardware("52:54:00:aa:00:01", ("52:54:00:aa:00:01", "52:54:00:aa:00:02"))}
    target = tmp_path / "lab.hardware.yaml"
    discovered.write(target, "lab", hosts)
    assert discovered.read(target) == (hosts, [])
    assert discovered.dump("lab", hosts) == target.read_text()


@pytest.mark.parametrize("text, line, words", [
    ("hosts:\n  gpu01: {mac: 52:54:00:aa:00:01}\n  gpu02: {mac: \"zz:54:00:aa:00:01\"}\n", 3, "not a MAC"),
    ("hosts:\n  gpu01: {mac: \"52:54:00:aa:00:01\", extra: 1}\n", 2, "expected"),
    ("hosts: [a, b]\n", 1, "mapping"),
    ("hosts:\n  gpu01: {mac: [\n", 3, "not valid YAML"),
])
def test_hardware_file_mistakes_are_located_findings(text, line, words):
    _, findings = discovered.parse(text, "lab.hardware.yaml")
    assert len(findings) == 1
    f = findings[0]
    assert (f.check, f.file, f.line) == ("discovered-file", "lab.hardware.yaml", line)
    assert words in f.message


def test_hardware_file_beside_the_spec_is_read_by_load(tmp_path):
    spec = lab_copy(tmp_path, 'hosts:\n  gpu02: {mac: "52:54:00:00:00:99"}\n')
    assert discovered.path_beside(spec) == tmp_path / "discovered" / "lab.yaml"
    loaded = load(spec)
    assert loaded.spec.discovered == {"gpu02": HostHardware("52:54:00:00:00:99", ("52:54:00:00:00:99",))}
    bad = lab_copy(tmp_path, 'hosts:\n  gpu02: {mac: "nope"}\n')
    assert [f.check for f in load(bad).findings] == ["discovered-file"]


def test_record_keeps_a_chosen_boot_mac_while_the_bmc_lists_it():
    old = HostHardware("52:54:00:00:00:09", ("52:54:00:00:00:01", "52:54:00:00:00:09"))
    assert discovered.record(old, ["52:54:00:00:00:09", "52:54:00:00:00:01"]) == old
    assert discovered.record(None, ["52:54:00:00:00:09", "52:54:00:00:00:01"]).mac == "52:54:00:00:00:01"
    assert discovered.record(old, []) == old


# -- plan and render


def test_lab_plan_reserves_every_recorded_host_but_the_server():
    p = lab_plan().provision
    assert (p.server, p.server_address, p.http_base) == ("ctl01", "10.100.0.129", "http://10.100.0.129:8080")
    assert [(r.host, r.mac, r.address) for r in p.reservations] == [
        ("gpu01", "52:54:00:10:00:01", "10.100.0.65"), ("gpu02", "52:54:00:10:00:02", "10.100.0.66"),
        ("login01", "52:54:00:10:00:04", "10.100.0.193")]
    assert p.unrecorded == 0


def test_no_provisioner_role_plans_and_renders_nothing(tmp_path):
    spec = lab_copy(tmp_path, spec_edit=lambda s: s.replace(", provisioner]", "]"))
    plan = lab_plan(spec)
    assert plan.provision is None and render(plan) == {}


def test_hosts_without_a_recorded_mac_get_no_files(tmp_path):
    spec = lab_copy(tmp_path, 'hosts:\n  gpu02: {mac: "52:54:00:00:00:99"}\n')
    plan = lab_plan(spec)
    files = render(plan)
    assert plan.provision.unrecorded == 2  # gpu01 and login01 (ctl01 serves)
    assert sorted(f for f in files if f.startswith(f"{HTTP}/ipxe/")) == [
        f"{HTTP}/ipxe/52-54-00-00-00-99.ipxe", f"{HTTP}/ipxe/boot.ipxe"]
    assert sorted({f.split("/")[3] for f in files if "/install/" in f}) == ["gpu02"]
    kea = json.loads(files[KEA])["Dhcp4"]
    assert kea["subnet4"][0]["reservations"] == [
        {"hw-address": "52:54:00:00:00:99", "ip-address": "10.100.0.66", "hostname": "gpu02"}]


def test_kea_config_offers_boot_files_to_known_clients_only_and_has_no_dynamic_pool():
    kea = json.loads(render(lab_plan())[KEA])["Dhcp4"]
    subnet = kea["subnet4"][0]
    assert subnet["subnet"] == "10.100.0.0/22" and subnet["pools"] == []
    assert {"name": "routers", "data": "10.100.0.1"} in subnet["option-data"]
    for cls in kea["client-classes"]:
        assert cls["test"].startswith("member('KNOWN') and "), cls["name"]
    by_name = {c["name"]: c for c in kea["client-classes"]}
    assert by_name["ipxe"]["boot-file-name"] == "http://10.100.0.129:8080/ipxe/boot.ipxe"
    assert by_name["bios-pxe"]["boot-file-name"] == "undionly.kpxe"
    assert by_name["uefi-pxe"]["boot-file-name"] == "ipxe.efi"


def test_ipxe_scripts_fetch_kernel_initrd_and_seed_over_http():
    files = render(lab_plan())
    boot = files[f"{HTTP}/ipxe/boot.ipxe"].decode()
    assert boot.startswith("#!ipxe\n")
    assert "chain --autofree http://10.100.0.129:8080/ipxe/${netX/mac:hexhyp}.ipxe" in boot
    assert script_name("52:54:00:10:00:01") == "52-54-00-10-00-01.ipxe"
    own = files[f"{HTTP}/ipxe/52-54-00-10-00-01.ipxe"].decode()
    assert "kernel http://10.100.0.129:8080/images/ubuntu-22.04-gpu/vmlinuz " in own
    assert "ds=nocloud-net;s=http://10.100.0.129:8080/install/gpu01/ " in own
    assert "initrd --name initrd http://10.100.0.129:8080/images/ubuntu-22.04-gpu/initrd" in own
    login = files[f"{HTTP}/ipxe/52-54-00-10-00-04.ipxe"].decode()
    assert "/images/ubuntu-22.04-base/vmlinuz" in login and "/install/login01/" in login
    assert not any("tftp" in f or b"tftp://" in data for f, data in files.items())


def test_user_data_carries_address_name_keys_mirror_and_phone_home():
    plan = lab_plan()
    files = render(plan)
    doc = yaml.safe_load(files[f"{HTTP}/install/gpu02/user-data"])
    auto = doc["autoinstall"]
    eth = auto["network"]["ethernets"]["mgmt0"]
    assert eth["match"] == {"macaddress": "52:54:00:10:00:02"} and eth["addresses"] == ["10.100.0.66/22"]
    assert eth["routes"] == [{"to": "default", "via": "10.100.0.1"}]
    assert auto["storage"]["layout"] == {"name": "lvm", "match": {"size": "largest"}}
    assert auto["apt"]["primary"][0]["uri"] == "http://archive.ubuntu.com/ubuntu"
    keys = list(plan.spec.provisioning.ssh_keys)
    assert keys and auto["ssh"]["authorized-keys"] == keys and auto["ssh"]["allow-pw"] is False
    first_boot = auto["user-data"]
    assert (first_boot["hostname"], first_boot["fqdn"]) == ("gpu02", "gpu02.lab.gpucloud.internal")
    assert first_boot["ssh_authorized_keys"] == keys and first_boot["disable_root"] is False
    assert first_boot["phone_home"]["url"] == "http://10.100.0.129:8080/phone-home/gpu02"
    assert "pub_key_ed25519" in first_boot["phone_home"]["post"]
    meta = yaml.safe_load(files[f"{HTTP}/install/gpu02/meta-data"])
    assert meta == {"instance-id": "gpucloud-lab-gpu02", "local-hostname": "gpu02"}


def test_render_is_deterministic():
    assert render(lab_plan()) == render(lab_plan())


def test_schema_refuses_a_private_key_or_junk_as_ssh_key(tmp_path):
    spec = lab_copy(tmp_path, spec_edit=lambda s: re.sub(r'ssh_keys: \[.*\]', 'ssh_keys: ["-----BEGIN OPENSSH"]', s))
    findings = load(spec).findings
    assert any(f.path[:2] == ("provisioning", "ssh_keys") for f in findings), findings


# -- checks


def test_checks_report_duplicate_macs_and_unplanned_hosts(tmp_path):
    spec = lab_copy(tmp_path, 'hosts:\n  gpu01: {mac: "52:54:00:00:00:01"}\n  gpu02: {mac: "52:54:00:00:00:01"}\n'
                              '  gpu09: {mac: "52:54:00:00:00:09"}\n')
    s = load(spec).spec
    dup = list(duplicate_macs(s))
    assert [f.message for f in dup] == ["hosts gpu01 and gpu02 both boot from MAC 52:54:00:00:00:01 in the "
                                        "discovered-MAC file"]
    assert "gpu09" in list(unknown_hosts(s))[0].message
    assert "discovered-duplicate-mac" in {f.check for f in check_spec(spec).findings}
    assert list(server(s)) == []


def test_mac_changes_and_discover_keep_the_old_record_until_accepted():
    recorded = {"gpu01": HostHardware("52:54:00:00:00:01", ("52:54:00:00:00:01",)),
                "gpu02": HostHardware("52:54:00:00:00:02", ("52:54:00:00:00:02",))}
    reported = {"gpu01": ["52:54:00:00:00:01"], "gpu02": ["52:54:00:00:0A:02"], "gpu03": ["52:54:00:00:00:03"]}
    changes = mac_changes(recorded, reported)
    assert [(f.check, f.path) for f in changes] == [("discovered-mac-changed", ("discovered", "gpu02"))]
    kept, _ = merge(recorded, reported, accept_changes=False)
    assert kept["gpu02"] == recorded["gpu02"] and kept["gpu03"].mac == "52:54:00:00:00:03"
    accepted, _ = merge(recorded, reported, accept_changes=True)
    assert accepted["gpu02"].mac == "52:54:00:00:0a:02"


def test_read_bmcs_collects_macs_and_names_the_failed_bmc():
    from gpucloud.stack.redfish import RedfishError

    plan = lab_plan()

    def read(target):
        if target.node == "gpu02":
            raise RedfishError(f"node gpu02: BMC {target.bmc}: unreachable")
        return ["52:54:00:00:00:%02x" % len(target.node)]

    hosts = [h for h in plan.hosts() if h.pool == "gpu"]
    reported, errors = read_bmcs(hosts, plan.spec.provider, "pw", read)
    assert reported == {"gpu01": ["52:54:00:00:00:05"]}
    assert errors == ["node gpu02: BMC https://10.101.0.66: unreachable"]
    assert secret_env("bmc-password") == "GPUCLOUD_SECRET_BMC_PASSWORD"


# -- phone-home


@pytest.fixture(scope="module")
def host_keys(tmp_path_factory):
    if not shutil.which("ssh-keygen"):
        pytest.skip("ssh-keygen is missing")
    d = tmp_path_factory.mktemp("keys")
    out = {}
    for kind in ("ed25519", "ecdsa", "rsa"):
        subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "root@gpu01", "-f", str(d / kind)],
                       check=True)
        out[kind] = (d / f"{kind}.pub").read_text().strip()
    return out


def test_parse_key_refuses_a_blob_of_another_type(host_keys):
    kind, blob = host_keys["ed25519"].split()[:2]
    assert parse_key(host_keys["ed25519"]) == (kind, blob)
    assert parse_key(f"ssh-rsa {blob}") is None
    assert parse_key("ssh-ed25519 not-base64!") is None
    node = Node("gpu01", "10.100.0.65", "gpu01.lab")
    lines = known_hosts_lines(node, {"pub_key_ed25519": [host_keys["ed25519"]], "pub_key_rsa": ["junk"]})
    assert lines == [f"10.100.0.65,gpu01,gpu01.lab {kind} {blob}"]


def _post(url: str, form: dict) -> int:
    from urllib.parse import urlencode

    try:
        with urllib.request.urlopen(url, data=urlencode(form).encode(), timeout=10) as resp:
            return resp.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_phone_home_writes_known_hosts_that_verify_reads(tmp_path, host_keys):
    from gpucloud.verify.known_hosts import KnownHosts as VerifyKnownHosts
    from gpucloud.verify.known_hosts import lookup_names

    root = tmp_path / "http"
    (root / "ipxe").mkdir(parents=True)
    (root / "ipxe" / "boot.ipxe").write_text("#!ipxe\n")
    kh = tmp_path / "known_hosts"
    kh.write_text("10.100.0.65,gpu01 ssh-ed25519 AAAAold\nother ssh-ed25519 AAAAkeep\n")
    nodes = {"gpu01": Node("gpu01", "127.0.0.1", "gpu01.lab"), "gpu02": Node("gpu02", "127.0.0.2")}
    srv = make_server(root, nodes, kh, "127.0.0.1", 0)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        with urllib.request.urlopen(f"{base}/ipxe/boot.ipxe", timeout=10) as resp:
            assert resp.read() == b"#!ipxe\n"
        form = {"pub_key_ed25519": host_keys["ed25519"], "pub_key_rsa": host_keys["rsa"], "hostname": "gpu01"}
        assert _post(f"{base}/phone-home/gpu02", form) == 403  # not from gpu02's planned address
        assert _post(f"{base}/phone-home/gpu09", form) == 404
        assert _post(f"{base}/phone-home/gpu01", {"hostname": "gpu01"}) == 400
        assert _post(f"{base}/phone-home/gpu01", form) == 200
    finally:
        srv.shutdown()
        srv.server_close()
    lines = kh.read_text().splitlines()
    assert lines[0] == "other ssh-ed25519 AAAAkeep"  # other hosts kept, gpu01's old key replaced
    assert [ln.split()[:2] for ln in lines[1:]] == [["127.0.0.1,gpu01,gpu01.lab", "ssh-ed25519"],
                                                   ["127.0.0.1,gpu01,gpu01.lab", "ssh-rsa"]]
    known = VerifyKnownHosts.load(kh)
    for name in lookup_names("127.0.0.1", "gpu01", 22, "gpu01.lab"):
        assert sorted(k.get_name() for k in known.plain[name]) == ["ssh-ed25519", "ssh-rsa"]


def test_rendered_server_and_nodes_files_name_the_planned_server_and_every_reserved_host(tmp_path):
    plan = lab_plan()
    files = render(plan)
    assert json.loads(files[SERVER]) == {"host": "ctl01", "address": "10.100.0.129", "http_port": 8080}
    (tmp_path / "nodes.json").write_bytes(files[NODES])
    assert load_nodes(tmp_path / "nodes.json") == nodes_from_plan(plan)
    assert load_nodes(tmp_path / "nodes.json")["login01"] == Node("login01", "10.100.0.193",
                                                                  "login01.lab.gpucloud.internal")
    assert files[NODES].count(b"\n") == 2 + len(plan.provision.reservations)  # one host a line: one-line diffs


@pytest.mark.parametrize("text, words", [
    ("{", "nodes.json:1:2: not JSON"),
    ("[]", "expected an object of host names"),
    ('{"gpu01": {"fqdn": "x"}}', "$.gpu01: expected"),
])
def test_a_broken_nodes_file_is_named_with_what_is_wrong(tmp_path, text, words):
    (tmp_path / "nodes.json").write_text(text)
    with pytest.raises(ValueError, match=re.escape(words)):
        load_nodes(tmp_path / "nodes.json")


def test_the_server_file_runs_alone_with_the_standard_library(tmp_path, host_keys):
    """The provisioner role copies gpucloud/phonehome.py to the provisioning host and runs it without gpucloud."""
    import socket
    import sys

    alone = tmp_path / "alone"
    alone.mkdir()
    shutil.copy(Path(__file__).resolve().parents[2] / "gpucloud" / "phonehome.py", alone / "phonehome.py")
    root = tmp_path / "http"
    (root / "ipxe").mkdir(parents=True)
    (root / "ipxe" / "boot.ipxe").write_text("#!ipxe\n")
    (tmp_path / "nodes.json").write_text('{"gpu01": {"address": "127.0.0.1", "fqdn": null}}\n')
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    kh = tmp_path / "known_hosts"
    proc = subprocess.Popen([sys.executable, "-I", str(alone / "phonehome.py"), "--nodes", str(tmp_path / "nodes.json"),
                             "--root", str(root), "--known-hosts", str(kh), "--bind", "127.0.0.1", "--port", str(port)],
                            cwd=alone, stderr=subprocess.PIPE, text=True)
    try:
        assert "for 1 node(s) on 127.0.0.1" in proc.stderr.readline()
        assert _post(f"http://127.0.0.1:{port}/phone-home/gpu01", {"pub_key_ed25519": host_keys["ed25519"]}) == 200
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    kind, blob = host_keys["ed25519"].split()[:2]
    assert kh.read_text() == f"127.0.0.1,gpu01 {kind} {blob}\n"
    bad = subprocess.run([sys.executable, "-I", str(alone / "phonehome.py"), "--nodes", str(tmp_path / "none.json"),
                          "--root", str(root), "--known-hosts", str(kh), "--bind", "127.0.0.1", "--port", "1"],
                         capture_output=True, text=True, timeout=30)
    assert bad.returncode == 2 and "none.json: cannot read the nodes file" in bad.stderr and not bad.stdout


def test_known_hosts_store_creates_the_file(tmp_path):
    store = KnownHosts(tmp_path / "kh")
    store.replace_host(Node("a", "10.0.0.1"), ["10.0.0.1,a ssh-ed25519 AAAA"])
    store.replace_host(Node("a", "10.0.0.1"), ["10.0.0.1,a ssh-ed25519 BBBB"])
    assert (tmp_path / "kh").read_text() == "10.0.0.1,a ssh-ed25519 BBBB\n"


# -- the commands


def test_provision_commands_refuse_what_they_cannot_do_with_exit_2(tmp_path, monkeypatch):
    from conftest import run_cli

    no_role = lab_copy(tmp_path, spec_edit=lambda s: s.replace(", provisioner]", "]"))
    proc = run_cli("provision", "serve", str(no_role), "--root", str(tmp_path), "--known-hosts", str(tmp_path / "kh"))
    assert proc.returncode == 2 and "provisioner role" in proc.stderr
    proc = run_cli("provision", "serve", str(LAB), "--root", str(tmp_path), "--known-hosts", str(tmp_path / "kh"))
    assert proc.returncode == 2 and "not a rendered provision/http folder" in proc.stderr
    monkeypatch.delenv("GPUCLOUD_SECRET_BMC_PASSWORD", raising=False)
    proc = run_cli("provision", "discover", str(LAB))
    assert proc.returncode == 2 and "GPUCLOUD_SECRET_BMC_PASSWORD" in proc.stderr
    assert not (tmp_path / "discovered").exists()


def test_a_provisioner_pool_is_a_shared_cluster_service_with_an_inventory_group(tmp_path):
    from gpucloud.render import inventory
    from gpucloud.plan.stacks import CONTROL_ROLES, _is_shared

    spec = lab_copy(tmp_path, spec_edit=lambda s: s.replace("roles: [login, subnet-manager]", "roles: [provisioner]"))
    plan = lab_plan(spec)
    login = plan.pool("login")
    assert _is_shared(login) and "provisioner" in CONTROL_ROLES
    groups = yaml.safe_load(inventory.render(plan)["inventory/hosts.yml"])["all"]["children"]
    assert groups["role_provisioner"]["children"] == {"pool_ctl": {}, "pool_login": {}}


def test_ssh_keys_without_a_provisioner_are_a_warning(tmp_path):
    spec = lab_copy(tmp_path, spec_edit=lambda s: s.replace(", provisioner]", "]"))
    findings = [f for f in check_spec(spec).findings if f.check == "provisioning-server"]
    assert [(f.level, f.path) for f in findings] == [("warning", ("provisioning",))]
    assert "no pool has the provisioner role" in findings[0].message
