"""Semantic checks on small specs built in memory, at the boundaries where a wrong check would pass or cry wolf."""

from __future__ import annotations

import copy
import re

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from conftest import ROOT
from gpucloud.checks import all_checks, run_checks
from gpucloud.spec import schema
from gpucloud.spec.model import build

BASE = {
    "name": "t",
    "networks": {"management": {"cidr": "10.0.0.0/16"}, "bmc": {"cidr": "10.1.0.0/16"}},
    "node_pools": [{"name": "gpu", "model": "hgx-h100-8", "count": 2}],
}
MY_MODULES = {"catalog", "names", "pools", "networks", "racks", "references", "tenants", "software", "provider",
              "ethernet"}


def spec_of(**changes):
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(changes))
    assert schema.validate(data) == [], schema.validate(data)
    return build(data)


def found(spec, check_id=None):
    out = run_checks(spec)
    return [f for f in out if check_id is None or f.check == check_id]


def test_check_ids_are_unique_kebab_case_and_documented():
    checks = all_checks()
    for check_id, fn in checks.items():
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", check_id), check_id
        assert (fn.__doc__ or "").strip(), f"{check_id} has no docstring (gpucloud checks prints it)"


def test_every_check_of_these_modules_has_an_invalid_case():
    headers = " ".join(p.read_bytes().split(b"\n", 1)[0].decode("utf-8", "replace")
                       for p in (ROOT / "tests" / "specs" / "invalid").glob("*.yaml"))
    mine = [cid for cid, fn in all_checks().items() if fn.__module__.rsplit(".", 1)[-1] in MY_MODULES]
    assert len(mine) >= 30
    # Every adapter in today's catalog is supported by every DOCA-OFED row, so no spec can fail that check yet;
    # test_doca_ofed_adapter_support covers it with a narrowed table.
    # Every catalog Ethernet switch breaks out to every Ethernet rate the schema allows, so ethernet-rate cannot fail
    # on a spec yet either.
    untestable = {"software-doca-ofed", "ethernet-rate"}
    missing = [cid for cid in mine if f"check={cid} " not in headers and cid not in untestable]
    assert missing == []


def test_the_examples_have_no_findings_from_these_checks():
    from gpucloud.spec import load

    mine = {cid for cid, fn in all_checks().items() if fn.__module__.rsplit(".", 1)[-1] in MY_MODULES}
    for path in sorted((ROOT / "clusters").glob("*.yaml")):
        spec = load(path).spec
        found_ = [f for f in run_checks(spec) if f.check in mine and f.level != "info"]
        assert found_ == [], (path.name, found_)


# --- networks ---

def test_overlap_of_a_network_inside_a_larger_one_listed_apart():
    spec = spec_of(networks={"management": {"cidr": "10.0.0.0/8"}, "bmc": {"cidr": "11.0.0.0/16"},
                             "storage": {"cidr": "10.200.0.0/16"}})
    (f,) = found(spec, "network-overlap")
    assert f.path == ("networks", "storage", "cidr") and "management" in f.message


def test_adjacent_networks_do_not_overlap():
    spec = spec_of(networks={"management": {"cidr": "10.0.0.0/16"}, "bmc": {"cidr": "10.1.0.0/16"},
                             "storage": {"cidr": "9.255.255.0/24"}})
    assert found(spec, "network-overlap") == []


@pytest.mark.parametrize("count, ok", [(62, True), (63, False)])
def test_pool_capacity_boundary(count, ok):
    # /26 blocks hold 64 addresses: network and broadcast excluded, 62 hosts.
    spec = spec_of(networks={"management": {"cidr": "10.0.0.0/16", "pool_prefix": 26},
                             "bmc": {"cidr": "10.1.0.0/16"}},
                   node_pools=[{"name": "cpu", "model": "cpu-1u", "count": count, "rack": {"nodes_per_rack": 40}}])
    assert (found(spec, "network-pool-capacity") == []) is ok


def test_excluded_hosts_keep_their_positions_and_still_need_room():
    spec = spec_of(networks={"management": {"cidr": "10.0.0.0/16", "pool_prefix": 26},
                             "bmc": {"cidr": "10.1.0.0/16"}},
                   node_pools=[{"name": "cpu", "model": "cpu-1u", "count": 63, "exclude": [1, 2, 3],
                                "rack": {"nodes_per_rack": 40}}])
    assert [f.path for f in found(spec, "network-pool-capacity")] == [("node_pools", 0, "count")]


@pytest.mark.parametrize("pool_id, ok", [(14, True), (15, False)])
def test_pool_blocks_boundary(pool_id, ok):
    # /16 cut at /20: 16 blocks; block 0 is reserved, so ids 0-14 exist.
    spec = spec_of(networks={"management": {"cidr": "10.0.0.0/16", "pool_prefix": 20},
                             "bmc": {"cidr": "10.1.0.0/16", "pool_prefix": 20}},
                   node_pools=[{"name": "gpu", "id": pool_id, "model": "hgx-h100-8", "count": 2}])
    got = found(spec, "network-pool-blocks")
    assert (got == []) is ok
    if not ok:
        assert {f.path for f in got} == {("node_pools", 0, "id")} and len(got) == 2  # management and bmc


@pytest.mark.parametrize("rail_prefix, ok", [(19, True), (18, False)])
def test_ipoib_rails_need_one_subnet_each(rail_prefix, ok):
    spec = spec_of(networks={**BASE["networks"], "ipoib": {"cidr": "10.32.0.0/16", "rail_prefix": rail_prefix}},
                   fabric={"compute": {"switch": "qm9700"}})
    assert (found(spec, "network-ipoib-rails") == []) is ok


@pytest.mark.parametrize("fabric, blocked", [("none", False), ("compute", True)])
def test_only_pools_on_the_fabric_need_an_ipoib_block(fabric, blocked):
    nets = {"management": {"cidr": "10.0.0.0/16", "pool_prefix": 24}, "bmc": {"cidr": "10.1.0.0/16",
                                                                                "pool_prefix": 24},
            "ipoib": {"cidr": "10.32.0.0/16", "rail_prefix": 19, "pool_prefix": 20}}
    spec = spec_of(networks=nets, fabric={"compute": {"switch": "qm9700"}},
                   node_pools=[{"name": "gpu", "id": 40, "model": "hgx-h100-8", "count": 2, "fabric": fabric}])
    assert [("ipoib" in f.message) for f in found(spec, "network-pool-blocks")] == ([True] if blocked else [])


def test_gateway_on_a_host_address_but_not_in_block_zero():
    nets = {"management": {"cidr": "10.0.0.0/16", "gateway": "10.0.16.2"}, "bmc": {"cidr": "10.1.0.0/16"}}
    assert len(found(spec_of(networks=nets), "network-gateway")) == 1
    nets["management"]["gateway"] = "10.0.0.254"
    assert found(spec_of(networks=nets), "network-gateway") == []


# --- names, pools, racks ---

def test_implicit_pool_id_collides_with_an_explicit_one():
    spec = spec_of(node_pools=[{"name": "a", "model": "cpu-1u", "count": 1},
                               {"name": "b", "model": "cpu-1u", "count": 1, "id": 0, "rack": {"first": 5}}])
    (f,) = found(spec, "pool-duplicate-id")
    assert f.path == ("node_pools", 1, "id")


def test_hostname_collision_across_prefix_patterns():
    spec = spec_of(node_pools=[{"name": "a", "model": "cpu-1u", "count": 200, "hostname": "n{index}",
                                "rack": {"nodes_per_rack": 40}},
                               {"name": "b", "model": "cpu-1u", "count": 3, "hostname": "n1{index:02}",
                                "rack": {"first": 20}}])
    (f,) = found(spec, "hostname-collision")
    assert "n101" in f.message and f.path == ("node_pools", 1, "hostname")


def test_hostnames_that_only_look_alike_do_not_collide():
    spec = spec_of(node_pools=[{"name": "a", "model": "cpu-1u", "count": 99, "hostname": "n{index:02}",
                                "rack": {"nodes_per_rack": 40}},
                               {"name": "b", "model": "cpu-1u", "count": 9, "start": 100, "hostname": "n{index}",
                                "rack": {"first": 20}},
                               {"name": "c", "model": "cpu-1u", "count": 5, "hostname": "n{index:02}x",
                                "rack": {"first": 30}}])
    assert found(spec, "hostname-collision") == []


def test_excluded_host_does_not_collide():
    spec = spec_of(node_pools=[{"name": "a", "model": "cpu-1u", "count": 3, "hostname": "n{index}"},
                               {"name": "b", "model": "cpu-1u", "count": 1, "start": 3, "hostname": "n{index}",
                                "exclude": [], "rack": {"first": 20}}])
    assert len(found(spec, "hostname-collision")) == 1
    spec = spec_of(node_pools=[{"name": "a", "model": "cpu-1u", "count": 3, "hostname": "n{index}",
                                "exclude": [3]},
                               {"name": "b", "model": "cpu-1u", "count": 1, "start": 3, "hostname": "n{index}",
                                "rack": {"first": 20}}])
    assert found(spec, "hostname-collision") == []


def test_space_padding_in_hostname_and_rack():
    spec = spec_of(node_pools=[{"name": "a", "model": "cpu-1u", "count": 1, "hostname": "a{index:3}",
                                "rack": {"name": "r{rack:2}"}}])
    assert sorted(f.path[-1] for f in found(spec, "hostname-format")) == ["hostname", "name"]


@pytest.mark.parametrize("first_u, collides", [(10, False), (9, True)])
def test_rack_units_touching_is_not_a_collision(first_u, collides):
    # One 8U HGX from unit 2 occupies units 2-9.
    spec = spec_of(node_pools=[{"name": "gpu", "model": "hgx-h100-8", "count": 1},
                               {"name": "cpu", "model": "cpu-1u", "count": 1, "rack": {"first_u": first_u}}])
    assert bool(found(spec, "rack-collision")) is collides


def test_rack_collision_only_in_shared_racks():
    spec = spec_of(node_pools=[{"name": "gpu", "model": "hgx-h100-8", "count": 8},  # racks r001, r002
                               {"name": "cpu", "model": "cpu-1u", "count": 1, "rack": {"first": 3}}])
    assert found(spec, "rack-collision") == []


def test_rack_collision_of_many_hosts_is_an_error():
    # 64 GPU servers, 4 per rack from unit 2 (units 2-33 of r001-r016); 64 CPU servers, 4 per rack from unit 30,
    # land in units 30-33 of the same racks.
    spec = spec_of(node_pools=[{"name": "gpu", "model": "hgx-h100-8", "count": 64},
                               {"name": "cpu", "model": "cpu-1u", "count": 64, "rack": {"first_u": 30}}])
    (f,) = found(spec, "rack-collision")
    assert f.level == "error" and f.path == ("node_pools", 1, "rack") and "units 30-33 of rack r001" in f.message


def test_pools_without_a_rack_layout_are_told_to_get_one():
    """Every pool without 'rack:' starts at unit 2 of r001: the hint names that, not just 'move one pool'."""
    spec = spec_of(node_pools=[{"name": "gpu", "model": "hgx-h100-8", "count": 4},
                               {"name": "login", "model": "cpu-1u", "count": 1}])
    (f,) = found(spec, "rack-collision")
    assert "without a 'rack:' layout all start at unit 2 of rack r001" in f.hint and 'login{rack:02}' in f.hint
    spec = spec_of(node_pools=[{"name": "gpu", "model": "hgx-h100-8", "count": 4},
                               {"name": "login", "model": "cpu-1u", "count": 1, "rack": {"name": "login{rack:02}"}}])
    assert found(spec, "rack-collision") == []


@pytest.mark.parametrize("per_rack, errs", [(5, False), (6, True)])
def test_rack_height(per_rack, errs):
    # 5 x 8U from unit 2 reach unit 41; 6 reach 49.
    spec = spec_of(node_pools=[{"name": "gpu", "model": "hgx-h100-8", "count": 12,
                                "rack": {"nodes_per_rack": per_rack}}])
    assert [f.level for f in found(spec, "rack-height")] == (["error"] if errs else [])


@pytest.mark.parametrize("model, per_rack, first_u, top", [
    ("hgx-h100-8", 5, 9, 48), ("hgx-h100-8", 5, 10, 49),  # 5 x 8U
    ("cpu-1u", 48, 1, 48), ("cpu-1u", 48, 2, 49), ("cpu-1u", 1, 48, 48), ("cpu-1u", 1, 49, 49),
])
def test_rack_filled_to_its_top_unit_is_accepted_and_one_unit_more_refused(model, per_rack, first_u, top):
    spec = spec_of(node_pools=[{"name": "n", "model": model, "count": 2 * per_rack,
                                "rack": {"nodes_per_rack": per_rack, "first_u": first_u}}])
    findings = found(spec, "rack-height")
    if top <= 48:
        assert findings == []
    else:
        (f,) = findings
        assert f.level == "error" and f"reach unit {top}" in f.message


def test_pool_excluded_entirely_and_excludes_out_of_range():
    spec = spec_of(node_pools=[{"name": "gpu", "model": "hgx-h100-8", "count": 2, "start": 5,
                                "exclude": [5, 6, 99]}])
    assert [f.check for f in found(spec) if f.check.startswith("pool-")] == ["pool-empty", "pool-exclude-range"]


# --- references and tenants ---

def test_reference_did_you_mean_and_valid_choices():
    spec = spec_of(slurm={"partitions": [{"name": "batch", "pools": ["gpus"]}]},
                   tenants=[{"name": "a", "partitions": ["bach"]}, {"name": "b", "partitions": ["zzz"]}])
    pool = found(spec, "reference-pool")
    parts = found(spec, "reference-partition")
    assert [f.hint for f in pool] == ["did you mean 'gpu'?"]
    assert [f.hint for f in parts] == ["did you mean 'batch'?", "valid partitions: batch"]


def test_gpu_limit_counts_built_hosts_only():
    spec = spec_of(node_pools=[{"name": "gpu", "model": "hgx-h100-8", "count": 4, "exclude": [4]}],
                   slurm={"partitions": [{"name": "batch", "pools": ["gpu"]}]},
                   tenants=[{"name": "a", "partitions": ["batch"], "gpu_limit": 24},
                            {"name": "b", "partitions": ["batch"], "gpu_limit": 25}])
    assert [f.path for f in found(spec, "tenant-gpu-limit")] == [("tenants", 1, "gpu_limit")]


def test_dedicated_pool_shared_and_pkey_reused():
    spec = spec_of(tenants=[{"name": "a", "pools": ["gpu"], "pkey": "0x0101"},
                            {"name": "b", "pools": ["gpu"], "pkey": "0x101"}])
    assert [f.path for f in found(spec, "tenant-pool-shared")] == [("tenants", 1, "pools", 0)]
    assert [f.path for f in found(spec, "tenant-duplicate-pkey")] == [("tenants", 1, "pkey")]


# --- software and provider ---

@pytest.mark.parametrize("driver, level", [
    ("550.54.14", None),        # exactly the CUDA 12.4 minimum
    ("550.54.13", "warning"),   # below it, but 12.x minor version compatibility holds
    ("525.60.13", "warning"),
    ("525.60.12", "error"),
])
def test_cuda_driver_boundaries(driver, level):
    spec = spec_of(node_pools=[{"name": "cpu", "model": "cpu-1u", "count": 1}],
                   software={"nvidia_driver": driver, "cuda": "12.4"})
    assert [f.level for f in found(spec, "software-cuda-driver")] == ([level] if level else [])


def test_unknown_versions_are_reported_as_unchecked():
    spec = spec_of(software={"nvidia_driver": "570.86.15", "cuda": "12.7", "dcgm": "4.1.0", "doca_ofed": "3.0.0"})
    assert sorted(f.path[-1] for f in found(spec, "software-unchecked")) == ["cuda", "dcgm", "doca_ofed"]
    assert all(f.level == "info" for f in found(spec, "software-unchecked"))


def test_fabric_manager_only_matters_with_nvswitch():
    sw = {"nvidia_driver": "550.90.07", "fabric_manager": "550.54.15"}
    assert len(found(spec_of(software=sw), "software-fabric-manager")) == 1
    cpu = spec_of(node_pools=[{"name": "cpu", "model": "cpu-1u", "count": 1}], software=sw)
    four = spec_of(node_pools=[{"name": "g", "model": "h100-4", "count": 1}], software=sw)
    assert found(cpu, "software-fabric-manager") == found(four, "software-fabric-manager") == []


def test_gpu_generation_needs_its_driver_branch():
    h200 = spec_of(node_pools=[{"name": "g", "model": "hgx-h200-8", "count": 1}],
                   software={"nvidia_driver": "545.23.08"})
    h100 = spec_of(software={"nvidia_driver": "545.23.08"})
    assert len(found(h200, "software-gpu-driver")) == 1 and found(h100, "software-gpu-driver") == []


def test_doca_ofed_adapter_support(monkeypatch):
    from gpucloud.catalog import compat

    monkeypatch.setitem(compat.DOCA_OFED, "9.9.9", (frozenset({"ConnectX-7"}), "test row"))
    ok = spec_of(software={"doca_ofed": "9.9.9"})
    old = spec_of(node_pools=[{"name": "gpu", "model": "hgx-h100-8", "count": 1},
                              {"name": "x", "model": "cpu-1u", "count": 1, "rack": {"first": 3}}],
                  software={"doca_ofed": "9.9.9"})
    assert found(ok, "software-doca-ofed") == []
    monkeypatch.setitem(compat.DOCA_OFED, "9.9.9", (frozenset({"ConnectX-6"}), "test row"))
    (f,) = found(old, "software-doca-ofed")
    assert "ConnectX-7" in f.message and "gpu" in f.message


def test_redfish_needs_user_and_password_secret():
    spec = spec_of(provider={"kind": "redfish"})
    assert len(found(spec, "provider-credentials")) == 2
    assert found(spec_of(provider={"kind": "none"}), "provider-credentials") == []


def test_ignore_skips_a_check_and_its_findings():
    spec = spec_of(provider={"kind": "redfish"})
    assert [f for f in run_checks(spec, ignore=("provider-credentials",)) if f.check == "provider-credentials"] == []


def test_a_crashing_check_becomes_a_finding(monkeypatch):
    from gpucloud import checks

    def broken(spec):
        raise ZeroDivisionError("boom")

    monkeypatch.setitem(checks.REGISTRY, "zz-broken", broken)
    out = run_checks(spec_of())
    (f,) = [f for f in out if f.check == "internal-error"]
    assert "zz-broken" in f.message and "ZeroDivisionError" in f.message and f.level == "error"


# --- storage paths ---

def _local(mount, **more):
    return {"name": "scratch", "kind": "local", "mount": mount, **more}


def _nfs(export="/export/home", mount="/home", **more):
    return {"name": "home", "kind": "nfs", "server": "10.0.0.10", "export": export, "mount": mount, **more}


@pytest.mark.parametrize("mount, refused", [
    ("/", "/"), ("/..", "/"), ("//", "/"), ("/.", "/"), ("/var", "/var"), ("/var/lib/scratch", "/var"),
    ("/etc", "/etc"), ("/etc/", "/etc"), ("//etc", "/etc"), ("/scratch/../etc", "/etc"), ("/usr/local/apps", "/usr"),
    ("/tmp", "/tmp"), ("/var/tmp", "/var"), ("/boot", "/boot"), ("/proc", "/proc"), ("/sys", "/sys"), ("/dev", "/dev"),
    ("/run", "/run"), ("/bin", "/bin"), ("/sbin", "/sbin"), ("/lib64", "/lib64"), ("/root", "/root"),
    ("/scratch", None), ("/home", None), ("/local", None), ("/opt/apps", None), ("//scratch/", None),
    ("/variable", None), ("/etcetera", None), ("/mnt/nvme", None), ("/var/../scratch", None),
])
def test_mount_on_a_system_directory_is_refused(mount, refused):
    findings = found(spec_of(storage=[_local(mount)]), "storage-system-path")
    if refused is None:
        assert findings == []
    else:
        (f,) = findings
        assert f.level == "error" and f.path == ("storage", 0, "mount") and f.hint
        assert (refused == "/" and "root filesystem" in f.message) or f" {refused}, which holds" in f.message


@pytest.mark.parametrize("export, refused", [
    ("/", True), ("/..", True), ("//", True), ("/./", True), ("/var", True), ("/var/", True), ("/var/lib/nfs", True),
    ("/var/tmp/x", True), ("/etc", True), ("/export/../etc", True), ("/usr", True), ("/root", True), ("/tmp/x", True),
    ("/export/home", False), ("/var/nfs/home", False), ("/srv/nfs/home", False), ("//export//home/", False),
])
def test_nfs_export_of_a_system_directory_is_refused(export, refused):
    findings = found(spec_of(storage=[_nfs(export)]), "storage-system-path")
    assert [(f.level, f.path) for f in findings] == ([("error", ("storage", 0, "export"))] if refused else [])


@pytest.mark.parametrize("second", ["/scratch", "/scratch/.", "/scratch/", "//scratch", "/x/../scratch", "/scratch//"])
def test_duplicate_mount_compares_normalised_paths(second):
    spec = spec_of(storage=[_local("/scratch"), _nfs(mount=second)])
    (f,) = found(spec, "filesystem-duplicate-mount")
    assert f.path == ("storage", 1, "mount") and "'/scratch'" in f.message


@pytest.mark.parametrize("outer, inner, pools, nested", [
    ("/lustre", "/lustre/scratch", {}, True),
    ("/lustre/", "/lustre/./scratch", {}, True),
    ("/lustre", "/lustre/a/b/scratch", {}, True),
    ("/lustre", "/lustrefs/scratch", {}, False),  # a sibling that shares a prefix, not a child
    ("/lustre/scratch", "/lustre", {}, True),  # listed the other way round
    ("/home", "/home/scratch", {"outer": ["cpu"], "inner": ["gpu"]}, False),  # no pool mounts both
    ("/home", "/home/scratch", {"outer": ["cpu", "gpu"], "inner": ["gpu"]}, True),
])
def test_filesystem_mounted_inside_another(outer, inner, pools, nested):
    pool_list = [{"name": "gpu", "model": "hgx-h100-8", "count": 2}, {"name": "cpu", "model": "cpu-1u", "count": 2}]
    a = _nfs(mount=outer, **({"pools": pools["outer"]} if "outer" in pools else {}))
    b = {"name": "data", "kind": "nfs", "server": "10.0.0.11", "export": "/export/data", "mount": inner,
         **({"pools": pools["inner"]} if "inner" in pools else {})}
    findings = found(spec_of(node_pools=pool_list, storage=[a, b]), "storage-mount-nested")
    if not nested:
        assert findings == []
        return
    (f,) = findings
    deeper = 1 if len(inner) > len(outer) else 0
    assert f.level == "error" and f.path == ("storage", deeper, "mount") and "is inside" in f.message


def test_local_scratch_by_default_only_nests_on_gpu_pools():
    # Local scratch without pools: goes on the GPU pools; an NFS mount on the CPU pool alone does not contain it.
    pool_list = [{"name": "gpu", "model": "hgx-h100-8", "count": 2}, {"name": "cpu", "model": "cpu-1u", "count": 2}]
    apart = spec_of(node_pools=pool_list, storage=[_nfs(mount="/data", pools=["cpu"]), _local("/data/scratch")])
    assert found(apart, "storage-mount-nested") == []
    shared = spec_of(node_pools=pool_list, storage=[_nfs(mount="/data"), _local("/data/scratch")])
    (f,) = found(shared, "storage-mount-nested")
    assert "on pool gpu" in f.message and "more" not in f.message


def test_planned_and_rendered_storage_use_the_normalised_paths():
    from gpucloud.plan import build_plan
    from gpucloud.render import inventory, plan_json, storage

    spec = spec_of(storage=[_nfs(export="//export//home/", mount="/home/."), _local("/scratch/")])
    assert [(fs.mount, fs.settings.get("export")) for fs in spec.storage] == [("/home", "/export/home"),
                                                                               ("/scratch", None)]
    plan = build_plan(spec)
    (nfs,), (local,) = plan.storage.nfs, plan.storage.local
    assert (nfs.export, nfs.mount, local.mount) == ("/export/home", "/home", "/scratch")
    text = b"".join([*storage.render(plan).values(), *plan_json.render(plan).values(),
                     *inventory.render(plan).values()]).decode()
    assert "/export/home" in text and "/scratch" in text
    assert not re.search(r"/home/\.|//export|/export//|/scratch/[^0-9]", text)


# --- bounds of names and references in the schema ---

def _schema_paths(**changes):
    data = copy.deepcopy(BASE)
    data.update(copy.deepcopy(changes))
    return [f.path for f in schema.validate(data)]


def _label(n, c="a"):
    return c * n


@pytest.mark.parametrize("domain, ok", [
    ("lab.gpucloud.internal", True), (_label(63) + ".example.jp", True), (_label(64) + ".example.jp", False),
    (".".join([_label(63)] * 3) + "." + _label(61), True),  # 253 characters
    (".".join([_label(63)] * 3) + "." + _label(62), False),  # 254
    ("a-.example", False), ("-a.example", False), ("a..b", False), ("Example.jp", False),
])
def test_network_domain_bounds(domain, ok):
    paths = _schema_paths(networks={"management": {"cidr": "10.0.0.0/16", "domain": domain},
                                    "bmc": {"cidr": "10.1.0.0/16"}})
    assert paths == ([] if ok else [("networks", "management", "domain")])


@pytest.mark.parametrize("server, ok", [
    ("10.18.0.10", True), ("nfs1.ishikari.example.jp", True), ("NFS-1", True), (_label(63, "n"), True),
    (_label(64, "n"), False), (".".join([_label(63, "n")] * 4), False), ("nfs_1", False), ("nfs..x", False),
    ("-nfs", False), ("nfs.", False), ("http://nfs", False), ("nfs:/export", False),
])
def test_nfs_server_bounds(server, ok):
    paths = _schema_paths(storage=[{"name": "home", "kind": "nfs", "server": server, "export": "/export/home",
                                    "mount": "/home"}])
    assert paths == ([] if ok else [("storage", 0, "server")])


@pytest.mark.parametrize("image, ok", [
    ("ubuntu-22.04-gpu", True), ("rocky-9-h200", True), ("hgx/ubuntu-22.04:2024.06", True), (_label(128), True),
    (_label(129), False), ("../ubuntu", False), ("images/../../etc/shadow", False), ("ubuntu..iso", False),
    ("http://pxe/ubuntu.iso", False), ("https://x", False), ("/srv/images/ubuntu", False), ("ubuntu/", False),
    ("ubuntu:", False), ("a:b:c", False), ("-ubuntu", False),
])
def test_pool_image_is_a_name_not_a_url_or_path(image, ok):
    paths = _schema_paths(node_pools=[{"name": "gpu", "model": "hgx-h100-8", "count": 2, "image": image}])
    assert paths == ([] if ok else [("node_pools", 0, "image")])


@pytest.mark.parametrize("ca_bundle, ok", [
    ("/etc/ssl/certs/bmc-ca.pem", True), ("/etc/pki/.bmc/ca.pem", True), ("/srv/bmc_ca-2024.pem", True),
    ("bmc-ca.pem", False), ("certs/bmc-ca.pem", False), ("/etc/ssl/../shadow", False), ("/etc/./ca.pem", False),
    ("//etc/ca.pem", False), ("/etc/ssl/", False), ("/", False), ("https://ca.example/ca.pem", False),
    ("/" + _label(4095), False),
])
def test_ca_bundle_is_an_absolute_path(ca_bundle, ok):
    paths = _schema_paths(provider={"kind": "redfish", "username": "admin", "password": {"secret": "bmc-password"},
                                    "ca_bundle": ca_bundle})
    assert paths == ([] if ok else [("provider", "ca_bundle")])


def test_host_name_with_its_domain_fits_in_253_characters():
    def spec_with(domain):
        return spec_of(networks={"management": {"cidr": "10.0.0.0/16", "domain": domain},
                                 "bmc": {"cidr": "10.1.0.0/16"}},
                       node_pools=[{"name": "gpu", "model": "hgx-h100-8", "count": 10, "hostname": "gpu{index:03}"}])

    # The longest host is gpu010 (6 characters): with the dot, a domain of 246 fills 253.
    fits = ".".join([_label(61)] * 3 + [_label(60)])  # 3 x 61 + 60 + 3 dots = 246
    assert len(fits) == 246
    assert found(spec_with(fits), "hostname-format") == []
    (f,) = found(spec_with("a" + fits), "hostname-format")
    assert f.path == ("networks", "management", "domain") and "254 characters" in f.message and "246" in f.hint


# Random pools against a brute-force reference: the collision check must find a collision exactly when one exists,
# and every name it reports must really be built by both pools.

_PATTERNS = ["n{index}", "n{index:02}", "n{index:03}", "n1{index}", "n1{index:02}", "n{index}1", "m{index}"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_PATTERNS), st.integers(0, 40), st.integers(1, 30),
                          st.lists(st.integers(0, 70), max_size=4)), min_size=2, max_size=5))
# p0 and p1 both build n10; p2 (same pattern as p0, starting at the same index, every host excluded) used to hide p0
# from the lookup that reads p1's names back through 'n{index}'.
@example(pools=[("n{index}", 0, 11, []), ("n{index:02}", 0, 11, []), ("n{index}", 0, 1, [0])])
# p0 reaches index 12 past p1, which starts later and ends earlier: the lookup must walk back over p1.
@example(pools=[("n{index}", 0, 13, []), ("n{index}", 5, 2, [5, 6]), ("n1{index}", 2, 1, [])])
def test_hostname_collision_matches_brute_force(pools):
    from gpucloud.checks.names import hostname_collision

    data = [{"name": f"p{i}", "model": "cpu-1u", "count": count, "start": start, "hostname": pattern,
             "exclude": sorted(set(exclude)), "rack": {"first": 10 * i + 1, "nodes_per_rack": 40}}
            for i, (pattern, start, count, exclude) in enumerate(pools)]
    spec = spec_of(node_pools=data)
    owners: dict[str, set[str]] = {}
    for pool in spec.pools:
        for index in pool.indices:
            if index not in pool.exclude:
                owners.setdefault(pool.hostname_for(index), set()).add(pool.name)
    colliding = {frozenset(o) for o in owners.values() if len(o) > 1}
    found_ = list(hostname_collision(spec))
    assert bool(found_) == bool(colliding)
    for f in found_:
        name = f.message.split()[1]
        assert len(owners[name]) > 1


_RACKS = ["r{rack}", "r{rack:02}", "r1{rack}", "s{rack}"]


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(_RACKS), st.integers(0, 15), st.integers(1, 20), st.integers(1, 5),
                          st.integers(1, 40), st.sampled_from(["cpu-1u", "cpu-2u", "hgx-h100-8"])),
                min_size=2, max_size=4))
def test_rack_collision_matches_brute_force(pools):
    from gpucloud import catalog
    from gpucloud.checks.racks import collisions

    data = [{"name": f"p{i}", "model": model, "count": count, "hostname": f"p{i}x{{index}}",
             "rack": {"name": pattern, "first": first, "nodes_per_rack": per, "first_u": first_u}}
            for i, (pattern, first, count, per, first_u, model) in enumerate(pools)]
    spec = spec_of(node_pools=data)
    units: dict[str, dict[int, str]] = {}
    clash = False
    for pool in spec.pools:
        h = catalog.SERVERS[pool.model].rack_units
        for p in range(pool.count):
            rack = pool.rack.name.format(rack=pool.rack.first + p // pool.rack.nodes_per_rack)
            lo = pool.rack.first_u + (p % pool.rack.nodes_per_rack) * h
            for u in range(lo, lo + h):
                owner = units.setdefault(rack, {}).setdefault(u, pool.name)
                clash = clash or owner != pool.name
    assert bool(list(collisions(spec))) == clash


def test_gpus_without_a_driver_row_are_reported_as_unchecked(monkeypatch):
    from gpucloud.catalog import compat

    # The GPUs of the examples are in the table ...
    assert {"NVIDIA H100 SXM5 80GB", "NVIDIA H200 SXM 141GB"} <= set(compat.GPU_MIN_DRIVER)
    # ... and one that is not is said to be unchecked instead of silently passing.
    monkeypatch.delitem(compat.GPU_MIN_DRIVER, "NVIDIA H100 SXM5 80GB")
    (f,) = found(spec_of(software={"nvidia_driver": "550.90.07"}), "software-unchecked")
    assert f.path == ("software", "nvidia_driver") and "H100" in f.message and f.level == "info"


def test_compat_rows_name_their_source():
    from gpucloud.catalog import compat

    rows = [*compat.CUDA.values(), *compat.GPU_MIN_DRIVER.values(), *compat.DCGM.values()]
    assert rows and all(r.source and compat.version_key(r.min_driver) for r in rows)
    assert all(source for _, source in compat.DOCA_OFED.values())
    assert compat.at_least("550.90.07", "550.54.14") and not compat.at_least("550.54.13", "550.54.14")
    assert compat.version_key("2.7.0-1") == (2, 7, 0)


def test_duplicate_names_point_back_at_the_first():
    spec = spec_of(tenants=[{"name": "a"}, {"name": "b"}, {"name": "a"}])
    (f,) = found(spec, "tenant-duplicate-name")
    assert f.path == ("tenants", 2, "name") and "$.tenants[0].name" in f.message


def test_every_link_rate_has_a_sysfs_shape():
    """verify compares ports against the catalog's lanes and generation; a rate without one could not be checked."""
    from gpucloud import catalog

    assert set(catalog.LINK_SHAPE) == set(catalog.LINK_RATES_GBPS)


def test_every_server_model_has_one_compute_link_rate():
    """The inventory gives a pool one IB rate for all its rails; a model mixing rates would need per-rail rates."""
    from gpucloud import catalog

    for name, model in catalog.SERVERS.items():
        assert len({h.rate for h in model.compute_hcas}) <= 1, name


@pytest.mark.parametrize("where", ["model", "override"])
def test_checks_see_the_resolved_hardware(where):
    """A spec's own model and a pool's override reach the checks that read hardware: 5 machines of 12U from unit 2
    reach unit 61, which rack-height refuses; as the catalog's 8U HGX they reach unit 41 and pass (the checks used
    to look the model's name up in the catalog, and skipped a spec's own model altogether)."""
    pool = {"name": "gpu", "model": "hgx-h100-8", "count": 5, "rack": {"nodes_per_rack": 5}}
    extra = {}
    if where == "model":
        extra["hardware"] = {"models": {"tall-h100": {"base": "hgx-h100-8", "rack_units": 12}}}
        pool["model"] = "tall-h100"
    else:
        pool["hardware"] = {"rack_units": 12}
    (f,) = found(spec_of(node_pools=[pool], **extra), "rack-height")
    assert f.level == "error" and "5 x 12U from unit 2 reach unit 61" in f.message
