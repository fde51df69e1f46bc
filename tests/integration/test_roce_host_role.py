"""The roce_host role over SSH, run twice: the second run changes nothing.

The host is a network namespace whose rail NICs are veth interfaces named in a stand-in of /sys/class/infiniband
(each RDMA device's device/net/<interface>); a test sshd forces every session into that namespace (`ip netns exec`),
so the role's `ip` commands set addresses, routes and rules there and never on the test machine. The variables are
gpu0001's from the committed SAKURAONE inventory. mlnx_qos, cma_roce_tos and the NICs' ECN files are not on the
test machines; rail.sh skips them where they are missing, as on a host without them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

import sshd_daemon
from conftest import ROOT, stop_process
from gpucloud.plan.layers import inventory_variables
from slurm_harness import free_port
from storage_harness import ANSIBLE_PLAYBOOK

pytestmark = pytest.mark.integration

INVENTORY = ROOT / "inventory" / "sakuraone"
HOST = "gpu0001"
_ENTER = '#!/bin/sh\nexec ip netns exec "$1" /bin/sh -c "${SSH_ORIGINAL_COMMAND:-exec /bin/sh -l}"\n'


def _missing() -> list[str]:
    need = ["ip", "ssh", "ssh-keygen"]
    out = [b for b in need if shutil.which(b) is None]
    if sshd_daemon.SSHD is None:
        out.append("sshd")
    if not Path(ANSIBLE_PLAYBOOK).exists() and shutil.which("ansible-playbook") is None:
        out.append("ansible-playbook")
    return out


if _missing() or os.geteuid() != 0:
    pytest.skip(f"needs root and {', '.join(_missing()) or 'nothing else'}", allow_module_level=True)


def _ip(*args: str, ns: str | None = None) -> str:
    cmd = ["ip", "netns", "exec", ns, "ip", *args] if ns else ["ip", *args]
    return subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=30).stdout


def _roce_vars() -> dict:
    """The pool's RoCE variables and the host's own (its ports), as the inventory's hosts.yml holds them."""
    groups, hosts = inventory_variables((INVENTORY / "hosts.yml").read_bytes())
    variables = {k: v for k, v in {**groups["pool_gpu"], **hosts[HOST]}.items() if k.startswith("roce_host_")}
    assert "roce_host_ports" in variables and "roce_host_devices" in variables, sorted(variables)
    return variables


@pytest.fixture()
def rig(tmp_path):
    """A namespace with one veth pair per rail (the host's end named in the stand-in sysfs), and sshd into it."""
    ns = f"gpucloud-roce-{os.getpid()}"
    variables = _roce_vars()
    sysfs = tmp_path / "sys-class-infiniband"
    subprocess.run(["ip", "netns", "add", ns], check=True, timeout=30)
    proc = None
    try:
        _ip("link", "set", "lo", "up", ns=ns)
        for port in variables["roce_host_ports"]:
            nic, peer = f"rail{port['rail']}", f"leaf{port['rail']}"
            _ip("link", "add", nic, "type", "veth", "peer", "name", peer, ns=ns)
            _ip("link", "set", peer, "up", ns=ns)
            (sysfs / port["device"] / "device" / "net" / nic).mkdir(parents=True)
        keys = tmp_path / "ssh"
        keys.mkdir()
        client = sshd_daemon.keygen(keys / "id_ed25519")
        sshd_daemon.keygen(keys / "host_key")
        enter = keys / "enter"
        enter.write_text(_ENTER)
        enter.chmod(0o755)
        auth = keys / "authorized_keys"
        auth.write_text(f'command="{enter} {ns}",no-pty,no-port-forwarding {client}\n')
        auth.chmod(0o600)
        port = free_port()
        config = keys / "sshd_config"
        config.write_text("\n".join([
            f"ListenAddress 127.0.0.1:{port}", f"HostKey {keys / 'host_key'}", f"PidFile {keys / 'sshd.pid'}",
            f"AuthorizedKeysFile {auth}", "StrictModes no", "UsePAM no", "PasswordAuthentication no",
            "KbdInteractiveAuthentication no", "PermitRootLogin prohibit-password", "UseDNS no", "LogLevel ERROR",
        ]) + "\n")
        proc = sshd_daemon.start(config, keys / "sshd.log", "127.0.0.1", port, timeout=15)
        variables.update({
            "roce_host_sys_class_dir": str(sysfs), "roce_host_nccl_conf": str(tmp_path / "nccl.conf"),
            "ansible_host": "127.0.0.1", "ansible_port": port, "ansible_user": "root",
            "ansible_python_interpreter": "/usr/bin/python3",
            "ansible_ssh_private_key_file": str(keys / "id_ed25519"),
            "ansible_ssh_common_args": f"-o UserKnownHostsFile={keys / 'known_hosts'} "
                                       "-o StrictHostKeyChecking=accept-new -o ConnectTimeout=5",
            "ansible_remote_tmp": str(tmp_path / "remote-tmp"),
            "ansible_ssh_transfer_method": "piped",  # sessions are forced into the namespace: no sftp
        })
        yield ns, variables, tmp_path
    finally:
        stop_process(proc)
        subprocess.run(["ip", "netns", "delete", ns], timeout=30)


def converge(tmp_path: Path, variables: dict, run: int) -> tuple[int, int, str]:
    """One ansible-playbook run of the role on the host: (changed, failed) from PLAY RECAP, and the output."""
    work = tmp_path / f"run{run}"
    work.mkdir()
    (work / "play.yml").write_text(f"- hosts: {HOST}\n  gather_facts: false\n  roles:\n    - role: roce_host\n")
    (work / "vars.json").write_text(json.dumps(variables))
    env = {**os.environ, "ANSIBLE_ROLES_PATH": str(ROOT / "playbooks" / "roles"), "ANSIBLE_HOME": str(work / "home"),
           "ANSIBLE_LOCAL_TEMP": str(work / "tmp"), "ANSIBLE_NOCOLOR": "1", "ANSIBLE_RETRY_FILES_ENABLED": "0",
           "ANSIBLE_PIPELINING": "1"}
    proc = subprocess.run([ANSIBLE_PLAYBOOK, "-i", f"{HOST},", "play.yml", "-e", "@vars.json", "-v"], cwd=work,
                          env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    m = re.search(rf"{HOST}\s+: ok=\d+\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", out)
    assert m and m.group(2) == "0", out[-4000:]
    return int(m.group(1)), int(m.group(3)), out


def test_second_run_changes_nothing_and_a_drifted_nic_is_put_back(rig):
    ns, variables, tmp_path = rig
    changed, failed, out = converge(tmp_path, variables, 1)
    assert failed == 0 and changed == 2, out[-4000:]  # the rail NICs (one looped task) and nccl.conf
    ports = variables["roce_host_ports"]
    for port in ports:
        nic = f"rail{port['rail']}"
        assert f"inet {port['address']} " in _ip("-o", "addr", "show", "dev", nic, ns=ns)
        assert f"mtu {variables['roce_host_mtu']} " in _ip("-o", "link", "show", "dev", nic, ns=ns)
        block = variables["roce_host_rail_blocks"][port["rail"]]
        assert _ip("route", "show", "exact", block, ns=ns).startswith(f"{block} via {port['gateway']} dev {nic}")
        assert f"default via {port['gateway']} dev {nic}" in _ip("route", "show", "table", str(port["table"]), ns=ns)
        rule = _ip("rule", "list", "priority", str(port["rule_priority"]), ns=ns)
        assert f"from {port['address'].split('/')[0]} lookup {port['table']}" in rule
    assert "NCCL_IB_HCA==mlx5_0,mlx5_1" in (tmp_path / "nccl.conf").read_text()

    changed, failed, out = converge(tmp_path, variables, 2)
    assert (changed, failed) == (0, 0), out[-4000:]
    assert "changed: rail" not in out

    # Drift on one NIC (MTU, a lost rule): only that NIC's settings are applied again, and reported.
    _ip("link", "set", "dev", "rail3", "mtu", "1500", ns=ns)
    _ip("rule", "del", "priority", str(ports[5]["rule_priority"]), ns=ns)
    changed, failed, out = converge(tmp_path, variables, 3)
    assert (changed, failed) == (1, 0), out[-4000:]
    # -v prints each item's stdout twice (stdout and stdout_lines): compare the set of changes
    assert set(re.findall(r"changed: (rail\d \w+ \d+)", out)) == {
        f"rail3 mtu {variables['roce_host_mtu']}", f"rail5 rule {ports[5]['rule_priority']}"}, out[-4000:]
