"""The Redfish provider against a real BMC emulator: sushy-emulator with its fake driver on 127.0.0.1.

The fake driver applies power changes 1-11 s after accepting them and accepts any boot target, like the BMCs the
provider has to survive; every test here goes through real HTTP, real basic auth and (for TLS) a real certificate.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import stop_process

requests = pytest.importorskip("requests")
bcrypt = pytest.importorskip("bcrypt")
pytest.importorskip("pulumi")

from gpucloud.stack.provider import RedfishNodeProvider  # noqa: E402
from gpucloud.stack.redfish import Client, RedfishError  # noqa: E402

pytestmark = pytest.mark.integration

EMULATOR = shutil.which("sushy-emulator")
USER, PASSWORD = "admin", "bmc-test-password"
SYSTEM_UUID = "5b3c2a1e-0000-4000-8000-00000000a001"
MACS = ["52:54:00:aa:00:01", "52:54:00:aa:00:02"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Emulator:
    def __init__(self, root: Path, tls: bool = False):
        self.root = root
        self.port = free_port()
        root.mkdir(parents=True, exist_ok=True)
        auth = root / "htpasswd"
        auth.write_text(f"{USER}:{bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=4)).decode()}\n")
        systems = [{"uuid": SYSTEM_UUID, "name": "gpu01", "power_state": "Off",
                    "nics": [{"mac": m, "ip": f"10.101.0.{i + 65}"} for i, m in enumerate(MACS)]}]
        lines = [
            "SUSHY_EMULATOR_LISTEN_IP = '127.0.0.1'",
            f"SUSHY_EMULATOR_LISTEN_PORT = {self.port}",
            "SUSHY_EMULATOR_FAKE_DRIVER = True",
            f"SUSHY_EMULATOR_FAKE_SYSTEMS = {systems!r}",
            f"SUSHY_EMULATOR_AUTH_FILE = {str(auth)!r}",
            f"SUSHY_EMULATOR_STATE_DIR = {str(root / 'state')!r}",
        ]
        self.ca = None
        if tls:
            cert, key = root / "bmc.crt", root / "bmc.key"
            subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                            "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                            "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
            lines += [f"SUSHY_EMULATOR_SSL_CERT = {str(cert)!r}", f"SUSHY_EMULATOR_SSL_KEY = {str(key)!r}"]
            self.ca = str(cert)
        config = root / "emulator.conf"
        config.write_text("\n".join(lines) + "\n")
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.log = open(root / "emulator.log", "wb")
        self.proc = subprocess.Popen([EMULATOR, "--config", str(config)], stdout=self.log, stderr=subprocess.STDOUT,
                                     cwd=root)
        self._wait_ready()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sushy-emulator exited: {(self.root / 'emulator.log').read_text()[-2000:]}")
            try:
                requests.get(self.url + "/redfish/v1/", auth=(USER, PASSWORD), timeout=1, verify=self.ca or True)
                return
            except requests.exceptions.RequestException:
                time.sleep(0.2)
        raise RuntimeError("sushy-emulator did not answer within 30 s")

    def system(self) -> dict:
        r = requests.get(f"{self.url}/redfish/v1/Systems/{SYSTEM_UUID}", auth=(USER, PASSWORD), timeout=5,
                         verify=self.ca or True)
        r.raise_for_status()
        return r.json()

    def stop(self) -> None:
        stop_process(self.proc)
        self.log.close()


@pytest.fixture(scope="module")
def bmc(tmp_path_factory):
    if EMULATOR is None:
        pytest.skip("sushy-emulator is not installed (pip install sushy-tools)")
    emu = Emulator(tmp_path_factory.mktemp("bmc"))
    try:
        yield emu
    finally:
        emu.stop()


def props(bmc_url: str, **over) -> dict:
    base = {"node": "gpu01", "bmc": bmc_url, "system": "", "username": USER, "password": PASSWORD,
            "image": "ubuntu-22.04-gpu", "boot_target": "Pxe", "power": "On", "verify_tls": True, "ca_bundle": "",
            "power_timeout": 40.0, "poll_interval": 0.5, "request_timeout": 5.0}
    return {**base, **over}


def test_lifecycle_install_refresh_drift_update_delete(bmc):
    provider = RedfishNodeProvider()
    wanted = props(bmc.url)

    created = provider.create(wanted)
    outs = created.outs
    # Create installs: a one-time PXE boot was set and the node came up.
    assert outs["power_state"] == "On"
    assert bmc.system()["PowerState"] == "On"
    assert bmc.system()["Boot"]["BootSourceOverrideTarget"] == "Pxe"
    assert outs["mac_addresses"] == MACS
    assert outs["system_uuid"] == SYSTEM_UUID
    assert outs["system_uri"] == f"/redfish/v1/Systems/{SYSTEM_UUID}"
    assert created.id == f"{bmc.url}/redfish/v1/Systems/{SYSTEM_UUID}"

    # Nothing changed: no diff.
    assert not provider.diff(created.id, outs, wanted).changes

    # Someone powers the node off behind Pulumi's back: refresh reads it, diff shows the drift.
    requests.post(f"{bmc.url}/redfish/v1/Systems/{SYSTEM_UUID}/Actions/ComputerSystem.Reset",
                  json={"ResetType": "ForceOff"}, auth=(USER, PASSWORD), timeout=5).raise_for_status()
    Client(provider_target(wanted)).wait_power("Off")
    refreshed = provider.read(created.id, outs).outs
    assert refreshed["power_state"] == "Off"
    drift = provider.diff(created.id, refreshed, wanted)
    assert drift.changes and not drift.replaces

    # Update brings it back without reinstalling.
    updated = provider.update(created.id, refreshed, wanted).outs
    assert updated["power_state"] == "On"

    # A new image is a reinstall: replace, deleting (powering off) first.
    newer = {**wanted, "image": "ubuntu-24.04-gpu"}
    replace = provider.diff(created.id, updated, newer)
    assert replace.changes and replace.replaces == ["image"] and replace.delete_before_replace
    # A password rotation is an update, not a reinstall.
    rotated = provider.diff(created.id, updated, {**wanted, "password": "rotated"})
    assert rotated.changes and not rotated.replaces

    provider.delete(created.id, updated)
    assert bmc.system()["PowerState"] == "Off"


def provider_target(p: dict):
    from gpucloud.stack.provider import target

    return target(p)


def test_bad_credentials_name_node_and_bmc(bmc):
    with pytest.raises(RedfishError) as err:
        RedfishNodeProvider().create(props(bmc.url, password="wrong"))
    msg = str(err.value)
    assert "node gpu01" in msg and bmc.url in msg and "authentication failed (HTTP 401" in msg
    assert "password" in msg  # the hint says what to check


def test_unreachable_bmc():
    port = free_port()  # nothing listens there
    with pytest.raises(RedfishError) as err:
        RedfishNodeProvider().read("x", props(f"http://127.0.0.1:{port}", request_timeout=2.0))
    msg = str(err.value)
    assert f"BMC http://127.0.0.1:{port}" in msg and "unreachable" in msg and "node gpu01" in msg


def test_rejected_boot_target_is_refused_before_anything_changes(bmc):
    before = bmc.system()
    with pytest.raises(RedfishError) as err:
        RedfishNodeProvider().create(props(bmc.url, boot_target="Floppy"))
    msg = str(err.value)
    assert "rejects boot target 'Floppy'" in msg and "Pxe" in msg and "node gpu01" in msg
    after = bmc.system()
    # The emulator would have accepted it; the provider did not send it, nor touched the power.
    assert after["Boot"]["BootSourceOverrideTarget"] == before["Boot"]["BootSourceOverrideTarget"]
    assert after["PowerState"] == before["PowerState"]


def test_power_timeout_names_the_state(bmc):
    client = Client(provider_target(props(bmc.url, power_timeout=0.0, poll_interval=0.1)))
    wanted = "Off" if bmc.system()["PowerState"] == "On" else "On"
    with pytest.raises(RedfishError) as err:
        client.wait_power(wanted)
    assert f"after asking for '{wanted}'" in str(err.value)


def test_check_rejects_bad_inputs():
    result = RedfishNodeProvider().check({}, props("10.0.0.1", password=""))
    reasons = {f.property: f.reason for f in result.failures}
    assert set(reasons) == {"bmc", "password"}


@pytest.mark.skipif(shutil.which("openssl") is None, reason="openssl is needed to make the BMC certificate")
def test_tls_verified_by_default_and_ca_bundle_accepted(tmp_path):
    if EMULATOR is None:
        pytest.skip("sushy-emulator is not installed (pip install sushy-tools)")
    emu = Emulator(tmp_path / "tls", tls=True)
    try:
        with pytest.raises(RedfishError) as err:
            RedfishNodeProvider().read("x", props(emu.url))
        assert "TLS verification failed" in str(err.value) and "ca_bundle" in str(err.value)
        outs = RedfishNodeProvider().read("x", props(emu.url, ca_bundle=emu.ca)).outs
        assert outs["mac_addresses"] == MACS
    finally:
        emu.stop()


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
