"""The Slurm planner and renderer on the example specs and on small variations of the lab spec."""

from __future__ import annotations

import re
from functools import lru_cache
from types import SimpleNamespace

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.checks.slurm import verify_rendered
from gpucloud.hostlist import expand
from gpucloud.plan.hosts import plan_hosts
from gpucloud.plan.slurm import max_wall, plan_slurm, size_for
from gpucloud.render.slurm import render
from gpucloud.spec import load


@lru_cache(maxsize=None)
def slurm_of(path):
    loaded = load(path)
    assert loaded.spec is not None, loaded.findings
    return plan_slurm(loaded.spec, plan_hosts(loaded.spec))


def files_of(sp) -> dict[str, bytes]:
    return render(SimpleNamespace(slurm=sp))


def lab_variant(tmp_path, edit) -> object:
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    edit(data)
    path = tmp_path / "lab.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return slurm_of(path)


def conf_lines(files, prefix: str) -> list[str]:
    return [line for line in files["slurm/slurm.conf"].decode().splitlines() if line.startswith(prefix)]


def test_lab_nodes_gres_and_memory():
    sp = slurm_of(CLUSTERS / "lab.yaml")
    (group,) = sp.nodes  # only the compute pool runs slurmd
    assert (group.names, group.count, group.cpus, group.gres) == ("gpu[01-02]", 2, 224, "gpu:h100:8")
    # 2 TiB less 5 % for the OS, whole GiB: a node reporting less than RealMemory would be drained.
    assert group.real_memory_mib == 1991680 and group.real_memory_mib < 2048 * 1024
    files = files_of(sp)
    gres = [line for line in files["slurm/gres.conf"].decode().splitlines() if line.startswith("NodeName")]
    assert gres == ["NodeName=gpu[01-02] Name=gpu Type=h100 File=/dev/nvidia[0-3] Cores=0-55",
                    "NodeName=gpu[01-02] Name=gpu Type=h100 File=/dev/nvidia[4-7] Cores=56-111"]
    assert conf_lines(files, "GresTypes=") == ["GresTypes=gpu"]
    assert conf_lines(files, "SlurmctldHost=") == ["SlurmctldHost=ctl01"]
    assert conf_lines(files, "AccountingStorageHost=") == ["AccountingStorageHost=ctl01"]


def test_partitions_closed_to_tenants_that_list_them():
    files = files_of(slurm_of(CLUSTERS / "lab.yaml"))
    parts = {line.split()[0]: line for line in conf_lines(files, "PartitionName=")}
    assert "AllowAccounts=research " in parts["PartitionName=gpu"]
    assert "AllowAccounts=research,teaching " in parts["PartitionName=debug"]
    assert "OverSubscribe=EXCLUSIVE" in parts["PartitionName=gpu"]
    assert "OverSubscribe" not in parts["PartitionName=debug"]
    assert "DefaultTime=00:30:00" in parts["PartitionName=debug"]


def test_dedicated_pool_admits_only_its_owner():
    sp = slurm_of(CLUSTERS / "hokkaido-10k.yaml")
    parts = {p.name: p for p in sp.partitions}
    assert parts["h200"].allow_accounts == ("frontier-llm",)
    assert parts["h100"].allow_accounts == ("shared",)
    accounts = {a.name: a for a in sp.accounts}
    assert accounts["frontier-llm"].partitions == ("h200",)  # reached through its dedicated pool
    assert accounts["frontier-llm"].grp_tres == "gres/gpu=8800"


def test_untouched_partition_stays_open(tmp_path):
    def edit(data):
        data["slurm"]["partitions"].append({"name": "open", "pools": ["gpu"]})

    sp = lab_variant(tmp_path, edit)
    assert {p.name: p.allow_accounts for p in sp.partitions}["open"] == ()


def test_size_grows_with_pools_not_nodes(tmp_path):
    small = files_of(slurm_of(CLUSTERS / "colossus-100k.yaml"))["slurm/slurm.conf"]
    assert len(small) < 4096  # a few KB for 12,500 nodes
    big = files_of(lab_variant(tmp_path, lambda d: d["node_pools"][0].update(count=99)))["slurm/slurm.conf"]
    lab = files_of(slurm_of(CLUSTERS / "lab.yaml"))["slurm/slurm.conf"]
    assert big.count(b"\n") == lab.count(b"\n")
    assert b"NodeName=gpu[01-99] " in big


def test_excluded_hosts_leave_the_node_line(tmp_path):
    sp = lab_variant(tmp_path, lambda d: d["node_pools"][0].update(count=4, exclude=[2]))
    assert sp.nodes[0].names == "gpu[01,03-04]" and sp.nodes[0].count == 3
    assert sp.partitions[0].node_count == 3 and sp.partitions[0].gpus == 24


@pytest.mark.parametrize("nodes, width", [(2, 2), (100, 10), (2500, 50), (2501, 14), (12500, 24)])
def test_tree_width_follows_the_manual(nodes, width):
    # slurm.conf(5): square root of the node count up to 2,500 nodes, cube root above.
    assert size_for(nodes).tree_width == width


def test_large_systems_get_longer_timeouts():
    small, large = size_for(2), size_for(12500)
    assert small.message_timeout < large.message_timeout and small.slurmd_timeout < large.slurmd_timeout


@pytest.mark.parametrize("text, shown", [("2-00:00:00", "2-00:00:00"), ("01:00:00", "01:00:00"),
                                         ("90", "01:30:00"), ("7-12:30:00", "7-12:30:00"), (None, None)])
def test_max_wall_as_sacctmgr_prints_it(text, shown):
    assert max_wall(text) == shown


def test_secret_only_referenced():
    files = files_of(slurm_of(CLUSTERS / "lab.yaml"))
    dbd = files["slurm/slurmdbd.conf"].decode()
    assert "StoragePass=@@secret:slurmdbd-db-password@@" in dbd.splitlines()
    assert re.findall(r"StoragePass=(.*)", dbd) == ["@@secret:slurmdbd-db-password@@"]


def test_autodetect_lists_counts_not_devices(tmp_path):
    sp = lab_variant(tmp_path, lambda d: d["slurm"].update(gres_autodetect=True))
    gres = files_of(sp)["slurm/gres.conf"].decode()
    assert "AutoDetect=nvml" in gres and "/dev/nvidia" not in gres
    assert "NodeName=gpu[01-02] Name=gpu Type=h100 Count=8" in gres


def test_no_pyxis_no_plugstack(tmp_path):
    files = files_of(lab_variant(tmp_path, lambda d: d["slurm"].update(containers={"enroot": True})))
    assert "slurm/plugstack.conf" not in files and b"PlugStackConfig" not in files["slurm/slurm.conf"]


def test_tenant_script_lists_every_tenant_and_user():
    script = files_of(slurm_of(CLUSTERS / "ishikari.yaml"))["slurm/tenants.sh"].decode()
    assert "ensure_qos llm-lab gres/gpu=1024 7-00:00:00 100" in script
    assert "ensure_qos ops '' '' 1000" in script  # no GPU limit, no wall limit
    calls = [line for line in script.splitlines() if line.startswith("ensure_user ")]
    assert len(calls) == 7  # llm01-03, ua001-002, sb-ops, opsbot
    assert "ensure_user ua001 univ-a" in script


@pytest.mark.parametrize("spec", sorted(CLUSTERS.glob("*.yaml")), ids=lambda p: p.stem)
def test_examples_pass_the_self_check(spec):
    files = files_of(slurm_of(spec))
    assert verify_rendered(files) == []
    nodes = sum(len(expand(g)) for g in re.findall(r"^NodeName=(\S+)", files["slurm/slurm.conf"].decode(), re.M))
    assert nodes == slurm_of(spec).node_count


def test_self_check_catches_what_slurmctld_accepts():
    files = files_of(slurm_of(CLUSTERS / "lab.yaml"))
    no_types = {**files, "slurm/slurm.conf": files["slurm/slurm.conf"].replace(b"GresTypes=gpu\n", b"")}
    assert any("GresTypes" in f.message for f in verify_rendered(no_types))
    short = {**files, "slurm/gres.conf": files["slurm/gres.conf"].replace(b"nvidia[4-7]", b"nvidia[4-6]")}
    assert any("7 GPU device(s)" in f.message for f in verify_rendered(short))
    topo = {**files, "slurm/topology.conf": b"SwitchName=s1 Nodes=gpu[01-03]\n"}
    messages = [f.message for f in verify_rendered(topo)]
    assert any("unknown node" in m and "gpu03" in m for m in messages)
    half = {**files, "slurm/topology.conf": b"SwitchName=s1 Nodes=gpu01\n"}
    assert any("on no switch" in f.message and "gpu02" in f.message for f in verify_rendered(half))
    assert verify_rendered({**files, "slurm/topology.conf": b"SwitchName=s1 Nodes=gpu[01-02]\n"}) == []


@pytest.mark.parametrize("spec", [pytest.param(p, marks=pytest.mark.slow) if p.stem == "colossus-100k" else p
                                  for p in sorted(CLUSTERS.glob("*.yaml"))], ids=lambda p: p.stem)
def test_topology_of_the_fabric_names_only_slurm_nodes(spec):
    """topology.conf comes from the fabric renderer: every node it names is a NodeName, every node is on it."""
    import importlib

    from gpucloud.plan import build_plan
    from gpucloud.render import RENDERERS

    plan = build_plan(load(spec).spec)
    files = {}
    for module, name in RENDERERS:
        if module.startswith("gpucloud.render.slurm"):
            files.update(getattr(importlib.import_module(module), name)(plan))
    # Rendered exactly when the spec asks for a topology plugin: a renderer that stops writing it must fail here.
    assert ("slurm/topology.conf" in files) == (plan.spec.slurm.topology in ("tree", "block"))
    assert verify_rendered(files) == []


def test_plan_json_section():
    from gpucloud.plan import build_plan
    from gpucloud.render.plan_json import document

    doc = document(build_plan(load(CLUSTERS / "lab.yaml").spec))["slurm"]
    assert (doc["nodes"], doc["gpus"], doc["controllers"], doc["dbd_host"]) == (2, 16, ["ctl01"], "ctl01")
    assert [p["name"] for p in doc["partitions"]] == ["gpu", "debug"]
    assert {a["name"]: a["gpu_limit"] for a in doc["accounts"]} == {"research": 8, "teaching": 4}


# --- hardware the catalog does not know -----------------------------------------------------------------------

VALID = CLUSTERS.parent / "tests" / "specs" / "valid"


def _node_line(files, names: str) -> str:
    (line,) = conf_lines(files, f"NodeName={names} ")
    return line


def test_spec_model_is_what_slurm_conf_and_gres_conf_describe():
    """2 x 96 cores, 768 GiB, 4 GPUs: the catalog's h100-4 (2 x 48, 1,024 GiB) would have every node drained."""
    sp = slurm_of(VALID / "own-hardware.yaml")
    files = files_of(sp)
    line = _node_line(files, "nvl[01-04]")
    # 768 GiB less 5 % (38.4 GiB), rounded down to whole GiB: 729 GiB
    assert "Sockets=2 CoresPerSocket=96 ThreadsPerCore=2 RealMemory=746496 Gres=gpu:h100:4 " in line
    assert 746496 == 729 * 1024 < 768 * 1024
    gres = [g for g in files["slurm/gres.conf"].decode().splitlines() if g.startswith("NodeName=nvl")]
    assert gres == ["NodeName=nvl[01-04] Name=gpu Type=h100 File=/dev/nvidia[0-1] Cores=0-95",
                    "NodeName=nvl[01-04] Name=gpu Type=h100 File=/dev/nvidia[2-3] Cores=96-191"]
    # A pool's override of one field keeps the catalog's others.
    assert "Sockets=2 CoresPerSocket=48 ThreadsPerCore=2 RealMemory=1494016 " in _node_line(files, "big[01-02]")
    assert verify_rendered(files) == []


def test_pool_override_changes_only_that_pool(tmp_path):
    def edit(data):
        data["node_pools"][0]["hardware"] = {"cpu": {"cores_per_socket": 96, "sockets": 2}, "memory_gib": 768,
                                             "gpu": {"count": 4, "sockets": [0, 1, 0, 1]},
                                             "compute_hcas": {"count": 4}}

    sp = lab_variant(tmp_path, edit)
    (group,) = sp.nodes
    assert (group.cpus, group.real_memory_mib, group.gres) == (384, 746496, "gpu:h100:4")
    gres = [g for g in files_of(sp)["slurm/gres.conf"].decode().splitlines() if g.startswith("NodeName")]
    assert gres == ["NodeName=gpu[01-02] Name=gpu Type=h100 File=/dev/nvidia[0,2] Cores=0-95",
                    "NodeName=gpu[01-02] Name=gpu Type=h100 File=/dev/nvidia[1,3] Cores=96-191"]


def test_gpus_split_over_sockets_when_the_count_changes(tmp_path):
    sp = lab_variant(tmp_path, lambda d: d["node_pools"][0].update(hardware={"gpu": {"count": 4},
                                                                             "compute_hcas": {"count": 4}}))
    assert sp.nodes[0].gpu_devices == (("/dev/nvidia[0-1]", "0-55"), ("/dev/nvidia[2-3]", "56-111"))


# --- controllers sharing their state --------------------------------------------------------------------------

def test_state_save_on_the_shared_filesystem():
    files = files_of(slurm_of(CLUSTERS / "ishikari.yaml"))
    assert conf_lines(files, "SlurmctldHost=") == ["SlurmctldHost=ctl01", "SlurmctldHost=ctl02"]
    assert conf_lines(files, "StateSaveLocation=") == ["StateSaveLocation=/home/slurm/state"]
    lab = files_of(slurm_of(CLUSTERS / "lab.yaml"))  # one controller: its own disk
    assert conf_lines(lab, "StateSaveLocation=") == ["StateSaveLocation=/var/spool/slurmctld"]


def _findings(tmp_path, edit) -> dict[str, list]:
    from gpucloud.pipeline import check_spec

    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    edit(data)
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    out: dict[str, list] = {}
    for f in check_spec(path).findings:
        out.setdefault(f.check, []).append(f)
    return out


def test_two_controllers_without_shared_state_are_refused(tmp_path):
    found = _findings(tmp_path, lambda d: d["node_pools"][1].update(count=2))
    (f,) = found["slurm-state-save"]
    assert f.level == "error" and f.path == ("node_pools", 1, "roles")
    assert "home" in f.hint  # names the spec's shared filesystems

    def shared(d):
        d["node_pools"][1].update(count=2)
        d["slurm"]["state_save"] = {"filesystem": "home"}

    assert "slurm-state-save" not in _findings(tmp_path, shared)

    def typo(d):
        shared(d)
        d["slurm"]["state_save"] = {"filesystem": "hom"}

    (f,) = _findings(tmp_path, typo)["slurm-state-save"]
    assert f.path == ("slurm", "state_save", "filesystem") and "home" in f.hint


def test_two_slurmdbd_hosts_say_why_one_runs(tmp_path):
    found = _findings(tmp_path, lambda d: (d["node_pools"][1].update(count=2),
                                           d["slurm"].update(state_save={"filesystem": "home"})))
    (f,) = found["slurm-dbd-ha"]
    assert f.level == "info" and "DbdBackupHost" in f.message
    assert "slurm-dbd-ha" not in _findings(tmp_path, lambda d: None)


def test_state_on_a_lustre_the_controllers_cannot_reach(tmp_path):
    def edit(d):
        d["node_pools"][1].update(count=2, fabric="none")
        d["storage"].append({"name": "fast", "kind": "lustre", "fsname": "fast", "mgs": ["10.102.0.21@o2ib"],
                             "mount": "/lustre/fast"})
        d["slurm"]["state_save"] = {"filesystem": "fast"}

    (f,) = _findings(tmp_path, edit)["slurm-state-save"]
    assert "cannot reach Lustre" in f.message
