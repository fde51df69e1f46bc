"""Storage planner and checks on small variations of the example specs."""

from __future__ import annotations

import copy
import ipaddress

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.pipeline import check_spec
from gpucloud.plan import Plan, build_plan
from gpucloud.plan.storage import project_id
from gpucloud.render import storage as render

ISHIKARI = yaml.safe_load((CLUSTERS / "ishikari.yaml").read_text())


def checked(tmp_path, data):
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return check_spec(path)


def plan_of(tmp_path, data) -> Plan:
    c = checked(tmp_path, data)
    assert c.spec is not None, [f.message for f in c.findings]
    return build_plan(c.spec)


def fs(data, name):
    return next(f for f in data["storage"] if f["name"] == name)


def ids(c, level=None):
    return sorted(f.check for f in c.findings if f.check.startswith("storage") and (level is None or f.level == level))


def test_examples_have_no_storage_errors():
    for path in sorted(CLUSTERS.glob("*.yaml")):
        c = check_spec(path)
        assert not [f for f in c.findings if f.check.startswith("storage") and f.level == "error"], path


def test_multi_rail_over_both_storage_hcas(tmp_path):
    st = plan_of(tmp_path, ISHIKARI).storage
    (gpu,) = st.lnet
    assert (gpu.pool, gpu.net, gpu.interfaces, gpu.multi_rail) == ("gpu", "o2ib1", ("ib8", "ib9"), True)
    assert gpu.networks == "o2ib1(ib8,ib9)"
    (scratch,) = st.lustre
    # Primary then failover MGS, colon-separated; pools without a storage HCA are skipped with the reason.
    assert scratch.source == "10.18.0.21@o2ib1:10.18.0.22@o2ib1:/scratch"
    assert scratch.pools == ("gpu",)
    assert dict(scratch.skipped) == {"login": "model cpu-2u has no storage HCA",
                                     "ctl": "model cpu-1u has no storage HCA"}
    assert "flock" in scratch.options and "lazystatfs" in scratch.options
    assert all(t.reason for t in scratch.tuning)


def test_lnet_over_compute_rails_and_single_ipoib(tmp_path):
    data = copy.deepcopy(ISHIKARI)
    fs(data, "scratch")["lnet"] = "compute"
    st = plan_of(tmp_path, data).storage
    # login (cpu-2u) has one compute HCA and joins; the HGX nodes spread LNet over all eight rails.
    assert {n.pool: n.interfaces for n in st.lnet} == {
        "gpu": tuple(f"ib{r}" for r in range(8)), "login": ("ib0",), "ctl": ("ib0",)}
    fs(data, "scratch")["lnet"] = "ipoib"
    st = plan_of(tmp_path, data).storage
    assert {n.interfaces for n in st.lnet} == {("ib0",)}


def test_explicit_pool_without_storage_hca_is_an_error(tmp_path):
    data = copy.deepcopy(ISHIKARI)
    fs(data, "scratch")["pools"] = ["gpu", "login"]
    c = checked(tmp_path, data)
    (f,) = [f for f in c.findings if f.check == "storage-lnet" and f.level == "error"]
    assert f.json_path == "$.storage[1].pools[1]" and "cpu-2u" in f.message and f.line > 0


def test_mgs_nids_on_two_networks(tmp_path):
    data = copy.deepcopy(ISHIKARI)
    fs(data, "scratch")["mgs"] = ["10.18.0.21@o2ib1", "10.18.0.22@tcp"]
    assert "storage-lnet" in ids(checked(tmp_path, data), "error")


def test_overcommit_beyond_ratio(tmp_path):
    data = copy.deepcopy(ISHIKARI)
    assert ids(checked(tmp_path, data), "error") == []  # 7 PB of 10 PB
    data["tenants"][0]["storage_quota"]["scratch"] = "13PB"  # 16 PB > 10 PB x 1.5
    c = checked(tmp_path, data)
    (f,) = [f for f in c.findings if f.check == "storage-overcommit"]
    assert f.level == "error" and "1.60 x" in f.message and "llm-lab" in f.hint
    fs(data, "scratch")["overcommit"] = 2
    assert "storage-overcommit" not in ids(checked(tmp_path, data))


def test_quota_without_capacity_warns(tmp_path):
    data = copy.deepcopy(ISHIKARI)
    del fs(data, "scratch")["capacity"]
    c = checked(tmp_path, data)
    assert [f.level for f in c.findings if f.check == "storage-overcommit"] == ["warning"]


def test_local_scratch_from_catalog(tmp_path):
    st = plan_of(tmp_path, ISHIKARI).storage
    (nvme,) = st.local
    # hgx-h100-8: 8 data drives after two boot drives, striped.
    assert nvme.devices == tuple(f"/dev/nvme{i}n1" for i in range(2, 10))
    assert nvme.md_device == "/dev/md/nvme" and nvme.mounts() == (("/dev/md/nvme", "/local"),)
    assert nvme.capacity == 8 * 3_840_000_000_000
    data = copy.deepcopy(ISHIKARI)
    fs(data, "nvme")["raid"] = "per-drive"
    (nvme,) = plan_of(tmp_path, data).storage.local
    assert nvme.md_device is None and nvme.mounts()[7] == ("/dev/nvme9n1", "/local/7")
    fs(data, "nvme")["raid"] = "none"
    (nvme,) = plan_of(tmp_path, data).storage.local
    assert nvme.mounts() == (("/dev/nvme2n1", "/local"),) and nvme.capacity == 3_840_000_000_000


def test_local_scratch_problems(tmp_path):
    data = copy.deepcopy(ISHIKARI)
    fs(data, "nvme")["pools"] = ["gpu", "login"]  # cpu-2u has NVMe: fine
    assert ids(checked(tmp_path, data), "error") == []
    data["storage"].append({"name": "more", "kind": "local", "mount": "/more", "job_scratch": True})
    assert "storage-job-scratch" in ids(checked(tmp_path, data), "error")
    data = copy.deepcopy(ISHIKARI)
    data["tenants"][0]["storage_quota"]["nvme"] = "1TB"
    assert "storage-quota-local" in ids(checked(tmp_path, data), "error")


def test_project_ids_are_stable_and_collisions_found(tmp_path):
    data = copy.deepcopy(ISHIKARI)
    before = {p.tenant: p.project_id for p in plan_of(tmp_path, data).storage.projects}
    data["tenants"].reverse()
    data["tenants"].insert(0, {"name": "newcomer", "storage_quota": {"scratch": "1TB"}})
    after = {p.tenant: p.project_id for p in plan_of(tmp_path, data).storage.projects}
    assert all(after[t] == pid for t, pid in before.items())
    data["tenants"][0]["project_id"] = before["llm-lab"]
    c = checked(tmp_path, data)
    (f,) = [f for f in c.findings if f.check == "storage-project-id"]
    assert "llm-lab" in f.message and "newcomer" in f.message


def test_nfs_exports_only_to_mounting_pools(tmp_path):
    data = copy.deepcopy(ISHIKARI)
    fs(data, "home")["pools"] = ["login"]
    plan = plan_of(tmp_path, data)
    (home,) = plan.storage.nfs
    assert home.clients == ("10.18.8.0/22",)  # login is pool id 1: block 2 of the storage network
    block = ipaddress.IPv4Network(home.clients[0])
    assert all(ipaddress.IPv4Address(h.storage) in block for h in plan.pool("login").hosts)
    text = render.exports(plan)
    assert "/export/home 10.18.8.0/22(rw,sync,no_subtree_check,root_squash,sec=sys)\n" in text
    assert plan.storage.lnet_for("login") == ()
    assert render.pool_vars(plan, "gpu")["nfs_client_mounts"] == []


def test_nfs_quota_enforcement(tmp_path):
    data = copy.deepcopy(ISHIKARI)
    c = checked(tmp_path, data)
    assert [f.level for f in c.findings if f.check == "storage-nfs-quota"] == ["info"]
    fs(data, "home")["quotas"] = "xfs-project"
    plan = plan_of(tmp_path, data)
    files = render.render(plan)
    script = files["storage/quota/home.sh"].decode()
    assert "EXPORT=${EXPORT:-/export/home}" in script
    assert f"tenant llm-lab {project_id(plan.spec.tenants[0])} {20 * 2**30} 0 llm01 llm02 llm03" in script


@pytest.mark.parametrize("automount", [False, True])
def test_nfs_automount_in_vars(tmp_path, automount):
    data = copy.deepcopy(ISHIKARI)
    fs(data, "home")["automount"] = automount
    mounts = render.pool_vars(plan_of(tmp_path, data), "login")["nfs_client_mounts"]
    assert mounts == [{"name": "home", "source": "10.18.0.10:/export/home", "path": "/home", "automount": automount,
                       "options": "vers=4.2,proto=tcp,hard,timeo=600,retrans=2,rsize=1048576,wsize=1048576,"
                                  "nconnect=4,_netdev"}]


def test_section_figures(tmp_path):
    section = render.section(plan_of(tmp_path, ISHIKARI))
    scratch, home, nvme = section["filesystems"]
    assert (scratch["quota"], scratch["quota_ratio"], scratch["bandwidth_per_gpu"]) == ("7 PB", 0.7, "800 MB/s")
    assert scratch["client_links_gbps"] == 250 * 2 * 400  # two NDR storage HCAs per node
    assert home["capacity"] == "200 TiB" and home["quota"] == "50 TiB"
    assert nvme["capacity_per_node"] == "30.7 TB" and nvme["hosts"] == 250
    assert section["job_scratch"]["directory"] == "/local/job_<SLURM_JOB_ID>"
    assert set(section["tenants"]) == {"llm-lab", "univ-a", "startup-b"}  # ops has no quota


def test_planning_is_per_pool(tmp_path):
    """The 100,000-GPU example plans storage from three pools, not 12,520 hosts."""
    plan = plan_of(tmp_path, yaml.safe_load((CLUSTERS / "colossus-100k.yaml").read_text()))
    files = render.render(plan)
    assert sorted(files) == ["storage/lnet/gpu.conf", "storage/nfs/exports", "storage/vars/ctl.yml",
                             "storage/vars/gpu.yml", "storage/vars/login.yml"]
    assert sum(len(b) for b in files.values()) < 20_000
