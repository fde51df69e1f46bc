"""`gpucloud apply` with the real Pulumi engine (built by scripts/build-pulumi.sh) against Redfish BMC emulators.

The harness (pulumi_harness.Lab): the lab spec with its BMC network on loopback, one sushy-emulator per node on its
planned BMC address over TLS, the stack in a temporary work folder with its own file backend, and a recording
stand-in for ansible-playbook (first on PATH) that checks it runs in the project root with the plan's inventory.

What is asserted, in order (one engine session per module; each test builds on the state the previous one left):
preview lists exactly the resources, types, parents and inputs of the plan's pulumi/lab.json; up powers every node on
with a one-time PXE boot (all but ctl01, the provisioning server), runs the six layers in order and downloads no plugin; a second up changes nothing; the
state file holds the BMC password only encrypted; a node powered off behind Pulumi's back shows as drift on refresh
and the next up powers it on; an image change is refused (exit 3, naming the nodes) and leaves the state as it was;
removing a protected filesystem is refused by the engine; an allowed image change, which rolls node by node with
each node drained in Slurm first, touches nothing while no Slurm controller answers.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

pytest.importorskip("requests")
pytest.importorskip("bcrypt")
pytest.importorskip("pulumi.automation")

from gpucloud.stack import apply, dryrun  # noqa: E402
from pulumi_harness import LAYERS, PASSWORD, Lab, engine_or_skip  # noqa: E402

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    engine = engine_or_skip()
    lab = Lab(tmp_path_factory.mktemp("engine"), engine)
    try:
        yield lab
    finally:
        lab.stop()


def _ok(result: subprocess.CompletedProcess) -> str:
    out = result.stdout + result.stderr
    assert result.returncode == 0, out[-4000:]
    assert PASSWORD not in out
    return out


def _plan_document(spec: Path) -> dict:
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan
    from gpucloud.render import render_all

    files = render_all(build_plan(check_spec(spec).spec))
    return json.loads(files["pulumi/lab.json"])


PREVIEW_STEPS = """
import json, sys
from pathlib import Path
from gpucloud.stack import apply
request = apply.Request(spec=Path(sys.argv[1]), stack="lab")
root = apply.require_engine()
stack = apply.open_stack(request, root, apply.backend_url(None))
events = []
stack.preview(on_event=events.append)
steps = []
for event in events:
    pre = event.resource_pre_event
    if pre is not None and not pre.metadata.type.startswith(("pulumi:pulumi:", "pulumi:providers:")):
        new = pre.metadata.new
        steps.append({"op": getattr(pre.metadata.op, "value", pre.metadata.op), "urn": pre.metadata.urn,
                      "type": new.type, "parent": new.parent, "inputs": new.inputs})
print(json.dumps(steps))
"""


def _name(urn: str | None) -> str | None:
    """A resource's name from its URN; the stack's root resource (every program's implicit parent) is None."""
    if not urn or "::pulumi:pulumi:Stack::" in urn:
        return None
    return urn.rsplit("::", 1)[-1]


def test_preview_lists_the_plans_resources_types_parents_and_inputs(lab):
    result = subprocess.run([sys.executable, "-c", PREVIEW_STEPS, str(lab.spec)], cwd=ROOT, env=lab.env,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-4000:]
    assert PASSWORD not in result.stdout + result.stderr
    steps = json.loads(result.stdout.splitlines()[-1])
    planned = {r["name"]: r for r in _plan_document(lab.spec)["resources"]}
    assert {_name(s["urn"]) for s in steps} == set(planned)
    for step in steps:
        want = planned[_name(step["urn"])]
        assert step["op"] == "create"
        assert (step["type"], _name(step["parent"])) == (want["type"], want["parent"])
        # The same inputs, as the dry-run normalises them (secrets as [secret], nulls and the pickled provider
        # dropped); the layers' triggers hash the rendered plan, so they match too.
        assert dryrun.normalise(step["inputs"] or {}) == want["inputs"], want["name"]
    assert not lab.layer_log.exists()  # a preview runs nothing


def test_up_powers_every_node_on_and_runs_the_layers_in_order(lab):
    _ok(lab.apply())
    for node, bmc in lab.bmcs.items():
        system = bmc.system()
        assert system["PowerState"] == "On", node
        # ctl01 runs the provisioning service: installed by hand, only powered on, never PXE-booted.
        assert system["Boot"]["BootSourceOverrideTarget"] == ("Hdd" if node == "ctl01" else "Pxe"), node
    ran = lab.layer_log.read_text().splitlines()
    assert [line.split()[-1] for line in ran] == [f"playbooks/{layer}.yml" for layer in LAYERS]
    # Nothing was downloaded: the engine's plugin folder is as the build left it, empty.
    assert list((lab.engine / "home" / "plugins").iterdir()) == []
    assert all(line.startswith("-i plans/lab/inventory/hosts.yml ") for line in ran)


def test_second_up_changes_nothing(lab):
    out = _ok(lab.apply())
    assert "unchanged" in out and "to update" not in out and "created" not in out
    assert len(lab.layer_log.read_text().splitlines()) == len(LAYERS)  # no layer ran again


def test_state_holds_the_bmc_password_only_encrypted(lab):
    text = lab.state_file().read_text()
    assert PASSWORD not in text
    state = json.loads(text)
    bmcs = [r for r in state["checkpoint"]["latest"]["resources"] if r["type"].endswith(":RedfishNode")]
    assert len(bmcs) == 4
    for r in bmcs:
        for where in ("inputs", "outputs"):
            secret = r[where]["password"]
            assert isinstance(secret, dict) and "ciphertext" in secret, (r["urn"], where)


def test_refresh_shows_a_node_powered_off_behind_pulumis_back_and_up_powers_it_on(lab):
    lab.bmcs["gpu02"].force_off()
    out = _ok(lab.apply("--refresh", "--preview"))
    refresh = out[: out.index("Previewing update")]
    assert "gpu02-bmc" in refresh and '"Off"' in refresh  # refresh read the drift back
    assert "1 to update" in out[out.index("Previewing update"):]  # and the preview will repair it
    assert lab.bmcs["gpu02"].system()["PowerState"] == "Off"  # refresh and preview change nothing
    _ok(lab.apply())
    assert lab.bmcs["gpu02"].system()["PowerState"] == "On"


def test_an_image_change_is_refused_before_anything_changes(lab):
    before = lab.state_file().read_bytes()
    moved = lab.write_spec("lab-new-image.yaml", {"image: ubuntu-22.04-gpu": "image: ubuntu-24.04-gpu"})
    result = lab.apply(spec=moved)
    out = result.stdout + result.stderr
    assert result.returncode == apply.EXIT_REFUSED, out[-4000:]
    assert "refused" in out and "gpu01, gpu02" in out and "--allow-replace" in out
    assert "would roll them in 2 batch(es)" in out and "batch 1/2: pool gpu, 1 node(s) (budget 1): gpu01" in out
    assert lab.state_file().read_bytes() == before
    assert all(bmc.system()["PowerState"] == "On" for bmc in lab.bmcs.values())


def test_deleting_a_protected_filesystem_is_refused_by_the_engine(lab):
    before = lab.state_file().read_bytes()
    home = ("  - {name: home, kind: nfs, server: 10.100.0.10, export: /export/home, mount: /home, version: \"4.2\", "
            "capacity: 20TiB}\n")
    gone = lab.write_spec("lab-no-home.yaml", {home: ""})
    result = lab.apply(spec=gone)
    out = result.stdout + result.stderr
    assert result.returncode == apply.EXIT_FAILED, out[-4000:]
    assert "lab-storage-home" in out and "protect" in out
    assert PASSWORD not in out
    assert lab.state_file().read_bytes() == before


def test_an_allowed_image_change_powers_nothing_off_while_slurm_cannot_say_the_nodes_are_drained(lab, tmp_path):
    """--allow-replace rolls the nodes in batches, each drained in Slurm first (tests/integration/
    test_pulumi_rollout.py runs it against a real slurmctld); with no controller to ask, nothing is touched."""
    before = lab.state_file().read_bytes()
    moved = lab.write_spec("lab-new-image.yaml", {"image: ubuntu-22.04-gpu": "image: ubuntu-24.04-gpu"})
    env = dict(lab.env)
    lab.env["SLURM_CONF"] = str(tmp_path / "no-slurm.conf")
    try:
        result = lab.apply("--allow-replace", spec=moved)
    finally:
        lab.env = env
    out = result.stdout + result.stderr
    assert result.returncode == apply.EXIT_FAILED, out[-4000:]
    assert "rolling 2 node(s) in 2 batch(es)" in out
    assert "the rollout stopped at batch 1/2 (gpu01), step drain" in out and "nodes left untouched: gpu02" in out
    assert PASSWORD not in out
    assert lab.state_file().read_bytes() == before
    assert all(bmc.system()["PowerState"] == "On" for bmc in lab.bmcs.values())
