"""Block topology, segments, IMEX channels and GPUs without CPU affinity under Slurm 24.11 (Debian 13's).

Rack-scale NVLink clusters (GB200 NVL72) need what Debian 12's Slurm 22.05 does not know: ``topology/block``
(blocks of nodes that share one NVLink domain), ``sbatch --segment``, ``SwitchType=switch/nvidia_imex``. These
tests run slurmctld and slurmd of a Debian 13 root (``slurm24_harness``) on a hand-written cluster of four nodes
in two blocks of two, each with four fake GPUs listed in gres.conf without ``Cores=`` (a Grace CPU's GPUs have no
per-socket affinity that the plan could state). The facts they pin down feed the planner and its checks
(docs/slurm.md, "Slurm versions").
"""

from __future__ import annotations

import re
import subprocess

import pytest

from gpucloud.hostlist import expand
from slurm24_harness import Slurm24Harness, parse_fields, skip_module_without_slurm24

pytestmark = pytest.mark.integration

ROOT = skip_module_without_slurm24()
PLUGIN_DIR = ROOT / "usr" / "lib" / "x86_64-linux-gnu" / "slurm-wlm"

NODES = ["n1", "n2", "n3", "n4"]
BLOCKS = {"rack1": ["n1", "n2"], "rack2": ["n3", "n4"]}
OUTSIDE = "n5"  # a node that no block lists (a login-rack or off-fabric node of a rendered plan)


def slurm_conf(nodes: str = "n[1-5]", extra: str = "", topology: str = "TopologyPlugin=topology/block\n") -> bytes:
    return (
        "ClusterName=nvl\n"
        "SlurmctldHost=ctl\n"
        "SelectType=select/cons_tres\n"
        "SelectTypeParameters=CR_Core_Memory\n"
        f"{topology}"
        "GresTypes=gpu\n"
        "ReturnToService=2\n"
        f"NodeName={nodes} Sockets=1 CoresPerSocket=8 ThreadsPerCore=1 RealMemory=1000 Gres=gpu:gb200:4\n"
        "PartitionName=gpu Nodes=ALL Default=YES MaxTime=INFINITE State=UP\n"
        f"{extra}"
    ).encode()


TOPOLOGY = b"BlockName=rack1 Nodes=n[1-2]\nBlockName=rack2 Nodes=n[3-4]\nBlockSizes=2\n"
# No Cores=: slurmd takes every GPU as reachable from every core.
GRES = b"Name=gpu Type=gb200 File=/dev/nvidia[0-3]\n"


def files(**changes: bytes) -> dict[str, bytes]:
    return {"slurm.conf": slurm_conf(), "topology.conf": TOPOLOGY, "gres.conf": GRES, **changes}


def start(directory, conf_files: dict[str, bytes], slurmd: list[str]) -> Slurm24Harness:
    """munged, slurmctld and a slurmd (four fake GPUs) for each of ``slurmd``, all idle; stopped by the caller."""
    h = Slurm24Harness(directory, conf_files, "ctl", NODES + [OUTSIDE], ROOT)
    try:
        h.start_munge()
        h.start_slurmctld()
        for node in slurmd:
            h.start_slurmd(node, gpus=4)
        h.wait_nodes_idle(slurmd)
    except BaseException:
        h.stop()
        raise
    return h


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    h = start(tmp_path_factory.mktemp("slurm24-block"), files(), NODES + [OUTSIDE])
    try:
        yield h
    finally:
        h.cancel_jobs()
        h.stop()


@pytest.fixture
def controller(tmp_path):
    """A slurmctld (with munged, without slurmd) for a configuration, to ask what it made of it."""
    started: list[Slurm24Harness] = []

    def run(conf_files: dict[str, bytes], slurmd: tuple[str, ...] = ()) -> Slurm24Harness:
        started.append(start(tmp_path / f"c{len(started)}", conf_files, list(slurmd)))
        return started[-1]

    yield run
    for h in started:
        h.cancel_jobs()
        h.stop()


@pytest.fixture
def verdict(tmp_path):
    """slurmctld's verdict on a configuration (124: it kept running, i.e. accepted), with munged running."""
    started: list[Slurm24Harness] = []

    def check(conf_files: dict[str, bytes]) -> tuple[int, str]:
        h = Slurm24Harness(tmp_path / f"try{len(started)}", conf_files, "ctl", NODES + [OUTSIDE], ROOT)
        started.append(h)
        h.start_munge()
        return h.config_verdict()

    yield check
    for h in started:
        h.stop()


def block_of(nodes: list[str]) -> set[str]:
    return {name for name, members in BLOCKS.items() if set(nodes) & set(members)}


def topology(h: Slurm24Harness) -> dict[str, dict[str, str]]:
    return {f["BlockName"]: f for f in map(parse_fields, h.scontrol("show", "topology").splitlines())
            if "BlockName" in f}


def job_id(submitted: subprocess.CompletedProcess) -> str:
    assert submitted.returncode == 0, submitted.stdout + submitted.stderr
    return submitted.stdout.strip().split(";")[0]


def test_debian_13_ships_slurm_24_11_with_block_and_imex_plugins():
    version = subprocess.run(["chroot", str(ROOT), "slurmctld", "-V"], capture_output=True, text=True)
    assert re.fullmatch(r"slurm(-wlm)? 24\.11\.\d+\n", version.stdout), version.stdout + version.stderr
    plugins = {p.name for p in PLUGIN_DIR.iterdir()}
    assert {"topology_block.so", "switch_nvidia_imex.so", "gres_gpu.so", "auth_munge.so"} <= plugins, sorted(plugins)


def test_show_topology_lists_the_blocks_with_their_nodes(cluster):
    blocks = topology(cluster)
    assert sorted(blocks) == ["rack1", "rack2"], blocks
    assert {name: expand(b["Nodes"]) for name, b in blocks.items()} == BLOCKS
    assert {b["BlockSize"] for b in blocks.values()} == {"2"}
    assert "TopologyPlugin=topology/block" in cluster.scontrol("show", "config").replace(" ", "")


def test_gpus_without_core_affinity_register_and_run(cluster):
    node = parse_fields(cluster.scontrol("show", "node", "n1"))
    assert node["State"] == "IDLE", node
    # gpu:gb200:4 and no "(S:0)": slurmd took the GPUs without a socket affinity.
    assert node["Gres"] == "gpu:gb200:4", node
    job = job_id(cluster.sbatch("-N1", "--gres=gpu:gb200:4", "--output=gres-%j.out",
                                script="#!/bin/sh\necho \"GPUS=$CUDA_VISIBLE_DEVICES\"\n"))
    out = cluster.dir / "jobs" / f"gres-{job}.out"
    cluster.wait_for(f"output of job {job}", lambda: "GPUS=" in (out.read_text() if out.exists() else ""))
    assert "GPUS=0,1,2,3" in out.read_text()


def test_segment_job_lands_inside_one_block(cluster):
    # Hold n1, so the lowest free pair (what a flat topology picks, n2+n3) straddles the two blocks.
    hold = job_id(cluster.sbatch("-N1", "-w", "n1", "--exclusive", script="#!/bin/sh\nsleep 600\n"))
    try:
        assert cluster.wait_job(hold)["NodeList"] == "n1"
        fields = cluster.wait_job(job_id(cluster.sbatch("-N2", "--segment=2", "--exclusive",
                                                        script="#!/bin/sh\nsleep 600\n")))
        assert fields["JobState"] == "RUNNING", fields
        nodes = expand(fields["NodeList"])
        assert len(block_of(nodes)) == 1, fields["NodeList"]
        assert nodes == BLOCKS["rack2"]
    finally:
        cluster.cancel_jobs()


def test_without_blocks_the_same_pair_straddles_the_racks(controller):
    """The control for the test above: with the default (flat) topology Slurm picks n2+n3 for the same request,
    so that test fails unless the block plugin keeps the job inside one block."""
    h = controller(files(**{"slurm.conf": slurm_conf(topology="")}), slurmd=tuple(NODES))
    hold = job_id(h.sbatch("-N1", "-w", "n1", "--exclusive", script="#!/bin/sh\nsleep 600\n"))
    assert h.wait_job(hold)["NodeList"] == "n1"
    fields = h.wait_job(job_id(h.sbatch("-N2", "--exclusive", script="#!/bin/sh\nsleep 600\n")))
    assert expand(fields["NodeList"]) == ["n2", "n3"], fields


def test_segment_larger_than_the_base_block_is_refused(cluster):
    job = cluster.sbatch("-N4", "--segment=4", script="#!/bin/sh\ntrue\n")
    assert job.returncode != 0, job.stdout
    assert "Requested topology configuration is not available" in job.stderr, job.stderr


def test_node_outside_every_block_is_accepted_with_a_warning(cluster):
    """A node that no BlockName lists: slurmctld starts, warns, and leaves the node out of every block."""
    log = (cluster.dir / "log" / "slurmctld.log").read_text()
    assert f"warning: blocks lack access to 1 nodes: {OUTSIDE}" in log
    listed = {n for b in topology(cluster).values() for n in expand(b["Nodes"])}
    assert OUTSIDE not in listed
    assert parse_fields(cluster.scontrol("show", "node", OUTSIDE))["State"] == "IDLE"


def test_node_outside_every_block_runs_no_job(cluster):
    """What the block plugin does with a job for that node is what the planner's check must know."""
    job = cluster.sbatch("-N1", "-w", OUTSIDE, script="#!/bin/sh\ntrue\n")
    assert job.returncode != 0, job.stdout
    assert "Requested topology configuration is not available" in job.stderr, job.stderr


def test_block_smaller_than_the_block_size_is_refused(verdict):
    """An incomplete block (a rack not yet full): 25.05 accepts it, 24.11 stops."""
    code, out = verdict(files(**{"topology.conf": b"BlockName=rack1 Nodes=n[1-2]\nBlockName=rack2 Nodes=n3\n"
                                                  b"BlockName=rack3 Nodes=n4\nBlockSizes=2\n"}))
    assert code == 1, out
    assert "fatal: Block configuration (rack2) children count lower than bblock_node_cnt" in out


def test_without_block_sizes_the_first_block_is_the_base(verdict):
    """topology.conf without BlockSizes (what the plan wrote before): the first block's node count is the base
    block size; a later, smaller block stops slurmctld, a later, larger one (spare nodes) is accepted."""
    code, out = verdict(files(**{"topology.conf": b"BlockName=rack1 Nodes=n[1-3]\nBlockName=rack2 Nodes=n4\n"}))
    assert code == 1, out
    assert "fatal: Block configuration (rack2) children count lower than bblock_node_cnt" in out
    code, out = verdict(files(**{"topology.conf": b"BlockName=rack1 Nodes=n1\nBlockName=rack2 Nodes=n[2-4]\n"}))
    assert code == 124, out


def test_nvidia_imex_switch_is_accepted(controller):
    h = controller(files(**{"slurm.conf": slurm_conf(extra="SwitchType=switch/nvidia_imex\n"
                                                            "SwitchParameters=imex_channel_count=2048\n")}),
                   slurmd=("n1",))
    config = h.scontrol("show", "config").replace(" ", "")
    assert "SwitchType=switch/nvidia_imex" in config
    assert "SwitchParameters=imex_channel_count=2048" in config
