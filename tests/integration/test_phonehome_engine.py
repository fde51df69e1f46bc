"""`gpucloud apply` with the real Pulumi engine waits for each PXE-booted node to phone home before the layers run.

The harness (phonehome_harness.InstallLab): pulumi_harness's lab (sushy-emulator BMCs on the nodes' planned BMC
addresses, the real engine, a file backend, a stand-in ansible-playbook) with the management network on loopback, the
real phone-home server of gpucloud/phonehome.py on ctl01's planned address, and a stand-in installer that posts a
node's new host key some seconds after its BMC powers it on with a one-time PXE boot.

Asserted: the up completes only after every installed node has phoned home, and every configuration layer starts
with all of their keys in known_hosts (today's code ran the layers as soon as the nodes were powered on); nodes that
never phone home fail the up within the spec's timeout, each error naming the node, its BMC and its phone-home URL,
and no layer runs. ctl01 runs the server and is installed by hand: nothing waits for it.
"""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest

pytest.importorskip("requests")
pytest.importorskip("bcrypt")
pytest.importorskip("pulumi.automation")

from phonehome_harness import InstallLab  # noqa: E402
from pulumi_harness import LAYERS, NODES, PASSWORD, engine_or_skip  # noqa: E402

pytestmark = pytest.mark.integration
INSTALLED = {"gpu01", "gpu02", "login01"}


def _lab(tmp_path, **kwargs) -> InstallLab:
    engine = engine_or_skip()
    if shutil.which("ssh-keygen") is None:
        pytest.skip("ssh-keygen is missing (apt-get install openssh-client)")
    return InstallLab(tmp_path, engine, **kwargs)


def test_up_runs_the_layers_only_after_every_installed_node_phoned_home(tmp_path):
    lab = _lab(tmp_path, install_seconds=6)
    try:
        result = lab.apply()
        out = result.stdout + result.stderr
        assert result.returncode == 0, out[-4000:]
        assert PASSWORD not in out
        assert sorted(node for node, _ in lab.posts) == sorted(INSTALLED)  # one install each, ctl01 none
        ran = lab.layer_log.read_text().splitlines()
        assert [line.split()[-1] for line in ran] == [f"playbooks/{layer}.yml" for layer in LAYERS]
        # Every layer started with every installed node's new key already recorded.
        known = lab.known_at_layers()
        assert len(known) == len(LAYERS) and all(k == INSTALLED for k in known), known
        for node in INSTALLED:
            with urllib.request.urlopen(lab.base + node, timeout=10) as resp:
                assert json.loads(resp.read())["reports"] == 1, node
    finally:
        lab.stop()
    # The host keys are where converge and verify read them: verify's own reader takes the file.
    from gpucloud.verify.known_hosts import KnownHosts

    table = KnownHosts.load(lab.known_hosts)
    assert {name for name in table.plain if not name[0].isdigit() and "." not in name} == INSTALLED


def test_nodes_that_never_phone_home_fail_the_up_naming_each(tmp_path):
    lab = _lab(tmp_path, phone_home_timeout=20)
    lab.silent = set(INSTALLED)
    try:
        result = lab.apply()
    finally:
        lab.stop()
    out = result.stdout + result.stderr
    assert result.returncode == 1, out[-4000:]
    for node in sorted(INSTALLED):
        assert (f"node {node}: BMC https://{NODES[node]}: phone-home {lab.base}{node}: no report 20 s after the PXE "
                "boot") in out, out[-4000:]
    assert "node ctl01" not in out  # the provisioning server itself waits for nobody
    assert PASSWORD not in out
    assert not lab.layer_log.exists()  # no layer ran on machines that are not installed
    assert lab.posts == []
    # The failed nodes are not in the state: the next apply PXE-boots them again.
    state = json.loads(lab.state_file().read_text())
    created = {r["urn"].rsplit("::", 1)[-1] for r in state["checkpoint"]["latest"]["resources"]
               if r["type"].endswith(":RedfishNode")}
    assert created == {"ctl01-bmc"}
