"""The rendered Slurm configuration under real daemons: Debian's slurmctld, slurmd, slurmdbd and MariaDB.

One lab cluster (munge, MariaDB, slurmdbd, slurmctld, two slurmd with eight fake GPUs each) serves every test of
the module; the other examples each get a slurmctld of their own that shares the lab's munge and slurmdbd.
"""

from __future__ import annotations

import importlib
import re
import time

import pytest
import yaml

from conftest import CLUSTERS, EXAMPLES
from gpucloud.hostlist import expand
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import RENDERERS
from slurm_harness import SlurmHarness, skip_module_without_slurm

pytestmark = pytest.mark.integration

skip_module_without_slurm(accounting=True)


def planned(path):
    """The plan and the files under slurm/ (ours and the fabric's topology.conf), through the registered renderers;
    the other renderers are skipped: they cost seconds on the large examples and Slurm never reads their files."""
    checked = check_spec(path)
    assert not checked.fails(), [f.message for f in checked.findings if f.level == "error"]
    plan = build_plan(checked.spec, tuple(checked.findings))
    files = {}
    for module, name in RENDERERS:
        if module.startswith("gpucloud.render.slurm"):
            files.update(getattr(importlib.import_module(module), name)(plan))
    return plan, files


def compute_hosts(plan) -> list[str]:
    return [h.name for pp in plan.pools if "compute" in pp.pool.roles for h in pp.hosts]


def harness_for(root, plan, files, nodes=None, shared=None) -> SlurmHarness:
    """slurmctld resolves every node's address when it starts: small clusters list them in the private
    /etc/hosts, large ones resolve them through the harness's catch-all DNS."""
    sp = plan.slurm
    nodes = compute_hosts(plan) if nodes is None else nodes
    return SlurmHarness(root, files, sp.controllers, nodes=nodes, services=[sp.dbd_host] if sp.dbd_host else [],
                        shared=shared, dns_for_nodes=len(nodes) > 500)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    plan, files = planned(CLUSTERS / "lab.yaml")
    nodes = compute_hosts(plan)
    h = harness_for(tmp_path_factory.mktemp("slurm-lab"), plan, files, nodes)
    try:
        h.start_munge()
        h.start_mariadb()
        h.start_slurmdbd(plan.slurm.dbd_host)
        # The deploy order: slurmdbd, slurmctld (it registers the cluster and its gres/gpu TRES, which the QOS
        # limits name), then the tenants.
        h.start_slurmctld()
        first = h.run("sh", str(h.plan_dir / "tenants.sh"), timeout=120)
        assert first.returncode == 0, first.stdout + first.stderr
        # Test jobs are submitted by root: give root an association in both tenants' accounts (test-only).
        h.run("sacctmgr", "-i", "add", "user", "root", "account=research,teaching", check=True)
        for node in nodes:
            h.start_slurmd(node, gpus=8)
        h.wait_nodes_idle(nodes)
        yield h, plan, files, first.stdout
    finally:
        h.cancel_jobs()
        h.stop()


def test_sinfo_matches_plan(lab):
    h, plan, _, _ = lab
    out = h.run("sinfo", "-h", "-o", "%R|%D|%l|%N|%G", check=True).stdout.split()
    got = {line.split("|")[0]: line.split("|")[1:] for line in out}
    want = {p.name: p for p in plan.slurm.partitions}
    assert set(got) == set(want)
    for name, (count, limit, nodes, gres) in got.items():
        assert int(count) == want[name].node_count
        assert sorted(expand(nodes)) == sorted(expand(want[name].nodes))
        assert limit == want[name].max_time.replace("01:00:00", "1:00:00")
        assert gres.startswith("gpu:h100:8")
    default = h.run("sinfo", "-h", "-o", "%P", check=True).stdout.split()
    assert [p for p in default if p.endswith("*")] == ["gpu*"]


def test_scontrol_show_node_matches_plan(lab):
    h, plan, _, _ = lab
    (group,) = plan.slurm.nodes
    for node in expand(group.names):
        text = h.run("scontrol", "show", "node", node, check=True).stdout
        fields = dict(re.findall(r"(\w+)=(\S+)", text))
        assert fields["CPUTot"] == str(group.cpus)
        assert fields["RealMemory"] == str(group.real_memory_mib)
        assert fields["Gres"].startswith("gpu:h100:8")
        assert fields["AvailableFeatures"] == ",".join(group.features)
        assert set(fields["Partitions"].split(",")) == {p.name for p in plan.slurm.partitions}
        assert "gres/gpu=8" in fields["CfgTRES"]


def test_topology_matches_plan(lab):
    h, plan, files, _ = lab
    assert plan.spec.slurm.topology == "tree"  # the lab asks for topology/tree: its topology.conf must be there
    text = files["slurm/topology.conf"].decode()
    want = set(re.findall(r"^SwitchName=(\S+)", text, re.M))
    got = {}
    for line in h.run("scontrol", "show", "topology", check=True).stdout.splitlines():
        name = re.search(r"SwitchName=(\S+)", line)
        nodes = re.search(r"\bNodes=(\S+)", line)
        if name:
            got[name.group(1)] = sorted(expand(nodes.group(1))) if nodes else []
    assert set(got) == want
    leaves = re.findall(r"^SwitchName=(\S+)\s+Nodes=(\S+)", text, re.M)
    assert leaves
    for name, nodes in leaves:
        assert got[name] == sorted(expand(nodes))


def test_eight_gpu_job_sees_every_device(lab):
    h, _, _, _ = lab
    r = h.run("srun", "-p", "gpu", "-A", "research", "-N1", "--gres=gpu:8", "printenv", "CUDA_VISIBLE_DEVICES",
              timeout=90)
    assert r.returncode == 0, r.stderr + h.logs()
    assert r.stdout.split() == ["0,1,2,3,4,5,6,7"]


def test_job_runs_across_two_slurmd(lab):
    h, _, _, _ = lab
    r = h.run("srun", "-p", "debug", "-A", "research", "-N2", "--ntasks-per-node=1", "--gres=gpu:1",
              "printenv", "SLURMD_NODENAME", timeout=90)
    assert r.returncode == 0, r.stderr + h.logs()
    assert sorted(r.stdout.split()) == ["gpu01", "gpu02"]


def test_partition_admits_only_its_tenants(lab):
    h, _, _, _ = lab
    # teaching lists only 'debug'; the 'gpu' partition is closed to it by AllowAccounts.
    # EnforcePartLimits=ALL refuses it at submission instead of queueing it for ever.
    r = h.run("srun", "--immediate=20", "-p", "gpu", "-A", "teaching", "-N1", "--gres=gpu:1", "true", timeout=60)
    assert r.returncode != 0
    assert "invalid account or account/partition combination" in r.stderr.lower(), r.stderr


def _qos_dump(h) -> str:
    qos = h.run("sacctmgr", "-nP", "show", "qos", "format=name,grptres,maxwall,priority", check=True).stdout
    assoc = h.run("sacctmgr", "-nP", "show", "assoc", "where", "cluster=lab",
                  "format=account,user,qos,defaultqos", check=True).stdout
    users = h.run("sacctmgr", "-nP", "show", "user", "format=user,defaultaccount", check=True).stdout
    return qos + assoc + users


def test_tenant_script_creates_then_changes_nothing(lab):
    h, plan, _, first = lab
    assert "added qos research" in first and "added account teaching" in first
    assert "added user carol to teaching" in first
    qos = {line.split("|")[0]: line.split("|")[1:]
           for line in h.run("sacctmgr", "-nP", "show", "qos", "format=name,grptres,maxwall,priority",
                             check=True).stdout.split()}
    assert qos["research"] == ["gres/gpu=8", "2-00:00:00", "0"]
    assert qos["teaching"] == ["gres/gpu=4", "", "0"]
    users = dict(line.split("|") for line in h.run("sacctmgr", "-nP", "show", "user",
                                                   "format=user,defaultaccount", check=True).stdout.split())
    assert (users["alice"], users["bob"], users["carol"]) == ("research", "research", "teaching")
    before = _qos_dump(h)
    again = h.run("sh", str(h.plan_dir / "tenants.sh"), timeout=120)
    assert again.returncode == 0, again.stderr
    assert again.stdout == "tenants of lab: unchanged\n"
    assert _qos_dump(h) == before


def test_job_over_the_gpu_limit_waits_on_its_qos(lab):
    h, _, _, _ = lab
    ids = []
    try:
        for _ in range(2):  # teaching may hold 4 GPUs: the first job takes them, the second must wait
            r = h.run("sbatch", "--parsable", "-p", "debug", "-A", "teaching", "-N1", "--gres=gpu:4", "-t", "5",
                      "--wrap", "sleep 120", check=True)
            ids.append(r.stdout.strip().split(";")[0])
        deadline = time.monotonic() + 60
        states = {}
        while time.monotonic() < deadline:
            out = h.run("squeue", "-h", "-j", ",".join(ids), "-o", "%i|%T|%r", check=True).stdout.split()
            states = {i: (t, r) for i, t, r in (line.split("|") for line in out)}
            if states.get(ids[0], ("",))[0] == "RUNNING" and states.get(ids[1], ("", ""))[1] == "QOSGrpGRES":
                break
            time.sleep(0.5)
        assert states[ids[0]][0] == "RUNNING", states
        assert states[ids[1]] == ("PENDING", "QOSGrpGRES"), states
    finally:
        if ids:
            h.run("scancel", *ids)


def test_slurmctld_refuses_what_the_checks_stop(lab, tmp_path):
    """A partition over a pool without slurmd would name unknown nodes: slurmctld exits, and validate says why
    before anything is rendered."""
    h, plan, files, _ = lab
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    data["slurm"]["partitions"].append({"name": "login", "pools": ["login"]})
    spec = tmp_path / "lab.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    assert "slurm-partition-pool" in {f.check for f in check_spec(spec).findings if f.level == "error"}
    broken = dict(files)
    broken["slurm/slurm.conf"] = files["slurm/slurm.conf"] + b"PartitionName=login Nodes=login01 State=UP\n"
    other = harness_for(tmp_path / "broken", plan, broken, shared=h)
    rc, out = other.config_verdict()
    assert rc == 1, out
    assert "login01" in out


@pytest.mark.parametrize("example", [p for p in EXAMPLES if p.stem != "lab"], ids=lambda p: p.stem)
def test_slurmctld_accepts_example(example, lab, tmp_path):
    h = lab[0]
    plan, files = planned(example)
    if plan.slurm.nvlink_blocks and _slurmctld_release() < (24, 11):
        # topology/block and switch/nvidia_imex are not in this slurmctld; slurm24_harness runs a 24.11 one on them
        pytest.skip(f"{example.stem} needs slurmctld 24.11 (topology/block, switch/nvidia_imex); this one is "
                    f"{_slurmctld_release()[0]}.{_slurmctld_release()[1]:02}")
    other = harness_for(tmp_path, plan, files, shared=h)
    try:
        other.run("sacctmgr", "-i", "add", "cluster", plan.slurm.cluster_name, check=True)
        other.start_slurmctld()
        out = other.run("sinfo", "-h", "-o", "%R|%D", check=True).stdout.split()
        assert dict(line.split("|") for line in out) == {p.name: str(p.node_count) for p in plan.slurm.partitions}
        if plan.slurm.topology_plugin == "topology/tree":
            want = set(re.findall(r"^SwitchName=(\S+)", files["slurm/topology.conf"].decode(), re.M))
            shown = other.run("scontrol", "show", "topology", check=True, timeout=120).stdout
            assert set(re.findall(r"SwitchName=(\S+)", shown)) == want
    finally:
        other.stop()


def _shown_topology(h) -> dict[str, tuple[list[str], list[str]]]:
    """`scontrol show topology` as {switch: (its nodes, its child switches)}."""
    got = {}
    for line in h.run("scontrol", "show", "topology", check=True, timeout=120).stdout.splitlines():
        name = re.search(r"SwitchName=(\S+)", line)
        nodes = re.search(r"\bNodes=(\S+)", line)
        below = re.search(r"\bSwitches=(\S+)", line)
        if name:
            got[name.group(1)] = (sorted(expand(nodes.group(1))) if nodes else [],
                                  sorted(expand(below.group(1))) if below else [])
    return got


def test_ethernet_rail_fabric_topology_under_slurmctld(lab, tmp_path):
    """SAKURAONE's RoCE fabric as slurmctld holds it: one switch per scalable unit holding exactly the nodes cabled
    to that SU's rail leaves (read from the Ethernet plan's NIC ports, not from topology.conf), under one top
    switch for the spines."""
    h = lab[0]
    plan, files = planned(CLUSTERS / "sakuraone.yaml")
    assert plan.slurm.topology_plugin == "topology/tree"
    (fp,) = plan.ethernet
    want: dict[str, set[str]] = {}
    for p in fp.ports:
        want.setdefault(f"su{fp.switches[p.leaf].su:03}", set()).add(p.host)
    other = harness_for(tmp_path, plan, files, shared=h)
    try:
        other.run("sacctmgr", "-i", "add", "cluster", plan.slurm.cluster_name)  # the example test may have added it
        other.start_slurmctld()
        got = _shown_topology(other)
    finally:
        other.stop()
    assert set(got) == set(want) | {"fabric"}
    for su, hosts in want.items():
        assert got[su] == (sorted(hosts), [])
    # slurmctld lists every node below a switch on it too
    assert got["fabric"] == (sorted(h for hosts in want.values() for h in hosts), sorted(want))
    assert sum(len(v) for v in want.values()) == 100


def _slurmctld_release() -> tuple[int, int]:
    import subprocess

    out = subprocess.run(["slurmctld", "-V"], capture_output=True, text=True, check=True).stdout
    m = re.search(r"(\d+)\.(\d+)", out)
    assert m, out
    return int(m.group(1)), int(m.group(2))


# --- hardware the catalog does not know ---------------------------------------------------------------------------

def lab_variant(tmp_path, edit):
    """The lab spec, on its own (no fabric, no accounting, no tenants) and changed by ``edit``: plan and files."""
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    data["name"] = "labvar"
    del data["fabric"], data["tenants"]
    data["slurm"].update(topology="none", accounting={"enabled": False})
    edit(data)
    folder = tmp_path / "spec"
    folder.mkdir()
    (folder / "lab.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return planned(folder / "lab.yaml")


def node_fields(h, node) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", h.run("scontrol", "show", "node", node, check=True).stdout))


def test_node_is_configured_as_its_spec_model_says(lab, tmp_path):
    """2 x 96 cores, 768 GiB, 4 x H100 NVL: what slurmctld holds for the node and what slurmd accepts from gres.conf
    (GPU-to-core affinity on the second socket's cores 96-191) are the spec's machine, not the catalog's h100-4
    (2 x 48 cores, RealMemory=995328, which would drain every node for low memory)."""
    def edit(d):
        d["node_pools"][0].update(model="h100-4", hardware={
            "cpu": {"model": "AMD EPYC 9654", "sockets": 2, "cores_per_socket": 96, "threads_per_core": 2},
            "memory_gib": 768, "gpu": {"model": "h100-nvl-94gb", "count": 4}})

    plan, files = lab_variant(tmp_path, edit)
    (group,) = plan.slurm.nodes
    assert (group.sockets, group.cores_per_socket, group.real_memory_mib) == (2, 96, 746496)
    assert "Cores=96-191" in files["slurm/gres.conf"].decode()
    h = harness_for(tmp_path / "run", plan, files, shared=lab[0])
    try:
        h.start_slurmctld()
        h.start_slurmd("gpu01", gpus=4)
        h.wait_nodes_idle(["gpu01"])
        f = node_fields(h, "gpu01")
        assert (f["Sockets"], f["CoresPerSocket"], f["ThreadsPerCore"]) == ("2", "96", "2")
        assert (f["CPUTot"], f["RealMemory"]) == ("384", "746496")
        assert f["Gres"].startswith("gpu:h100:4")
        assert f["CfgTRES"].startswith("cpu=384,mem=729G,")
        # slurmd took the gres.conf core ranges: a job on the second socket's GPUs gets them
        r = h.run("srun", "-p", "debug", "-w", "gpu01", "--gres=gpu:4", "printenv", "CUDA_VISIBLE_DEVICES",
                  timeout=90)
        assert r.returncode == 0, r.stderr + h.logs()
        assert r.stdout.split() == ["0,1,2,3"]
    finally:
        h.cancel_jobs()
        h.stop()


def test_node_registers_without_config_overrides_only_with_its_real_model(lab, tmp_path):
    """Without SlurmdParameters=config_overrides slurmd reports the machine it runs on. A spec model describing this
    machine (from `slurmd -C`) registers idle: RealMemory is below what the kernel reports by the planned reserve.
    A node planned as the catalog's h100-4 on the same machine is refused for low memory and cores."""
    import math
    import subprocess

    hw = dict(re.findall(r"(\w+)=(\S+)", subprocess.run(["slurmd", "-C"], capture_output=True, text=True,
                                                           check=True).stdout))
    sockets = int(hw["Boards"]) * int(hw["SocketsPerBoard"])
    installed_gib = math.ceil(int(hw["RealMemory"]) / 1024)  # the kernel shows a little less than is installed

    def edit(d):
        d["node_pools"][0].update(count=1, model="cpu-1u", hardware={
            "cpu": {"sockets": sockets, "cores_per_socket": int(hw["CoresPerSocket"]),
                    "threads_per_core": int(hw["ThreadsPerCore"])},
            "memory_gib": installed_gib, "gpu": {"model": "h100-sxm5-80gb", "count": 2}})
        d["node_pools"].append({"name": "old", "id": 3, "model": "h100-4", "count": 1, "hostname": "old{index:02}",
                                "roles": ["compute"], "rack": {"name": "old{rack:02}"}})
        d["slurm"]["partitions"] = [{"name": "debug", "pools": ["gpu", "old"], "default": True}]

    plan, files = lab_variant(tmp_path, edit)
    groups = {g.pool: g for g in plan.slurm.nodes}
    assert groups["gpu"].real_memory_mib < int(hw["RealMemory"])
    h = harness_for(tmp_path / "run", plan, files, shared=lab[0])
    h.conf.write_text(h.conf.read_text().replace("SlurmdParameters=config_overrides\n", ""))
    assert "config_overrides" not in h.conf.read_text()
    try:
        h.start_slurmctld()
        h.start_slurmd("gpu01", gpus=2)
        h.start_slurmd("old01", gpus=4)
        h.wait_nodes_idle(["gpu01"])
        f = node_fields(h, "gpu01")
        assert f["RealMemory"] == str(groups["gpu"].real_memory_mib)
        assert f["CPUTot"] == hw["CPUs"] and f["CoresPerSocket"] == hw["CoresPerSocket"]

        def refused() -> bool:
            return "Low" in node_fields(h, "old01").get("Reason", "")

        h.wait_for("old01 refused", refused, 60)
        old = h.run("scontrol", "show", "node", "old01", check=True).stdout
        assert "Low RealMemory" in old or "Low socket*core*thread count" in old, old
    finally:
        h.cancel_jobs()
        h.stop()


def test_slurmctld_runs_with_the_spec_settings_and_refuses_a_misspelt_key(lab, tmp_path):
    """slurm.settings as slurmctld reads them: a key of the plan replaced in place whatever its case, new keys in
    the site section, a boolean as YES. The key the checks warn about (unknown, did-you-mean) is one slurmctld
    refuses to start with."""
    def edit(d):
        d["slurm"]["settings"] = {"maxjobcount": 54321, "KillWait": 45, "DisableRootJobs": True}

    for sub in ("good", "bad"):
        (tmp_path / sub).mkdir()
    plan, files = lab_variant(tmp_path / "good", edit)
    assert b"MaxJobCount=54321\n" in files["slurm/slurm.conf"]
    h = harness_for(tmp_path / "run", plan, files, shared=lab[0])
    try:
        h.start_slurmctld()
        config = dict(re.findall(r"^(\w+)\s+= (.*?)\s*$", h.run("scontrol", "show", "config", check=True).stdout,
                                 re.M))
        assert (config["MaxJobCount"], config["KillWait"], config["DisableRootJobs"]) == ("54321", "45 sec", "Yes")
    finally:
        h.stop()

    def misspelt(d):
        d["slurm"]["settings"] = {"KillWiat": 45}

    plan, files = lab_variant(tmp_path / "bad", misspelt)
    (warning,) = [f for f in check_spec(tmp_path / "bad" / "spec" / "lab.yaml").findings
                  if f.check == "slurm-setting-unknown"]
    assert "KillWait" in warning.hint
    rc, out = harness_for(tmp_path / "bad-run", plan, files, shared=lab[0]).config_verdict()
    assert rc == 1 and "KillWiat" in out, out


# --- controllers sharing their state ------------------------------------------------------------------------------

@pytest.mark.parametrize("shared", [True, False], ids=["shared-state", "local-state"])
def test_backup_controller_takes_over_with_the_shared_state(lab, tmp_path, shared):
    """Primary and backup slurmctld of the plan's slurm.conf; a held job is queued, the primary is killed, the
    backup takes control. With the state on the filesystem both mount (the harness's one state folder stands for the
    NFS home of slurm.state_save) the job is still there; with each controller's own folder, as two local disks
    would be, the backup starts from empty state and the job is lost: what the slurm-state-save check refuses."""
    import time

    def edit(d):
        d["node_pools"][1]["count"] = 2
        d["slurm"]["state_save"] = {"filesystem": "home"}

    plan, files = lab_variant(tmp_path, edit)
    assert plan.slurm.controllers == ("ctl01", "ctl02")
    conf = files["slurm/slurm.conf"].decode()
    assert re.findall(r"^SlurmctldHost=(\S+)", conf, re.M) == ["ctl01", "ctl02"]
    assert re.findall(r"^StateSaveLocation=(\S+)", conf, re.M) == ["/home/slurmctld"]
    h = harness_for(tmp_path / "run", plan, files, shared=lab[0])
    # The backup notices a dead primary after SlurmctldTimeout seconds (120 as planned for a small cluster). Both
    # controllers share this machine's SlurmctldPort, each on its own loopback address (NoCtldInAddrAny).
    h.conf.write_text(h.conf.read_text() + "SlurmctldTimeout=5\nCommunicationParameters=NoInAddrAny,NoCtldInAddrAny\n")
    backup_conf = h.root / "etc" / "slurm-ctl02.conf"
    # Its own pid and log files: slurmctld stops the daemon named in its pid file when it starts.
    lines = [f"include {h.conf}", f"SlurmctldPidFile={h.root}/run/slurmctld-ctl02.pid",
             f"SlurmctldLogFile={h.root}/log/slurmctld-ctl02.log"]
    if not shared:
        (h.root / "state-ctl02").mkdir()
        lines.append(f"StateSaveLocation={h.root}/state-ctl02")
    backup_conf.write_text("\n".join(lines) + "\n")

    def ping() -> str:
        return h.run("scontrol", "ping", timeout=30).stdout

    try:
        primary = h.start_slurmctld()
        backup = h.spawn("slurmctld-ctl02", ["slurmctld", "-D", "-f", str(backup_conf)], "ctl02")
        h.wait_for("backup slurmctld", lambda: re.search(r"\(backup\) at ctl02 is UP", ping()), 60, backup)
        submitted = time.time()
        r = h.run("sbatch", "--parsable", "--hold", "-p", "debug", "-N1", "--wrap", "sleep 1", check=True)
        job = r.stdout.strip().split(";")[0]
        state = h.root / "state" / "job_state"
        # slurmctld saves job state a moment after a change; a crash before that would lose the job anyway.
        h.wait_for("job state saved", lambda: state.exists() and state.stat().st_mtime >= submitted, 30, primary)
        primary.kill()  # a crash: no state saved on the way down
        primary.wait()

        def backup_in_control() -> bool:
            # squeue fails over to the backup, which answers only once it has taken control
            q = h.run("squeue", "-h", "-o", "%i", timeout=30)
            return q.returncode == 0 and re.search(r"\(primary\) at ctl01 is DOWN", ping()) is not None

        h.wait_for("backup in control", backup_in_control, 90, backup)
        jobs = h.run("squeue", "-h", "-o", "%i|%T|%r", check=True).stdout.split()
        if shared:
            assert jobs == [f"{job}|PENDING|JobHeldUser"], jobs
            # and it keeps scheduling: a new job gets the next id
            r = h.run("sbatch", "--parsable", "--hold", "-p", "debug", "-N1", "--wrap", "sleep 1", check=True)
            assert int(r.stdout.strip().split(";")[0]) == int(job) + 1
        else:
            assert jobs == [], jobs
    finally:
        h.cancel_jobs()
        h.stop()


def test_task_prolog_exports_the_tenants_partition_key(lab, tmp_path):
    """slurmd runs the plan's TaskProlog before every task: on HCAs that hold both lab tenants' keys as a full
    member, each account's task gets its own key's P_Key index (NCCL) and value (UCX)."""
    h, _, _, _ = lab
    sysfs = tmp_path / "infiniband"
    for dev in ("mlx5_0", "mlx5_1"):
        pkeys = sysfs / dev / "ports" / "1" / "pkeys"
        pkeys.mkdir(parents=True)
        for i, key in enumerate((0x7FFD, 0x7FFF, 0x8101, 0x8102, 0x0000)):
            (pkeys / str(i)).write_text(f"0x{key:04x}\n")
    show = ["sh", "-c", 'echo "${NCCL_IB_PKEY:-unset} ${UCX_IB_PKEY:-unset}"']
    for account, want in (("research", ["2", "0x0101"]), ("teaching", ["3", "0x0102"])):
        r = h.run("srun", "-p", "debug", "-A", account, "-N1", "--gres=gpu:1", *show,
                  env={"GPUCLOUD_IB_SYSFS": str(sysfs)}, timeout=90)
        assert r.returncode == 0, r.stderr + h.logs()
        assert r.stdout.split() == want, r.stdout
