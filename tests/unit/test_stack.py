"""The Pulumi stack: components under set_mocks, the stack split, layer triggers, the dry-run and `apply`."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import pytest

from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.plan import layers
from gpucloud.plan import stacks as layout
from gpucloud.render import rendered_files
from gpucloud.stack import graph
from conftest import CLUSTERS, EXAMPLES, ROOT, run_cli

pytest.importorskip("pulumi")

from gpucloud.stack import dryrun  # noqa: E402


def plan_of(path):
    checked = check_spec(path)
    assert not checked.fails("error"), checked.findings
    return build_plan(checked.spec, tuple(checked.findings))


@pytest.fixture(scope="module")
def lab():
    return plan_of(CLUSTERS / "lab.yaml")


@pytest.fixture(scope="module")
def lab_mocked(lab):
    """The lab stack as the real program registers it under set_mocks (in a child, like the plan does)."""
    import multiprocessing

    data = layout.stack_inputs(lab, {})[0]
    with multiprocessing.get_context("fork").Pool(1) as pool:
        resources = pool.apply(dryrun._record_program, (data,))
    return data, {r["name"]: r for r in resources}


def test_components_counts_parents_and_tokens(lab_mocked):
    _, res = lab_mocked
    types: dict[str, int] = {}
    for r in res.values():
        types[r["type"]] = types.get(r["type"], 0) + 1
    assert types == {
        graph.CLUSTER: 1, graph.CONTROL: 1, graph.POOL: 3, graph.NODE: 4, graph.REDFISH: 4, graph.STORAGE: 1,
        graph.FILESYSTEM: 2, graph.LAYERS: 1, graph.COMMAND: 6,
    }
    for t in types:
        if t.startswith("gpucloud:"):
            assert re.fullmatch(r"gpucloud:[a-z]+:[A-Z][A-Za-z]+", t)
    assert res["lab"]["parent"] is None
    assert res["lab-control"]["parent"] == "lab"
    assert res["pool-ctl"]["parent"] == "lab-control" and res["pool-login"]["parent"] == "lab-control"
    assert res["pool-gpu"]["parent"] == "lab"  # compute pools hang off the cluster
    assert res["gpu01"]["parent"] == "pool-gpu" and res["gpu01-bmc"]["parent"] == "gpu01"
    assert res["lab-storage-home"]["parent"] == "lab-storage"
    assert all(res[f"lab-layers-{x}"]["parent"] == "lab-layers" for x, *_ in layers.LAYERS)
    assert res["gpu01-bmc"]["inputs"]["bmc"] == "https://10.101.0.65"
    assert res["pool-gpu"]["inputs"] == {"hosts": 2, "image": "ubuntu-22.04-gpu", "model": "hgx-h100-8",
                                         "pool": "gpu", "roles": ["compute"]}


def test_stateful_resources_are_protected_and_nothing_else(lab_mocked):
    _, res = lab_mocked
    protected = sorted(n for n, r in res.items() if r["protect"])
    # ctl01 runs slurmdbd (the accounting database host); filesystems hold data.
    assert protected == ["ctl01", "ctl01-bmc", "lab-storage-home", "lab-storage-scratch"]


def test_secrets_only_referenced(lab_mocked):
    _, res = lab_mocked
    text = json.dumps(res)
    assert dryrun.DRY_RUN_PASSWORD not in text
    for name in ("gpu01-bmc", "ctl01-bmc"):
        assert res[name]["inputs"]["password"] == "[secret]"
        assert res[name]["options"]["additional_secret_outputs"] == ["password"]
        assert "__provider" not in res[name]["inputs"]


def test_layers_run_in_order_after_the_machines(lab_mocked):
    _, res = lab_mocked
    names = [x for x, *_ in layers.LAYERS]
    assert res[f"lab-layers-{names[0]}"]["dependencies"] == ["ctl01-bmc", "gpu01-bmc", "gpu02-bmc", "login01-bmc"]
    for before, after in zip(names, names[1:]):
        assert res[f"lab-layers-{after}"]["dependencies"] == [f"lab-layers-{before}"]
    slurm = res["lab-layers-slurm"]["inputs"]
    assert slurm["create"] == "ansible-playbook -i plans/lab/inventory/hosts.yml playbooks/slurm.yml"
    assert "__provider" not in slurm and "options" not in res["lab-layers-slurm"]


def test_graph_equals_the_program_under_mocks(lab_mocked):
    data, res = lab_mocked
    mocked = sorted(res.values(), key=lambda r: (r["name"], r["type"]))
    doc = json.loads(dryrun.graph_document(data))
    assert doc["resources"] == mocked


_INVENTORY = (b'{"all": {"vars": {"gpucloud_cluster": "lab"},\n  "children": {"pool_gpu": {"hosts": {\n'
              b'    "gpu01": {"ansible_host": "10.0.0.1"}}},\n  "rack_r1": {"hosts": {"gpu01": {}}}}}}\n')


def _files():
    return {
        "inventory/hosts.yml": _INVENTORY,
        "slurm/slurm.conf": b"ClusterName=lab\n",
        "fabric/compute/opensm.conf": b"routing_engine ftree\n",
        "storage/fstab": b"home /home nfs\n",
        "plan.json": b"{}\n",
    }


def _triggers(plan, files):
    return {x["name"]: x["trigger"] for x in layout.stack_inputs(plan, files)[0]["layers"]}


ALL_LAYERS = ["common", "compute", "fabric", "monitoring", "slurm", "storage"]


@pytest.mark.parametrize("path, change, expected", [
    # slurm.conf and gres.conf go to controllers and login nodes (slurm) and to the GPU nodes (compute).
    ("slurm/slurm.conf", None, ["compute", "slurm"]),
    ("slurm/gres.conf", None, ["compute", "slurm"]),  # a new file in a layer's folder counts too
    ("fabric/compute/opensm.conf", None, ["fabric"]),
    ("storage/fstab", None, ["storage"]),
    ("monitoring/prometheus/rules/gpucloud.yml", None, ["monitoring"]),  # the monitoring role installs the plan's files
    ("plan.json", None, []),  # the summary feeds no layer
    # Every role takes its settings from the inventory's group variables.
    ("inventory/hosts.yml", (b'"lab"}', b'"lab", "cuda_version": "12.5"}'), ALL_LAYERS),
    ("inventory/hosts.yml", (b'"pool_gpu": {', b'"pool_gpu": {"vars": {"gpucloud_gpus": 8}, '), ALL_LAYERS),
    # Membership counts per stack, by the stack's hosts, not in the layers' contents: a group of no role moves nothing.
    ("inventory/hosts.yml", (b'"rack_r1"', b'"rack_r2"'), []),
    # A host's own variables count for the stack that holds it (lab has one; test_inventory has several).
    ("inventory/hosts.yml", (b'10.0.0.1', b'10.0.0.2'), ALL_LAYERS),
    # A group variables file an older gpucloud wrote is in inventory/ as well: it counts.
    ("inventory/group_vars/all.yml", None, ALL_LAYERS),
])
def test_a_trigger_moves_exactly_when_its_inputs_move(lab, path, change, expected):
    before = _triggers(lab, _files())
    old = _files().get(path, b"")
    new = old + b"# changed\n" if change is None else old.replace(*change)
    assert new != old
    after = _triggers(lab, {**_files(), path: new})
    moved = sorted(k for k in before if before[k] != after[k])
    assert moved == expected


def test_every_folder_a_layer_reads_is_rendered():
    """A layer that hashes a folder no renderer writes never re-runs when what its playbook installs changes."""
    from gpucloud.pipeline import plan_files

    rendered = set()
    for spec in EXAMPLES:
        rendered |= set(plan_files(check_spec(spec)))
    for name, folders, _versions in layers.LAYERS:
        for folder in folders:
            assert any(p.startswith(folder) for p in rendered), (name, folder)


def test_a_version_moves_its_layer_only(tmp_path):
    text = (CLUSTERS / "lab.yaml").read_text()
    spec = tmp_path / "lab.yaml"
    spec.write_text(text.replace('cuda: "12.4"', 'cuda: "12.5"'))
    before = _triggers(plan_of(CLUSTERS / "lab.yaml"), _files())
    after = _triggers(plan_of(spec), _files())
    assert sorted(k for k in before if before[k] != after[k]) == ["compute"]


POD_SPEC = """\
name: pods
networks:
  management: {cidr: 10.0.0.0/16, pool_prefix: 22}
  bmc: {cidr: 10.1.0.0/16, pool_prefix: 22}
  ipoib: {cidr: 10.64.0.0/12, rail_prefix: 16, pool_prefix: 22}
node_pools:
  - {name: gpu, id: 0, model: hgx-h100-8, count: COUNT, hostname: "gpu{index:03}", roles: [compute]}
  - {name: ctl, id: 1, model: cpu-1u, count: 2, hostname: "ctl{index:02}", roles: [slurm-controller, slurmdbd],
     rack: {name: "s{rack:02}"}}
fabric:
  compute: {switch: qm9700, scalable_unit: 4, subnet_manager: {kind: ufm}}
provider: {kind: redfish, username: admin, password: {secret: bmc-password}, pod_size: 2}
"""


def _pod_plan(tmp_path, count):
    path = tmp_path / f"pods{count}.yaml"
    path.write_text(POD_SPEC.replace("COUNT", str(count)))
    return plan_of(path)


def test_pods_follow_scalable_units_and_growth_touches_one_pod(tmp_path):
    small = layout.stack_inputs(_pod_plan(tmp_path, 20), _files())
    grown = layout.stack_inputs(_pod_plan(tmp_path, 21), _files())
    assert [d["stack"] for d in small] == ["pods-shared", "pods-gpu-pod000", "pods-gpu-pod001", "pods-gpu-pod002"]
    assert [len(d["pools"][0]["hosts"]) for d in small[1:]] == [8, 8, 4]
    assert small[0]["pools"][0]["name"] == "ctl" and small[0]["storage"] == []
    # --limit names the inventory's scalable-unit groups of the pod.
    assert small[1]["layers"][0]["limit"] == "su_gpu_000,su_gpu_001"
    assert small[3]["layers"][0]["limit"] == "su_gpu_004"
    changed = [a["stack"] for a, b in zip(small, grown) if a != b]
    assert changed == ["pods-gpu-pod002"]  # the host joined pod 2; no other stack moves


def test_pods_of_pools_without_fabric_limit_to_their_hosts(tmp_path):
    spec = POD_SPEC.replace("COUNT", "8").replace(
        "fabric:\n", '  - {name: cpu, id: 2, model: cpu-1u, count: 70, hostname: "cpu{index:02}", roles: [compute],'
                     ' fabric: none, rack: {name: "c{rack:02}"}}\nfabric:\n')
    path = tmp_path / "cpu.yaml"
    path.write_text(spec)
    inputs = layout.stack_inputs(plan_of(path), {})
    cpu = [d for d in inputs if d["pools"][0]["name"] == "cpu"]
    assert [len(d["pools"][0]["hosts"]) for d in cpu] == [64, 6]  # DEFAULT_SU 32 x pod_size 2
    # No su_cpu_* group exists in the inventory (no fabric), so the limit names the hosts themselves.
    assert cpu[1]["layers"][0]["limit"] == "cpu65,cpu66,cpu67,cpu68,cpu69,cpu70"


def test_no_stack_passes_2000_resources_at_100k_gpus():
    plan = plan_of(CLUSTERS / "colossus-100k.yaml")
    inputs = layout.stack_inputs(plan, {})
    assert len(inputs) == 99 and inputs[0]["stack"] == "colossus-100k-shared"
    total = 0
    for data in inputs:
        resources = graph.stack_graph(data)
        hosts = sum(len(p["hosts"]) for p in data["pools"])
        assert len(resources) <= layout.MAX_RESOURCES
        assert len(resources) <= layout.estimate(hosts, len(data["pools"]))
        total += hosts
    assert total == plan.host_count  # every host in exactly one stack


def test_small_clusters_are_one_stack(lab):
    assert [p.stack_name for p in layout.split(lab)] == ["lab"]


def test_sampled_check_catches_a_divergence(lab, monkeypatch, tmp_path):
    monkeypatch.setenv("GPUCLOUD_CACHE_DIR", str(tmp_path))
    inputs = layout.stack_inputs(lab, {})
    docs, checked = dryrun.render_stacks(inputs, workers=1)
    assert checked == ["lab"]
    assert list((tmp_path / "pulumi-dryrun").glob("*.ok"))  # remembered: the next plan skips the mocks
    original = graph.stack_graph

    def unprotected(data):  # a graph that forgot to protect the accounting database host
        return [{**r, "protect": False} if r["name"] == "ctl01" else r for r in original(data)]

    monkeypatch.setattr(graph, "stack_graph", unprotected)
    monkeypatch.setenv("GPUCLOUD_CACHE_DIR", "off")
    with pytest.raises(RuntimeError, match="declares something else"):
        dryrun.render_stacks(inputs, workers=1)


def test_normalise():
    secret = {dryrun.SIG_KEY: dryrun.SECRET_SIG, "value": "x"}
    assert dryrun.normalise({"a": 3.0, "b": 2.5, "c": None, "d": [1.0, secret], "__provider": "p"}) == \
        {"a": 3, "b": 2.5, "d": [1, "[secret]"]}


def test_validate_path_never_imports_pulumi():
    code = ("import sys\nfrom gpucloud.pipeline import check_spec\nfrom gpucloud.plan import build_plan\n"
            "from gpucloud.plan import stacks as layout\nc = check_spec('clusters/lab.yaml')\n"
            "layout.stack_inputs(build_plan(c.spec), {})\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('pulumi', 'grpc')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_apply_without_the_built_engine_exits_2_naming_the_build_script(tmp_path):
    result = run_cli("apply", "clusters/lab.yaml", "--stack", "lab",
                     env={"GPUCLOUD_PULUMI_ROOT": str(tmp_path / "none"), "PULUMI_CONFIG_PASSPHRASE": "x"})
    assert result.returncode == 2
    assert "Pulumi engine is not built" in result.stderr and "scripts/build-pulumi.sh" in result.stderr
    assert "Traceback" not in result.stderr


def test_apply_without_a_passphrase_exits_2_before_running_the_engine(tmp_path):
    # An engine that fails loudly if it is ever started: the passphrase is checked first.
    (tmp_path / "bin").mkdir()
    for name in ("pulumi", "pulumi-resource-pulumi-python"):
        (tmp_path / "bin" / name).write_text("#!/bin/sh\necho started >&2\nexit 99\n")
        (tmp_path / "bin" / name).chmod(0o755)
    env = {"GPUCLOUD_PULUMI_ROOT": str(tmp_path), "PULUMI_CONFIG_PASSPHRASE": "", "PULUMI_CONFIG_PASSPHRASE_FILE": "",
           "PULUMI_BACKEND_URL": ""}
    result = run_cli("apply", "clusters/lab.yaml", "--stack", "lab", env=env)
    assert result.returncode == 2
    assert "PULUMI_CONFIG_PASSPHRASE is not set" in result.stderr and "started" not in result.stderr
    assert "Traceback" not in result.stderr


def test_apply_unknown_stack_exits_2_with_did_you_mean():
    result = run_cli("apply", "clusters/lab.yaml", "--stack", "labb")
    assert result.returncode == 2
    assert "not one of lab's 1 stack(s)" in result.stderr and "did you mean 'lab'" in result.stderr
    assert "Traceback" not in result.stderr


def _run_infra(config):
    """infra/__main__.py itself, under mocks with the given stack config; returns the resources it declares."""
    import runpy

    import pulumi
    from pulumi.runtime import settings

    records = []

    class Mocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            records.append((args.typ, args.name, tuple(args.inputs.get("triggers") or ())))
            return [f"{args.name}-id", args.inputs]

        def call(self, args):
            return {}

    settings.ROOT.set(None)
    pulumi.runtime.set_mocks(Mocks(), project="gpucloud", stack="lab", preview=True)
    pulumi.runtime.set_all_config(config, ["gpucloud:bmc-password"])

    @pulumi.runtime.test
    def program():
        runpy.run_path(str(ROOT / "infra" / "__main__.py"), run_name="__main__")
        return pulumi.Output.from_input(1)

    program()
    return sorted(records)


def test_infra_program_declares_the_planned_stack(lab):
    import multiprocessing

    config = {"gpucloud:spec": str(CLUSTERS / "lab.yaml"), "gpucloud:bmc-password": "not-a-real-password"}
    with multiprocessing.get_context("fork").Pool(1) as pool:
        declared = pool.apply(_run_infra, (config,))
    data = layout.stack_inputs(lab, rendered_files(lab))[0]
    expected = sorted((r["type"], r["name"], tuple(r["inputs"].get("triggers") or ()))
                      for r in graph.stack_graph(data))
    # Same resources, and the same layer triggers as the plan's dry-run: preview agrees with the plan.
    assert declared == expected
    # The layers' inventory is the plan folder's own, so the roles find the plan's files through gpucloud_plan_dir.
    written = ROOT / graph.plan_path("lab")
    assert (written / "plan.json").is_file() and (written / "storage" / "vars").is_dir()
    assert (written / "inventory" / "hosts.yml").is_file()
    assert '"gpucloud_plan_dir": "{{ inventory_dir }}/.."' in (written / "inventory" / "hosts.yml").read_text()


def test_tls_settings():
    from gpucloud.stack.redfish import Client, Target

    def verify(**kw):
        return Client(Target(node="n", bmc="https://10.0.0.1", username="u", password="p", **kw)).verify

    assert verify() is True
    assert verify(ca_bundle="/etc/bmc-ca.pem") == "/etc/bmc-ca.pem"
    assert verify(verify_tls=False, ca_bundle="/etc/bmc-ca.pem") is False


def test_stacks_over_the_limit_are_marked(lab, monkeypatch, tmp_path):
    from gpucloud.render import pulumi as pulumi_render

    monkeypatch.setenv("GPUCLOUD_CACHE_DIR", str(tmp_path))
    monkeypatch.setattr(layout, "MAX_RESOURCES", 10)
    index = json.loads(pulumi_render.render(lab, {})["pulumi/stacks.json"])
    assert [s["stack"] for s in index["stacks"]] == ["lab-shared", "lab-gpu-pod000"]
    assert all(s.get("over_limit") for s in index["stacks"])
