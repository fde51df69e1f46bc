"""Parsers of the node tools' documented output, over the recorded outputs and the odd cases real nodes print."""

from __future__ import annotations

from pathlib import Path

from gpucloud.verify import parse
from gpucloud.verify.collect import MARK, split

RECORDED = Path(__file__).resolve().parent.parent / "fixtures" / "verify" / "recorded"


def read(name: str) -> str:
    return (RECORDED / name).read_text()


def test_nvidia_smi_query_h100_and_h200():
    h100 = parse.gpus(read("h100/nvidia-smi-query"))
    assert [g.index for g in h100] == list(range(8))
    assert {g.name for g in h100} == {"NVIDIA H100 80GB HBM3"}
    assert {g.memory_mib for g in h100} == {81559}
    assert h100[7].bus_id == "00000000:DB:00.0"
    h200 = parse.gpus(read("h200/nvidia-smi-query"))
    assert {(g.name, g.memory_mib, g.driver, g.persistence) for g in h200} == {
        ("NVIDIA H200", 143771, "550.90.07", "Enabled")}
    ecc = parse.gpus(read("broken/h100-ecc-query"))
    assert [(g.index, g.ecc_uncorrected_volatile) for g in ecc if g.ecc_uncorrected_volatile] == [(5, 2)]


def test_nvidia_smi_not_available_values_and_noise():
    text = ("0, 00000000:18:00.0, GPU-1, NVIDIA H100 80GB HBM3, 81559, 550.90.07, Enabled, [N/A], [N/A], "
            "[Not Supported]\n"
            "No devices were found\n"
            "1, 00000000:2A:00.0, GPU-2, NVIDIA H100 80GB HBM3, [N/A], 550.90.07, Disabled, Enabled, 0, 0\n")
    gpus = parse.gpus(text)
    assert [g.index for g in gpus] == [0, 1]
    assert gpus[0].ecc_uncorrected_volatile is None and gpus[0].ecc_uncorrected_aggregate is None
    assert gpus[1].memory_mib is None and gpus[1].persistence == "Disabled"


def test_nvlink_status_active_inactive_and_zero():
    links = parse.nvlink(read("h100/nvidia-smi-nvlink"))
    assert sorted(links) == list(range(8)) and all(len(v) == 18 for v in links.values())
    assert links[3][17] == 26.562
    odd = parse.nvlink("GPU 0: NVIDIA H100 80GB HBM3 (UUID: GPU-x)\n\t Link 0: 26.562 GB/s\n"
                       "\t Link 1: <inactive>\n\t Link 2: 0 GB/s\nGPU 1: NVIDIA H100 80GB HBM3 (UUID: GPU-y)\n")
    assert odd == {0: {0: 26.562, 1: None, 2: None}, 1: {}}


def test_ibstat_cas_ports_and_link_layers():
    cas = parse.ibstat(read("h100/ibstat"))
    assert [c.name for c in cas] == [f"mlx5_{i}" for i in range(10)]
    assert {c.firmware for c in cas} == {"28.39.1002"} and {c.ca_type for c in cas} == {"MT4129"}
    ports = [p for c in cas for p in c.ports]
    assert sum(p.link_layer == "InfiniBand" for p in ports) == 8
    assert all(p.active and p.rate_gbps == 400 for p in ports if p.link_layer == "InfiniBand")
    down = {p.name: p for c in parse.ibstat(read("broken/h100-port-down-ibstat")) for p in c.ports}["mlx5_6/1"]
    assert (down.state, down.physical, down.rate_gbps, down.active) == ("Down", "Polling", 10, False)


def test_ibstatus_rate_width_generation():
    shapes = parse.ibstatus(read("broken/h100-rate200-ibstatus"))
    assert shapes["mlx5_0/1"] == (400, "4X", "NDR")
    assert shapes["mlx5_3/1"] == (200, "4X", "HDR")
    assert parse.ibstatus(read("cpu-1u/ibstatus")) == {"mlx5_0/1": (200, "2X", "NDR")}


def test_ip_json_interfaces():
    ifaces = {i.name: i for i in parse.interfaces(read("broken/h100-port-down-ip-addr.json"))}
    assert ifaces["ib0"].link_type == "infiniband" and ifaces["ib0"].up
    assert ifaces["ib6"].operstate == "DOWN" and not ifaces["ib6"].up
    assert ifaces["ib6"].addresses == (("@IPOIB6@", 22),)
    assert ifaces["lo"].addresses == (("127.0.0.1", 8),)  # inet6 entries are left out


def test_findmnt_json_last_mount_wins():
    mounts = parse.mounts(read("h100/findmnt.json"))
    assert mounts["/lustre/scratch"] == ("10.202.0.1@o2ib:/scratch", "lustre")
    assert mounts["/home"] == ("10.200.0.10:/export/home", "nfs4")
    stacked = parse.mounts('{"filesystems": [{"target": "/home", "source": "systemd-1", "fstype": "autofs"},'
                           '{"target": "/home", "source": "nfs:/home", "fstype": "nfs4"}]}')
    assert stacked == {"/home": ("nfs:/home", "nfs4")}


def test_scontrol_node_values_with_spaces_and_reason():
    node = parse.scontrol_node(read("broken/slurmd-down-scontrol-node").replace("@HOST@", "gpu08"))
    assert node["NodeName"] == "gpu08" and node["State"] == "DOWN+NOT_RESPONDING"
    assert node["OS"] == "Linux 5.15.0-119-generic #129-Ubuntu SMP Fri Aug 2 19:25:20 UTC 2024"
    assert node["Reason"] == "Not responding [slurm@2024-09-03T09:12:44]"
    assert node["AllocTRES"] == "" and node["Gres"] == "gpu:h100:8(S:0-1)"
    assert parse.scontrol_node("Node gpu99 not found\n") is None


def test_sections_split_on_markers_even_without_trailing_newline():
    out = (f"{MARK}begin kernel\n5.15.0-119-generic\n\n{MARK}end kernel 0\n"
           f"{MARK}begin gpus\nno newline at the end\n{MARK}end gpus 9\n"
           f"{MARK}begin slurm\npartial")
    err = f"{MARK}begin gpus\nNVIDIA-SMI has failed\n\n{MARK}end gpus\n"
    s = split(out, err)
    assert s["kernel"].out.strip() == "5.15.0-119-generic" and s["kernel"].rc == 0
    assert s["gpus"].out == "no newline at the end" and s["gpus"].rc == 9
    assert s["gpus"].err == "NVIDIA-SMI has failed"
    assert s["slurm"].rc is None and s["slurm"].out == "partial"


def test_dpkg_query_installed_packages_held_or_not():
    """The roles hold pinned packages (``hi``): installed all the same; config files left behind (``rc``), a package
    only unpacked (``iU``) or one dpkg knows of but never installed (``un``) is not."""
    text = ("nvidia-driver-550-server\t550.90.07-0ubuntu1\thi \nslurmd:amd64\t23.11.10-1\tii \n"
            "nvidia-fabricmanager-550\t550.90.07-1\trc \ndatacenter-gpu-manager\t1:3.3.7\tiU \n"
            "enroot\t\tun \n")
    assert parse.packages(text) == {"nvidia-driver-550-server": "550.90.07-0ubuntu1", "slurmd": "23.11.10-1"}
