"""gpucloud diff: each kind of spec change gets the impact class, the hosts and the step an operator needs."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import yaml

from conftest import CLUSTERS
from gpucloud.diff import compare
from gpucloud.impact import Impact
from gpucloud.diff.inputs import document_of
from gpucloud.diff.side import EMPTY
from gpucloud.hostlist import expand
from gpucloud.pipeline import check_spec

_DOCS: dict[str, dict] = {}


def spec_data(name: str) -> dict:
    with (CLUSTERS / f"{name}.yaml").open() as fh:
        return yaml.safe_load(fh)


def doc_of(data: dict, tmp_path: Path, name: str = "spec") -> dict:
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(path)
    assert not checked.fails("error"), [f.message for f in checked.findings]
    return document_of(checked)


def base_doc(name: str) -> dict:
    if name not in _DOCS:
        _DOCS[name] = document_of(check_spec(CLUSTERS / f"{name}.yaml"))
    return copy.deepcopy(_DOCS[name])


def changed(name: str, edit, tmp_path: Path):
    data = spec_data(name)
    edit(data)
    return compare(base_doc(name), doc_of(data, tmp_path), "old", "new")


def only(diff, **match):
    found = [c for c in diff.changes if all(getattr(c, k) == v for k, v in match.items())]
    assert len(found) == 1, (match, [c.as_dict() for c in diff.changes])
    return found[0]


def pool(data: dict, name: str) -> dict:
    return next(p for p in data["node_pools"] if p["name"] == name)


def test_identical_specs_have_no_changes():
    diff = compare(base_doc("ishikari"), base_doc("ishikari"))
    assert diff.changes == [] and diff.exit_code == 0


def test_growing_a_pool_only_adds_hosts_cables_and_resources(tmp_path):
    old = base_doc("ishikari")
    # 250 -> 252 stays inside the eight scalable units of the two-tier fabric.
    diff = changed("ishikari", lambda d: pool(d, "gpu").update(count=252), tmp_path)
    grow = only(diff, section="pools", subject="pool gpu", field="hosts")
    assert grow.action == "add" and grow.impact is Impact.HARDWARE
    assert grow.hosts == "gpu[0251-0252]" and grow.host_count == 2
    existing = {h["name"] for h in old["hosts"]}
    for c in diff.changes:
        if c.section == "slurm" and c.subject == "slurm nodes":
            # The one consequence that is not an addition: slurm.conf(5) restarts daemons when nodes join.
            assert c.impact is Impact.RESTART
            continue
        assert c.action == "add" or c.section == "plan", c.as_dict()
        if c.section in ("pools", "hosts"):
            assert not existing & set(expand(c.hosts)), c.as_dict()
    # What the planners derive: new switches and stacks or resources, nothing removed.
    derived = {c.subject: c for c in diff.derived}
    assert "removed" not in " ".join(c.note for c in diff.derived)
    assert "pulumi.stacks" in derived
    assert not diff.destroys_data and diff.exit_code == 1


def test_growth_across_a_tier_boundary_is_shown_as_recabling(tmp_path):
    # 260 nodes need a ninth scalable unit: 72 leaves per plane exceed the 64-port radix, so the fabric gets a
    # third tier and the two-tier spines go. That is not "just an addition" and the diff must say so.
    diff = changed("ishikari", lambda d: pool(d, "gpu").update(count=260), tmp_path)
    c = only(diff, section="fabric", field="switch layout")
    assert c.impact is Impact.HARDWARE and "tiers 2 -> 3" in c.note and "removed" in c.note
    assert only(diff, section="pools", subject="pool gpu", field="hosts").hosts == "gpu[0251-0260]"


def test_driver_change_drains_and_reboots_exactly_the_gpu_nodes(tmp_path):
    diff = changed("ishikari", lambda d: d["software"].update(nvidia_driver="550.127.05"), tmp_path)
    drv = only(diff, section="software", field="nvidia_driver")
    assert drv.impact is Impact.DRAIN_REBOOT and drv.action == "change"
    assert (drv.old, drv.new) == ("550.90.07", "550.127.05")
    assert drv.hosts == "gpu[0001-0250]" and drv.host_count == 250
    assert not {"login01", "ctl01"} & set(expand(drv.hosts))
    assert drv.step == 4


def test_partition_max_time_is_a_reconfigure(tmp_path):
    def edit(d):
        d["slurm"]["partitions"][1]["max_time"] = "04:00:00"
    diff = changed("ishikari", edit, tmp_path)
    assert len(diff.changes) == 1, [c.as_dict() for c in diff.changes if c.section != "plan"]
    c = only(diff, section="slurm", subject="partition debug")
    assert c.field == "max_time" and c.impact is Impact.RECONFIGURE
    assert (c.old, c.new) == ("02:00:00", "04:00:00") and "MaxTime" in c.note
    assert diff.exit_code == 1 and c.step == 6


def test_removing_a_filesystem_destroys_data(tmp_path):
    def edit(d):
        d.update(storage=[fs for fs in d["storage"] if fs["name"] != "home"])
        for t in d["tenants"]:
            t.get("storage_quota", {}).pop("home", None)
        # the two controllers keep their shared state on home: it moves to an export of its own
        d["storage"].append({"name": "ctl-state", "kind": "nfs", "server": "10.18.0.10", "export": "/export/slurm",
                             "mount": "/srv/slurm-state", "pools": ["ctl"]})
        d["slurm"]["state_save"] = {"filesystem": "ctl-state"}

    diff = changed("ishikari", edit, tmp_path)
    c = only(diff, section="storage", subject="filesystem home")
    assert c.action == "remove" and c.impact is Impact.DESTROYS_DATA
    assert c.host_count == 254  # every host mounted it
    assert diff.destroys_data and diff.exit_code == 3
    steps = [s["step"] for s in diff.steps()]
    assert steps[0] == 1 and steps[-1] == 8  # back up first, destroy last


def test_renaming_a_pool_is_remove_plus_add_with_the_data_impact_spelled_out(tmp_path):
    def edit(d):
        pool(d, "gpu")["name"] = "h100"
        for part in d["slurm"]["partitions"]:
            part["pools"] = ["h100" if p == "gpu" else p for p in part["pools"]]
        for fs in d["storage"]:
            if "pools" in fs:
                fs["pools"] = ["h100" if p == "gpu" else p for p in fs["pools"]]
    diff = changed("ishikari", edit, tmp_path)
    gone = only(diff, section="pools", subject="pool gpu")
    came = only(diff, section="pools", subject="pool h100", field="")
    assert (gone.action, came.action) == ("remove", "add")
    assert gone.host_count == came.host_count == 250
    assert "rename" in gone.note and "rename" in came.note
    # ishikari's node-local nvme is job scratch (nothing to keep); the shared filesystems keep their data.
    assert "job scratch nvme (/local) is wiped" in gone.note
    assert "shared filesystems home, scratch keep their data" in gone.note
    assert gone.impact is Impact.HARDWARE and gone.step == 8


def test_removing_a_pool_with_persistent_local_data_destroys_it(tmp_path):
    data = spec_data("ishikari")
    next(fs for fs in data["storage"] if fs["name"] == "nvme")["job_scratch"] = False
    old = doc_of(data, tmp_path, "old")
    pool(data, "gpu")["count"] = 248
    diff = compare(old, doc_of(data, tmp_path, "new"))
    c = only(diff, section="pools", subject="pool gpu", action="remove")
    assert c.hosts == "gpu[0249-0250]" and c.impact is Impact.DESTROYS_DATA
    assert "node-local data on nvme (/local) is lost" in c.note
    assert diff.exit_code == 3


def test_moving_a_pool_to_another_id_readdresses_every_host_of_it(tmp_path):
    diff = changed("lab", lambda d: pool(d, "login").update(id=5), tmp_path)
    mgmt = only(diff, section="hosts", field="management addresses")
    assert mgmt.hosts == "login01" and mgmt.impact is Impact.DRAIN_REBOOT
    assert not [c for c in diff.changes if c.section == "hosts" and "gpu" in c.hosts]


def test_image_change_reimages_the_pool_only(tmp_path):
    diff = changed("lab", lambda d: pool(d, "gpu").update(image="ubuntu-24.04-gpu"), tmp_path)
    c = only(diff, section="pools", field="image")
    assert c.impact is Impact.REIMAGE and c.hosts == "gpu[01-02]"


def test_new_spec_diffs_against_an_empty_cluster():
    diff = compare(dict(EMPTY), base_doc("lab"), "(none)", "lab")
    pools = [c for c in diff.changes if c.section == "pools"]
    assert {c.subject for c in pools} == {"pool gpu", "pool ctl", "pool login"}
    assert all(c.action == "add" for c in pools)
    assert not diff.destroys_data


def test_changes_are_ordered_by_step_then_severity(tmp_path):
    def edit(d):
        d["software"]["nvidia_driver"] = "550.127.05"
        d["slurm"]["partitions"][0]["max_time"] = "3-00:00:00"
        pool(d, "gpu")["count"] = 3
    diff = changed("lab", edit, tmp_path)
    steps = [c.step for c in diff.sorted()]
    assert steps == sorted(steps)
    titles = [s["title"] for s in diff.steps()]
    assert titles.index("hardware and cabling") < titles.index("drain and reboot") < titles.index("reconfigure")


@pytest.mark.parametrize("key,impact", [("os", Impact.REIMAGE), ("dcgm", Impact.RESTART), ("cuda", Impact.NONE),
                                        ("doca_ofed", Impact.DRAIN_REBOOT), ("slurm", Impact.RESTART)])
def test_software_table(tmp_path, key, impact):
    value = {"os": "ubuntu-24.04", "dcgm": "3.3.8", "cuda": "12.6", "doca_ofed": "2.8.0", "slurm": "24.05.4"}[key]
    diff = changed("lab", lambda d: d["software"].update({key: value}), tmp_path)
    assert only(diff, section="software", field=key).impact is impact


def test_quota_lowered_is_flagged_raised_is_live(tmp_path):
    def edit(d):
        quotas = next(t for t in d["tenants"] if t["name"] == "llm-lab")["storage_quota"]
        quotas["scratch"] = "2PB"  # from 4PB
        quotas["home"] = "40TiB"  # from 20TiB
    diff = changed("ishikari", edit, tmp_path)
    lowered = only(diff, field="storage_quota.scratch")
    raised = only(diff, field="storage_quota.home")
    assert lowered.impact is Impact.DESTROYS_DATA and "lowered" in lowered.note
    assert (lowered.old, lowered.new) == (4 * 10**15, 2 * 10**15)
    assert raised.impact is Impact.NONE
    assert diff.exit_code == 3


def test_ipoib_mode_touches_only_hosts_on_the_fabric(tmp_path):
    data = spec_data("ishikari")
    data["node_pools"].append({"name": "svc", "id": 3, "model": "storage-2u", "count": 2, "hostname": "svc{index:02}",
                               "roles": ["monitoring"], "rack": {"name": "v{rack:02}"}})
    old = doc_of(data, tmp_path, "old")
    data["networks"]["ipoib"]["mode"] = "connected"
    c = only(compare(old, doc_of(data, tmp_path, "new")), section="networks", field="mode")
    assert c.impact is Impact.DRAIN_REBOOT and "svc" not in c.hosts and "gpu[0001-0250]" in c.hosts


def test_growth_that_moves_existing_cables_is_recabling_not_new_hosts_only(tmp_path):
    # The lab's scalable unit is two nodes, full with gpu01-02; ctl01 and login01 sit on a service leaf. A third GPU
    # node opens SU 2, whose free ports take the service hosts: their cables move and the service leaf with its two
    # uplinks goes. The same 4 links the plan's headroom line announces (plan.md: "4 of 36 existing links moved").
    diff = changed("lab", lambda d: pool(d, "gpu").update(count=3), tmp_path)
    c = only(diff, section="fabric", field="existing links")
    assert c.impact is Impact.HARDWARE and c.step == 2 and c.action == "change"
    assert c.note.startswith("recables 4 existing link(s): ctl01 mlx5_0: c-leaf-svc01 1/1 -> c-leaf-su002-r0 1/2; ")
    assert "c-spine-001 9/1: c-leaf-svc01 32/1 -> c-leaf-su002-r0 32/1" in c.note
    assert c.hosts == "ctl01,login01" and c.host_count == 2
    grow = only(diff, section="pools", subject="pool gpu", field="hosts")
    assert "new hosts only" not in grow.note and "4 existing fabric link(s) are recabled" in grow.note


def test_removed_hosts_take_their_cables_with_them(tmp_path):
    """Shrinking a pool inside its scalable unit pulls the removed hosts' cables; no existing cable moves."""
    diff = changed("ishikari", lambda d: pool(d, "gpu").update(count=248), tmp_path)
    assert not [c for c in diff.changes if c.field == "existing links"]


def test_growth_inside_a_scalable_unit_moves_no_cable(tmp_path):
    diff = changed("ishikari", lambda d: pool(d, "gpu").update(count=252), tmp_path)
    assert not [c for c in diff.changes if c.field == "existing links"]
    assert "new hosts only" in only(diff, section="pools", subject="pool gpu", field="hosts").note


def test_new_hosts_get_a_provisioning_step_and_login_nodes_the_new_slurm_conf(tmp_path):
    diff = changed("lab", lambda d: pool(d, "gpu").update(count=4), tmp_path)
    prov = only(diff, section="pools", subject="pool gpu", field="provisioning")
    assert prov.hosts == "gpu[03-04]" and prov.step == 3 and "acceptance tests" in prov.note
    nodes = only(diff, section="slurm", subject="slurm nodes")
    assert "login01" in expand(nodes.hosts) and "slurm.conf on login" in nodes.note


def test_new_tenant_restarts_opensm_for_its_pkey_and_runs_the_scripts(tmp_path):
    def edit(d):
        d["tenants"].append({"name": "vision", "partitions": ["gpu"], "users": ["dave"], "pkey": "0x0103",
                             "storage_quota": {"home": "1TiB"}})
    diff = changed("lab", edit, tmp_path)
    main = only(diff, section="tenants", subject="tenant vision", field="")
    assert main.impact is Impact.RECONFIGURE and "tenants.sh" in main.note
    assert set(expand(main.hosts)) == {"ctl01", "gpu01", "gpu02", "login01"}
    pkey = only(diff, section="tenants", subject="tenant vision", field="pkey")
    assert pkey.impact is Impact.RESTART and pkey.hosts == "ctl01,login01" and "partitions.conf" in pkey.note
    quota = only(diff, section="tenants", subject="tenant vision", field="storage_quota.home")
    assert "storage/quota/home.sh" in quota.note


def test_pool_id_and_bmc_readdressing_reinstall_the_nodes(tmp_path):
    diff = changed("lab", lambda d: pool(d, "login").update(id=5), tmp_path)
    assert only(diff, section="pools", subject="pool login", field="id").impact is Impact.REIMAGE
    bmc = only(diff, section="hosts", field="bmc addresses")
    assert bmc.impact is Impact.REIMAGE and bmc.hosts == "login01" and bmc.step == 3
    diff = changed("lab", lambda d: d["networks"]["bmc"].update(cidr="10.111.0.0/22"), tmp_path)
    assert {c.hosts for c in diff.changes if c.field == "bmc addresses" and c.impact is Impact.REIMAGE} == {
        "ctl01", "gpu[01-02]", "login01"}


def test_metadata_change_is_reported(tmp_path):
    diff = changed("lab", lambda d: d["metadata"].update(owner="ops"), tmp_path)
    c = only(diff, section="metadata", field="owner")
    assert c.impact is Impact.NONE and (c.old, c.new) == ("gpucloud", "ops") and diff.exit_code == 1


def test_fabric_manager_follows_the_driver_only_on_nvswitch_boards(tmp_path):
    data = spec_data("lab")
    pool(data, "gpu")["model"] = "h100-4"
    old = doc_of(data, tmp_path, "old")
    data["software"]["nvidia_driver"] = "550.127.05"
    diff = compare(old, doc_of(data, tmp_path, "new"))
    assert only(diff, section="software", field="nvidia_driver").impact is Impact.DRAIN_REBOOT
    assert not [c for c in diff.changes if c.field == "fabric_manager"]


def test_plan_folder_cabling_gives_the_same_links_as_the_spec(tmp_path):
    from gpucloud.diff.links import of_folder, of_plan
    from gpucloud.plan import build_plan
    from gpucloud.render import fabric as render_fabric

    plan = build_plan(check_spec(CLUSTERS / "lab.yaml").spec)
    for rel, data in render_fabric.render(plan).items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(data)
    assert of_folder(tmp_path, ["compute"]) == of_plan(plan) and len(of_plan(plan)["compute"]) == 36
    assert of_folder(tmp_path, ["storage"]) is None  # no cabling plan: the diff says links were not compared


# --- RoCE Ethernet fabrics (SAKURAONE: 2 SUs of 8 rail leaves, 8 spines with every port in use) -------------------

def sakuraone(edit, tmp_path, base=None):
    """The diff of an edit to sakuraone.yaml, from the example itself or from ``base`` (an edit of it)."""
    data = spec_data("sakuraone")
    if base is not None:
        base(data)
        old = doc_of(data, tmp_path, "old")
    else:
        old = base_doc("sakuraone")
    edit(data)
    return compare(old, doc_of(data, tmp_path, "new"), "old", "new")


def roce(**values):
    return lambda d: d["fabric"]["compute"]["roce"].update(values)


def test_ethernet_growth_inside_an_su_adds_hosts_and_cables_only(tmp_path):
    diff = sakuraone(lambda d: pool(d, "gpu").update(count=120), tmp_path)
    assert "new hosts only" in only(diff, section="pools", subject="pool gpu", field="hosts").note
    assert not [c for c in diff.changes if c.section == "fabric"]


def test_ethernet_new_su_with_room_on_the_spines_is_additive_hardware(tmp_path):
    """3 SUs -> 4 SUs: 16 spines of 64 ports hold 32 leaves x 32 uplinks, so the new leaves and their cables are
    added and no existing cable moves; the new switches are hardware work, not a plan-only record."""
    diff = sakuraone(lambda d: pool(d, "gpu").update(count=200), tmp_path,
                     base=lambda d: pool(d, "gpu").update(count=130))
    assert not [c for c in diff.changes if c.field in ("existing links", "switch layout")]
    assert "new hosts only" in only(diff, section="pools", subject="pool gpu", field="hosts").note
    derived = {c.subject: c for c in diff.derived}
    grown = derived["ethernet.compute"]
    assert grown.impact is Impact.HARDWARE and "switches: 8 added" in grown.note


def test_ethernet_new_su_that_needs_more_spines_recables_every_leaf(tmp_path):
    """A third SU on SAKURAONE: the 8 spines are full, so the planner goes to 16 spines with 2 cables per leaf and
    spine, and existing leaf-spine cables move to other spine ports: the diff names the ports and the nodes behind
    those leaves (all 100), never 'new hosts only'."""
    diff = sakuraone(lambda d: pool(d, "gpu").update(count=130), tmp_path)
    c = only(diff, section="fabric", field="existing links")
    assert c.impact is Impact.HARDWARE and c.step == 2
    assert c.note.startswith("recables 510 existing link(s): c-leaf-su001-r0 Ethernet272: c-spine-001 Ethernet16 -> "
                             "c-spine-002 Ethernet0; ")
    assert c.hosts == "gpu[0001-0100]" and c.host_count == 100
    assert "the 100 node(s) behind the 16 leaves whose uplinks move" in c.note and "(ECMP)" in c.note
    grow = only(diff, section="pools", subject="pool gpu", field="hosts")
    assert "510 existing fabric link(s) are recabled" in grow.note


def test_ethernet_moved_host_cable_names_the_leaf_ports_and_the_host(tmp_path):
    """The model's rail-7 NIC renamed (mlx5_11 -> mlx5_12): every node's rail-7 cable leaves the old port; the
    change names leaf and port, and the affected hosts are exactly the GPU nodes."""
    def edit(d):
        d["hardware"]["models"]["hgx-h100-8-roce"]["compute_hcas"]["devices"][7] = "mlx5_12"

    diff = sakuraone(edit, tmp_path)
    c = only(diff, section="fabric", field="existing links")
    assert c.note.startswith("recables 100 existing link(s): c-leaf-su001-r7 Ethernet0: gpu0001 mlx5_11 -> "
                             "gpu0001 mlx5_12; ")
    assert c.hosts == "gpu[0001-0100]" and "behind" not in c.note


@pytest.mark.parametrize("values", [{"dscp": 24}, {"lossless_priority": 4}, {"cnp_dscp": 46}, {"cnp_priority": 7}])
def test_ethernet_qos_change_disrupts_traffic_on_the_whole_fabric(tmp_path, values):
    diff = sakuraone(roce(**values), tmp_path)
    (key,) = values
    c = only(diff, section="fabric", field=f"roce.{key}")
    assert c.impact is Impact.DRAIN_REBOOT and c.step == 4
    assert c.hosts == "gpu[0001-0100]" and c.host_count == 100  # the fabric's nodes, not login or ctl
    assert c.note.startswith("traffic-disrupting on the whole fabric: every switch's config_db.json and every host's "
                             "NIC QoS")
    assert "not rolling" in c.note


@pytest.mark.parametrize("values, words", [({"spine_asn": 4200000001}, "every spine changes its AS"),
                                            ({"leaf_asn_base": 4200002000}, "every leaf changes its AS")])
def test_ethernet_asn_change_restarts_bgp_on_the_switches(tmp_path, values, words):
    diff = sakuraone(roce(**values), tmp_path)
    (key,) = values
    c = only(diff, section="fabric", field=f"roce.{key}")
    assert c.impact is Impact.RESTART and c.note.startswith(f"BGP: {words}") and c.host_count == 100


def test_ethernet_switch_model_change_is_hardware_on_the_fabric_nodes(tmp_path):
    diff = sakuraone(lambda d: d["fabric"]["compute"].update(switch="sn5600"), tmp_path)
    c = only(diff, section="fabric", field="switch")
    assert c.impact is Impact.HARDWARE and c.hosts == "gpu[0001-0100]"
    assert "every leaf and spine is replaced" in c.note


def test_every_roce_setting_has_its_own_class():
    """A roce key that no rule names would reach reviewers as an unexplained restart of nothing."""
    from gpucloud.diff.intent import ROCE

    assert set(base_doc("sakuraone")["spec"]["fabric"]["compute"]["roce"]) <= set(ROCE)


def test_ethernet_plan_folder_cabling_gives_the_same_links_as_the_spec(tmp_path):
    from gpucloud.diff.links import of_folder, of_plan
    from gpucloud.plan import build_plan
    from gpucloud.render import ethernet as render_ethernet

    plan = build_plan(check_spec(CLUSTERS / "sakuraone.yaml").spec)
    for rel in ("fabric/compute/cabling.csv",):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(render_ethernet.cabling_csv(plan.ethernet[0]))
    assert of_folder(tmp_path, ["compute"]) == of_plan(plan) and len(of_plan(plan)["compute"]) == 800 + 512


def test_ethernet_plan_folder_diffs_its_cables_like_the_spec(tmp_path):
    """A plan folder of SAKURAONE (plan.json and fabric/compute/cabling.csv, as `gpucloud plan` writes them) gives
    the diff its Ethernet cables, so a third SU's recabling shows against a folder too, not only against a spec."""
    from gpucloud.diff.inputs import load_side
    from gpucloud.diff.links import LINKS
    from gpucloud.plan import build_plan
    from gpucloud.render import ethernet as render_ethernet
    from gpucloud.render import plan_json

    checked = check_spec(CLUSTERS / "sakuraone.yaml")
    plan = build_plan(checked.spec, tuple(checked.findings))
    folder = tmp_path / "plan"
    for rel, data in {**plan_json.render(plan), **render_ethernet.render(plan)}.items():
        (folder / rel).parent.mkdir(parents=True, exist_ok=True)
        (folder / rel).write_bytes(data)
    old, _ = load_side(folder)
    assert len(old[LINKS]["compute"]) == 1312
    data = spec_data("sakuraone")
    pool(data, "gpu").update(count=130)
    diff = compare(old, doc_of(data, tmp_path), "old", "new")
    assert only(diff, section="fabric", field="existing links").note.startswith("recables 510 existing link(s)")
    assert not [n for n in diff.notes if "links were not compared" in n]
