"""The hardware catalog: every hardware fact gpucloud relies on, in one place.

Specs name models from here (``model: hgx-h100-8``, ``switch: qm9700``); planners read port counts, rails and
figures from here and nowhere else. Figures are the vendors' published data-sheet values; ``source`` names the
document each one comes from. Peak tensor figures are *dense* (without structured sparsity), the number that
matters for training estimates.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

# Link rates by InfiniBand generation name, in Gb/s per port.
LINK_RATES_GBPS: dict[str, int] = {"hdr": 200, "ndr200": 200, "ndr": 400, "xdr": 800}
def link_rate(hca: str, port: str | None) -> str:
    """A link runs at the slower of the adapter and the switch port (an NDR adapter on an NDR200 fabric links at
    NDR200); on equal speeds the switch port's signalling wins."""
    if port is None or LINK_RATES_GBPS[hca] < LINK_RATES_GBPS[port]:
        return hca
    return port


# Lanes and signalling generation as the kernel's sysfs ``rate`` file (and ibstatus) name them, e.g.
# "400 Gb/sec (4X NDR)". NDR200 is two NDR lanes; the others use the usual four.
LINK_SHAPE: dict[str, tuple[str, str]] = {
    "hdr": ("4X", "HDR"), "ndr200": ("2X", "NDR"), "ndr": ("4X", "NDR"), "xdr": ("4X", "XDR"),
}


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gib: int
    memory_bandwidth_tbps: float
    bf16_dense_tflops: float
    fp8_dense_tflops: float
    tdp_w: int
    source: str
    key: str = ""  # the catalog key ('h100-sxm5-80gb'), set for every catalog GPU


@dataclass(frozen=True)
class HCA:
    """A host channel adapter as the fabric sees it: one port per adapter at ``rate``."""

    model: str
    rate: str  # key of LINK_RATES_GBPS
    ports: int = 1


@dataclass(frozen=True)
class NVLinkRack:
    """A rack-scale NVLink domain (GB200/GB300 NVL72): ``trays`` compute trays, each a node of its own with the
    model's GPUs, joined by ``switch_trays`` NVLink switch trays into one domain of trays x GPUs GPUs. A domain never
    spans racks; a rack is one domain."""

    trays: int
    switch_trays: int
    rack_power_kw: float  # the whole rack: compute and switch trays, power shelves
    # NVLink switches managed by NMX on the switch trays: the compute trays run no Fabric Manager.
    nmx: bool
    source: str = field(default="defined in the cluster spec", compare=False)


@dataclass(frozen=True)
class ServerModel:
    name: str
    description: str
    vendor_reference: str
    rack_units: int
    cpu_model: str
    sockets: int
    cores_per_socket: int
    threads_per_core: int
    memory_gib: int
    gpu: GPU | None = None
    gpus: int = 0
    nvswitch: bool = False
    # Compute-fabric adapters, one per rail; rail i is adapter i.
    compute_hcas: tuple[HCA, ...] = ()
    # Adapters for a separate storage fabric (ABCI 3.0 style), if the node has them.
    storage_hcas: tuple[HCA, ...] = ()
    nvme_drives: int = 0
    nvme_drive_tb: float = 0.0
    # Data drives enumerate after this many NVMe boot drives (/dev/nvme<first>n1 is the first data drive).
    nvme_first: int = 0
    # Which CPU socket each GPU hangs off, for gres.conf Cores= affinity; len == gpus.
    gpu_socket: tuple[int, ...] = ()
    power_kw: float = 1.0
    # RDMA device names of the compute and storage adapters, in adapter order, where they are not the default
    # mlx5_<n> numbering (compute adapters first). A DGX H100 names its rails mlx5_0,3,4,5,6,9,10,11.
    compute_devices: tuple[str, ...] = ()
    storage_devices: tuple[str, ...] = ()
    # Rack-scale NVLink (NVL72): the node is one compute tray of a domain of nvlink.trays trays; None for a server
    # whose NVLink stays inside it (HGX).
    nvlink: NVLinkRack | None = None
    cpu_arch: str = "x86_64"  # "aarch64" for Grace: no x86 core-affinity layout is assumed (docs/hardware.md)

    @property
    def nvlink_domain_gpus(self) -> int:
        """GPUs that share one NVLink domain: the rack's for NVL72, else the server's own."""
        return self.nvlink.trays * self.gpus if self.nvlink else self.gpus

    @property
    def rails(self) -> int:
        return len(self.compute_hcas)

    def devices(self, which: str) -> tuple[str, ...]:
        """RDMA device names of the 'compute' or 'storage' adapters."""
        if which == "compute":
            return self.compute_devices or tuple(f"mlx5_{i}" for i in range(len(self.compute_hcas)))
        first = len(self.compute_hcas)
        return self.storage_devices or tuple(f"mlx5_{first + i}" for i in range(len(self.storage_hcas)))

    @property
    def cores(self) -> int:
        return self.sockets * self.cores_per_socket

    @property
    def threads(self) -> int:
        return self.cores * self.threads_per_core


@dataclass(frozen=True)
class SwitchModel:
    name: str
    description: str
    vendor_reference: str
    rate: str  # native port rate
    ports: int  # logical ports at the native rate
    cages: int  # physical OSFP/QSFP cages on the front panel
    ports_per_cage: int
    rack_units: int
    # Ports available when every cage is split to a lower rate (e.g. 128 x NDR200 on a QM9700).
    split_rates: dict[str, int] = field(default_factory=dict)
    power_kw: float = 1.0

    def radix(self, rate: str) -> int:
        """Usable ports at ``rate``: native, or the split count when the switch supports that rate."""
        if rate == self.rate:
            return self.ports
        return self.split_rates.get(rate, 0)


_H100_SOURCE = "NVIDIA H100 Tensor Core GPU data sheet (SXM5: 989 TFLOPS BF16, 1,979 TFLOPS FP8, dense)"
_H200_SOURCE = "NVIDIA H200 Tensor Core GPU data sheet (SXM: 989 TFLOPS BF16, 1,979 TFLOPS FP8, dense)"
_H100_NVL_SOURCE = ("NVIDIA H100 NVL data sheet (per GPU: 3,341 TFLOPS FP8 and 1,671 TFLOPS BF16 with sparsity, i.e. "
                    "dense 1,670.5/835.5; 94 GB HBM3 at 3.9 TB/s; 350-400 W configurable)")
_B200_SOURCE = "NVIDIA HGX B200 data sheet (8 GPUs: 18 PFLOPS BF16 and 36 PFLOPS FP8 dense, i.e. per GPU 2,250/4,500)"
_B300_SOURCE = ("NVIDIA HGX B300 data sheet (8 GPUs: 36 PFLOPS BF16 and 72 PFLOPS FP8 with sparsity, i.e. dense per GPU "
                "2,250/4,500; 288 GB HBM3e at 8 TB/s)")


_GB200_SOURCE = ("NVIDIA GB200 NVL72 data sheet (72 GPUs: 360 PFLOPS BF16 and 720 PFLOPS FP8 with sparsity, i.e. dense "
                 "per GPU 2,500/5,000; up to 13.4 TB HBM3e, i.e. 186 GB per GPU, 576 TB/s); 1,200 W per GPU")
_GB300_SOURCE = ("NVIDIA GB300 NVL72 data sheet (72 GPUs: 360 PFLOPS BF16 and 720 PFLOPS FP8 with sparsity, i.e. dense "
                 "per GPU 2,500/5,000; up to 21 TB HBM3e, i.e. 288 GB per GPU, 576 TB/s); 1,400 W per GPU")


GPUS: dict[str, GPU] = {key: replace(gpu, key=key) for key, gpu in {
    "h100-sxm5-80gb": GPU("NVIDIA H100 SXM5 80GB", 80, 3.35, 989.4, 1978.9, 700, _H100_SOURCE),
    "h100-nvl-94gb": GPU("NVIDIA H100 NVL 94GB", 94, 3.9, 835.5, 1670.5, 400, _H100_NVL_SOURCE),
    "h200-sxm-141gb": GPU("NVIDIA H200 SXM 141GB", 141, 4.8, 989.4, 1978.9, 700, _H200_SOURCE),
    "b200-sxm-180gb": GPU("NVIDIA B200 180GB", 180, 8.0, 2250.0, 4500.0, 1000, _B200_SOURCE),
    "b300-sxm-288gb": GPU("NVIDIA B300 288GB", 288, 8.0, 2250.0, 4500.0, 1100, _B300_SOURCE),
    "gb200-186gb": GPU("NVIDIA B200 (GB200) 186GB", 186, 8.0, 2500.0, 5000.0, 1200, _GB200_SOURCE),
    "gb300-288gb": GPU("NVIDIA B300 (GB300) 288GB", 288, 8.0, 2500.0, 5000.0, 1400, _GB300_SOURCE),
}.items()}

CX7_NDR = HCA("ConnectX-7 NDR 400G OSFP", "ndr")
CX7_NDR200 = HCA("ConnectX-7 NDR200 200G", "ndr200")
CX6_HDR = HCA("ConnectX-6 HDR 200G QSFP56", "hdr")
CX8_XDR = HCA("ConnectX-8 SuperNIC XDR 800G", "xdr")

_HGX_GPU_SOCKETS = (0, 0, 0, 0, 1, 1, 1, 1)

# NVL72 racks. 18 compute trays (1U, 2 Grace + 4 Blackwell GPUs each) and 9 NVLink switch trays per rack, one
# 72-GPU NVLink domain (DGX SuperPOD GB200 RA, "Network Fabrics": "Each DGX GB200 rack is built with 18 compute trays
# and 9 NVLink switch trays"; DGX GB200 User Guide, "Hardware"). Rack power: the SuperPOD GB200 RA gives 1.2 MW TDP
# per SU of 8 racks (150 kW a rack with its share of the SU); the NVL72 AI Factory Enterprise RA gives "up to 142 kW"
# for a GB300 NVL72 rack (8 power shelves of 33 kW). A tray's power_kw is the rack's over its 18 trays, so that the
# plan's power sums (per host) give the rack's figure.
_GB200_RACK = NVLinkRack(trays=18, switch_trays=9, rack_power_kw=150.0, nmx=True,
                         source="NVIDIA DGX SuperPOD GB200 RA (18 compute + 9 NVLink switch trays; 1.2 MW per SU of 8 "
                                "racks); DGX GB200 User Guide, Hardware")
_GB300_RACK = NVLinkRack(trays=18, switch_trays=9, rack_power_kw=142.0, nmx=True,
                         source="NVIDIA NVL72 AI Factory Enterprise RA, System Hardware (9 NVSwitch trays, 8 x 33 kW "
                                "power shelves, full rack up to 142 kW)")
# The trays hold no NVSwitch (nvswitch=False: no Fabric Manager on them): the NVLink switch trays are managed by NMX
# on the switch trays (nvlink.nmx). A site running Fabric Manager on the trays instead sets nvswitch: true.
# A compute tray: NVIDIA Grace, 72 Arm Neoverse V2 cores and 480 GB LPDDR5X per CPU (GB200 NVL72 data sheet: up to
# 17 TB LPDDR5X per rack of 36 Grace CPUs).
_GRACE_CPU = "NVIDIA Grace (72 Arm Neoverse V2 cores)"

SERVERS: dict[str, ServerModel] = {
    "hgx-h100-8": ServerModel(
        name="hgx-h100-8",
        description="8x H100 SXM5 80GB HGX server, 4 NVSwitch, 8x ConnectX-7 NDR 400G (one per rail)",
        vendor_reference="NVIDIA DGX H100 / HGX H100 8-GPU system specifications",
        rack_units=8, cpu_model="Intel Xeon Platinum 8480C", sockets=2, cores_per_socket=56, threads_per_core=2,
        memory_gib=2048, gpu=GPUS["h100-sxm5-80gb"], gpus=8, nvswitch=True,
        compute_hcas=(CX7_NDR,) * 8, storage_hcas=(CX7_NDR,) * 2,
        nvme_drives=8, nvme_drive_tb=3.84, nvme_first=2, gpu_socket=_HGX_GPU_SOCKETS, power_kw=10.2,
    ),
    "hgx-h100-8-ndr200": ServerModel(
        name="hgx-h100-8-ndr200",
        description="8x H100 SXM5 80GB HGX server, 8x ConnectX-7 NDR200 (one per rail)",
        vendor_reference="NVIDIA HGX H100 8-GPU; ConnectX-7 NDR200 adapter",
        rack_units=8, cpu_model="Intel Xeon Platinum 8480+", sockets=2, cores_per_socket=56, threads_per_core=2,
        memory_gib=2048, gpu=GPUS["h100-sxm5-80gb"], gpus=8, nvswitch=True,
        compute_hcas=(CX7_NDR200,) * 8, storage_hcas=(CX7_NDR200,),
        nvme_drives=4, nvme_drive_tb=3.84, gpu_socket=_HGX_GPU_SOCKETS, power_kw=10.2,
    ),
    "hgx-h200-8": ServerModel(
        name="hgx-h200-8",
        description="8x H200 SXM 141GB HGX server, 4 NVSwitch, 8x ConnectX-7 NDR 400G, 1x storage HCA",
        vendor_reference="NVIDIA HGX H200 8-GPU system specifications",
        rack_units=8, cpu_model="Intel Xeon Platinum 8558", sockets=2, cores_per_socket=48, threads_per_core=2,
        memory_gib=2048, gpu=GPUS["h200-sxm-141gb"], gpus=8, nvswitch=True,
        compute_hcas=(CX7_NDR,) * 8, storage_hcas=(CX7_NDR,),
        nvme_drives=2, nvme_drive_tb=7.68, gpu_socket=_HGX_GPU_SOCKETS, power_kw=10.2,
    ),
    "hgx-h200-8-ndr200": ServerModel(
        name="hgx-h200-8-ndr200",
        description="8x H200 SXM 141GB HGX server, 8x ConnectX-7 NDR200 compute + 1x NDR200 storage (ABCI 3.0 class)",
        vendor_reference="HPE Cray XD670 with HGX H200 8-GPU, as used by AIST ABCI 3.0",
        rack_units=5, cpu_model="Intel Xeon Platinum 8558", sockets=2, cores_per_socket=48, threads_per_core=2,
        memory_gib=2048, gpu=GPUS["h200-sxm-141gb"], gpus=8, nvswitch=True,
        compute_hcas=(CX7_NDR200,) * 8, storage_hcas=(CX7_NDR200,),
        nvme_drives=2, nvme_drive_tb=7.68, gpu_socket=_HGX_GPU_SOCKETS, power_kw=10.2,
    ),
    "hgx-b200-8": ServerModel(
        name="hgx-b200-8",
        description="8x B200 HGX server, NVLink 5 switch tray, 8x ConnectX-7 NDR 400G (DGX B200 class)",
        vendor_reference="NVIDIA DGX B200 / HGX B200 8-GPU system specifications",
        rack_units=10, cpu_model="Intel Xeon Platinum 8570", sockets=2, cores_per_socket=56, threads_per_core=2,
        memory_gib=2048, gpu=GPUS["b200-sxm-180gb"], gpus=8, nvswitch=True,
        compute_hcas=(CX7_NDR,) * 8, storage_hcas=(CX7_NDR,) * 2,
        nvme_drives=8, nvme_drive_tb=3.84, nvme_first=2, gpu_socket=_HGX_GPU_SOCKETS, power_kw=14.3,
    ),
    "hgx-b300-8": ServerModel(
        name="hgx-b300-8",
        description="8x B300 HGX server, NVLink 5, 8x ConnectX-8 XDR 800G (DGX B300 class)",
        vendor_reference="NVIDIA DGX B300 / HGX B300 8-GPU system specifications; DGX SuperPOD B300 XDR RA",
        rack_units=10, cpu_model="Intel Xeon 6776P", sockets=2, cores_per_socket=64, threads_per_core=2,
        memory_gib=2048, gpu=GPUS["b300-sxm-288gb"], gpus=8, nvswitch=True,
        compute_hcas=(CX8_XDR,) * 8, storage_hcas=(),
        nvme_drives=8, nvme_drive_tb=3.84, gpu_socket=_HGX_GPU_SOCKETS, power_kw=14.5,
    ),
    "gb200-nvl72": ServerModel(
        name="gb200-nvl72",
        description="GB200 NVL72 compute tray (2 Grace, 4 B200, 4x ConnectX-7 NDR 400G, 2x BlueField-3); 18 trays and "
                    "9 NVLink switch trays make one 72-GPU rack",
        vendor_reference="NVIDIA DGX GB200 User Guide (compute tray: 4x ConnectX-7 single-port 400G OSFP, 2x "
                         "BlueField-3); DGX SuperPOD GB200 RA",
        rack_units=1, cpu_model=_GRACE_CPU, sockets=2, cores_per_socket=72, threads_per_core=1, memory_gib=960,
        cpu_arch="aarch64", gpu=GPUS["gb200-186gb"], gpus=4, nvswitch=False,
        compute_hcas=(CX7_NDR,) * 4, storage_hcas=(), nvme_drives=4, nvme_drive_tb=3.84, gpu_socket=(0, 0, 1, 1),
        power_kw=round(_GB200_RACK.rack_power_kw / _GB200_RACK.trays, 3), nvlink=_GB200_RACK,
    ),
    "gb300-nvl72": ServerModel(
        name="gb300-nvl72",
        description="GB300 NVL72 compute tray (2 Grace, 4 B300, 4x ConnectX-8 XDR 800G, BlueField-3); 18 trays and "
                    "9 NVLink switch trays make one 72-GPU rack",
        vendor_reference="NVIDIA NVL72 AI Factory Enterprise RA (compute tray: 4 ConnectX-8 HCAs on 2 mezzanine "
                         "boards, 1 M.2 OS drive, 4 E1.S NVMe); GB300 NVL72 data sheet",
        rack_units=1, cpu_model=_GRACE_CPU, sockets=2, cores_per_socket=72, threads_per_core=1, memory_gib=960,
        cpu_arch="aarch64", gpu=GPUS["gb300-288gb"], gpus=4, nvswitch=False,
        compute_hcas=(CX8_XDR,) * 4, storage_hcas=(), nvme_drives=4, nvme_drive_tb=3.84, gpu_socket=(0, 0, 1, 1),
        power_kw=round(_GB300_RACK.rack_power_kw / _GB300_RACK.trays, 3), nvlink=_GB300_RACK,
    ),
    "h100-4": ServerModel(
        name="h100-4",
        description="4x H100 SXM5 80GB server (HGX H100 4-GPU, NVLink without NVSwitch), 4x ConnectX-7 NDR",
        vendor_reference="NVIDIA HGX H100 4-GPU baseboard",
        rack_units=4, cpu_model="AMD EPYC 9454", sockets=2, cores_per_socket=48, threads_per_core=2,
        memory_gib=1024, gpu=GPUS["h100-sxm5-80gb"], gpus=4, nvswitch=False,
        compute_hcas=(CX7_NDR,) * 4, storage_hcas=(),
        nvme_drives=2, nvme_drive_tb=3.84, gpu_socket=(0, 0, 1, 1), power_kw=5.0,
    ),
    "cpu-1u": ServerModel(
        name="cpu-1u",
        description="1U dual-socket CPU server for controllers and services, 1x ConnectX-7 NDR200 for the fabric",
        vendor_reference="generic 1U dual-socket server",
        rack_units=1, cpu_model="Intel Xeon Gold 6430", sockets=2, cores_per_socket=32, threads_per_core=2,
        memory_gib=512, compute_hcas=(CX7_NDR200,), nvme_drives=2, nvme_drive_tb=1.92, power_kw=0.8,
    ),
    "cpu-2u": ServerModel(
        name="cpu-2u",
        description="2U dual-socket CPU server for login nodes, 1x ConnectX-7 NDR for the fabric",
        vendor_reference="generic 2U dual-socket server",
        rack_units=2, cpu_model="Intel Xeon Platinum 8462Y+", sockets=2, cores_per_socket=32, threads_per_core=2,
        memory_gib=1024, compute_hcas=(CX7_NDR,), nvme_drives=4, nvme_drive_tb=3.84, power_kw=1.2,
    ),
    "storage-2u": ServerModel(
        name="storage-2u",
        description="2U storage server (NFS or Lustre OSS/MDS), 2x ConnectX-7 NDR on the storage side",
        vendor_reference="generic 2U storage server with 24 NVMe bays",
        rack_units=2, cpu_model="AMD EPYC 9354", sockets=1, cores_per_socket=32, threads_per_core=2,
        memory_gib=768, storage_hcas=(CX7_NDR,) * 2, nvme_drives=24, nvme_drive_tb=15.36, power_kw=1.6,
    ),
}

SWITCHES: dict[str, SwitchModel] = {
    "qm9700": SwitchModel(
        name="qm9700", description="NVIDIA Quantum-2 QM9700, 64 NDR 400G ports in 32 twin-port OSFP cages, 1U",
        vendor_reference="NVIDIA Quantum-2 QM9700 series data sheet", rate="ndr", ports=64, cages=32,
        ports_per_cage=2, rack_units=1, split_rates={"ndr200": 128}, power_kw=1.7,
    ),
    "qm8700": SwitchModel(
        name="qm8700", description="NVIDIA Quantum QM8700, 40 HDR 200G QSFP56 ports, 1U",
        vendor_reference="NVIDIA Quantum QM8700 series data sheet", rate="hdr", ports=40, cages=40,
        ports_per_cage=1, rack_units=1, split_rates={}, power_kw=0.8,
    ),
    "q3400": SwitchModel(
        name="q3400", description="NVIDIA Quantum-X800 Q3400, 144 XDR 800G ports in 72 twin-port OSFP cages, 4U",
        vendor_reference="NVIDIA Quantum-X800 InfiniBand switch data sheet", rate="xdr", ports=144, cages=72,
        ports_per_cage=2, rack_units=4, split_rates={}, power_kw=6.0,
    ),
}
# Optics and cables per link rate, for the fabric bill of materials. A switch cage holds one twin-port transceiver
# (two links, or four when split; NVIDIA MMS4X00 / MMA4Z00 twin-port OSFP data sheets); a single-port HCA takes one
# transceiver per port. The default is the usual split: multimode (SR) for short host links inside a scalable unit,
# single-mode (DR) for the longer switch-to-switch runs; sites with other optics read bom.csv by tier.
@dataclass(frozen=True)
class Optics:
    switch_down: str  # twin-port transceiver in a switch cage facing hosts
    switch_up: str  # twin-port transceiver in a switch cage facing other switches
    hca: str  # transceiver on the host adapter
    host_cable: str
    switch_cable: str


OPTICS: dict[str, Optics] = {
    "ndr": Optics("OSFP 2x400G twin-port SR4 multimode (finned top)", "OSFP 2x400G twin-port DR4 single-mode",
                  "OSFP 400G SR4 multimode (flat top)", "MPO-12/APC multimode fibre", "MPO-12/APC single-mode fibre"),
    "ndr200": Optics("OSFP 2x400G twin-port SR4 multimode, each port split 2x200G",
                     "OSFP 2x400G twin-port DR4 single-mode", "OSFP/QSFP112 200G SR2 multimode",
                     "MPO-12/APC to 2x MPO-12/APC multimode splitter fibre", "MPO-12/APC single-mode fibre"),
    "hdr": Optics("QSFP56 200G SR4 multimode", "QSFP56 200G SR4 multimode", "QSFP56 200G SR4 multimode",
                  "MPO-12 multimode fibre", "MPO-12 multimode fibre"),
    "xdr": Optics("OSFP 2x800G twin-port DR4 single-mode", "OSFP 2x800G twin-port DR4 single-mode",
                  "OSFP 800G DR4 single-mode", "MPO-12/APC single-mode fibre", "MPO-12/APC single-mode fibre"),
}

# Host-side cages, kept apart from the server table: adapter ports per transceiver cage on the host, where a server
# carries more than one port in a cage. A DGX H100 brings its eight single-port ConnectX-7 out to four twin-port OSFP
# cages ("Four OSFP ports serving eight single-port NVIDIA ConnectX-7 VPI", NVIDIA DGX BasePOD RA, core components;
# DGX H100 User Guide, network modules table), and the DGX SuperPOD H100 RA counts 508 twin-port DGX transceivers for
# 127 systems plus 4 single-port ones for UFM at 4 SUs. The DGX B200 has the same four OSFP cages for eight ports.
# Models not listed take one transceiver per adapter port.
HOST_PORTS_PER_CAGE: dict[tuple[str, str], int] = {
    ("hgx-h100-8", "compute"): 2,
    ("hgx-b200-8", "compute"): 2,
}

# The transceiver a twin-port host cage takes, by link rate (flat top: the host cage has no riding heat sink).
HOST_TWIN_OPTICS: dict[str, str] = {
    "ndr": "OSFP 2x400G twin-port SR4 multimode (flat top)",
    "ndr200": "OSFP 2x400G twin-port SR4 multimode (flat top), each port at 200G",
    "xdr": "OSFP 2x800G twin-port DR4 single-mode (flat top)",
}


def host_ports_per_cage(model: str, fabric: str) -> int:
    return HOST_PORTS_PER_CAGE.get((model, fabric), 1)


# Quantum-X800 is better known by its family name; both resolve to the same switch.
SWITCH_ALIASES: dict[str, str] = {"quantum-x800": "q3400"}


def server(name: str) -> ServerModel:
    return SERVERS[name]


# --- models of a spec: catalog models with fields changed, or described in full ---------------------------------

HCA_MODELS: dict[str, str] = {"hdr": CX6_HDR.model, "ndr200": CX7_NDR200.model, "ndr": CX7_NDR.model,
                              "xdr": CX8_XDR.model}


class HardwareError(ValueError):
    """A spec's hardware fields that cannot make a model; ``where`` is the path below the fields' object."""

    def __init__(self, where: tuple, message: str, hint: str):
        super().__init__(message)
        self.where, self.message, self.hint = where, message, hint


def _even_sockets(gpus: int, sockets: int) -> tuple[int, ...]:
    """GPUs split evenly over the sockets in order (the first half on socket 0 of a two-socket server)."""
    return tuple(min(i * sockets // max(gpus, 1), sockets - 1) for i in range(gpus))


def _hcas(base: tuple[HCA, ...], devices: tuple[str, ...], raw: dict, kind: str) -> tuple[tuple[HCA, ...], tuple]:
    count = raw.get("count", len(base))
    proto = base[0] if base else None
    rate = raw.get("rate", proto.rate if proto else None)
    if count and rate is None:
        raise HardwareError((f"{kind}_hcas",), f"{kind} adapters without a rate", "add rate: ndr (or hdr, ndr200, xdr)")
    model = raw.get("model") or (proto.model if proto and proto.rate == rate else HCA_MODELS.get(rate or "", ""))
    hcas = (HCA(model, rate),) * count if count and rate is not None else ()  # rate is set when count is
    devs = tuple(raw["devices"]) if "devices" in raw else (devices if len(devices) == count else ())
    if devs and len(devs) != count:
        raise HardwareError((f"{kind}_hcas", "devices"),
                            f"{len(devs)} device name(s) for {count} {kind} adapter(s)",
                            f"list one RDMA device name per adapter ({count}), or set count to {len(devs)}")
    return hcas, devs


def apply_fields(base: ServerModel, name: str, raw: dict[str, Any]) -> ServerModel:
    """``base`` with the fields of a spec (schema: $defs/hardware_fields) changed. Raises HardwareError."""
    cpu = raw.get("cpu", {})
    gpu_raw = raw.get("gpu", {})
    gpu = base.gpu
    if "model" in gpu_raw:
        if gpu_raw["model"] not in GPUS:
            from gpucloud.findings import choices_hint

            raise HardwareError(("gpu", "model"), f"unknown GPU model {gpu_raw['model']!r}",
                                choices_hint(gpu_raw["model"], GPUS, "GPUs"))
        gpu = GPUS[gpu_raw["model"]]
    if "memory_gib" in gpu_raw:
        if gpu is None:
            raise HardwareError(("gpu", "memory_gib"), "GPU memory given but no GPU model",
                                "add gpu.model (a catalog GPU such as h100-sxm5-80gb)")
        gpu = replace(gpu, memory_gib=gpu_raw["memory_gib"])
    gpus = gpu_raw.get("count", base.gpus if gpu is not None else 0)
    if gpus and gpu is None:
        raise HardwareError(("gpu",), f"{gpus} GPUs but no GPU model", "add gpu.model (a catalog GPU)")
    sockets = cpu.get("sockets", base.sockets)
    if "sockets" in gpu_raw:
        gpu_socket = tuple(gpu_raw["sockets"])
    elif len(base.gpu_socket) == gpus and all(s < sockets for s in base.gpu_socket):
        gpu_socket = base.gpu_socket
    else:
        gpu_socket = _even_sockets(gpus, sockets)
    if len(gpu_socket) != gpus:
        raise HardwareError(("gpu", "sockets"), f"socket affinity for {len(gpu_socket)} GPU(s) but {gpus} GPUs",
                            f"list one CPU socket per GPU ({gpus} entries)")
    if any(s >= sockets for s in gpu_socket):
        raise HardwareError(("gpu", "sockets"), f"a GPU hangs off CPU socket {max(gpu_socket)} of a "
                            f"{sockets}-socket server", f"use sockets 0 to {sockets - 1}")
    compute, compute_devs = _hcas(base.compute_hcas, base.compute_devices, raw.get("compute_hcas", {}), "compute")
    storage, storage_devs = _hcas(base.storage_hcas, base.storage_devices, raw.get("storage_hcas", {}), "storage")
    nvme = raw.get("nvme", {})
    nvlink = base.nvlink
    if "nvlink" in raw:
        nv = raw["nvlink"]
        if nv is None:
            nvlink = None
        elif nvlink is None and not {"trays", "switch_trays", "rack_power_kw"} <= set(nv):
            raise HardwareError(("nvlink",), "rack-scale NVLink on a model without it needs every figure",
                                "give nvlink.trays, nvlink.switch_trays and nvlink.rack_power_kw (and nmx)")
        else:
            old = nvlink or NVLinkRack(0, 0, 0.0, False, "defined in the cluster spec")
            nvlink = replace(old, trays=nv.get("trays", old.trays), switch_trays=nv.get("switch_trays", old.switch_trays),
                             rack_power_kw=nv.get("rack_power_kw", old.rack_power_kw), nmx=nv.get("nmx", old.nmx))
    model = replace(
        base, name=name, description=raw.get("description", base.description),
        vendor_reference=raw.get("vendor_reference", base.vendor_reference),
        rack_units=raw.get("rack_units", base.rack_units), power_kw=raw.get("power_kw", base.power_kw),
        cpu_model=cpu.get("model", base.cpu_model), sockets=sockets,
        cores_per_socket=cpu.get("cores_per_socket", base.cores_per_socket),
        threads_per_core=cpu.get("threads_per_core", base.threads_per_core),
        memory_gib=raw.get("memory_gib", base.memory_gib), gpu=gpu if gpus else None, gpus=gpus,
        gpu_socket=gpu_socket, nvswitch=raw.get("nvswitch", base.nvswitch and gpus > 0),
        compute_hcas=compute, compute_devices=compute_devs, storage_hcas=storage, storage_devices=storage_devs,
        nvme_drives=nvme.get("drives", base.nvme_drives), nvme_drive_tb=nvme.get("drive_tb", base.nvme_drive_tb),
        nvme_first=nvme.get("first", base.nvme_first), nvlink=nvlink, cpu_arch=cpu.get("arch", base.cpu_arch),
    )
    taken = set(model.devices("compute")) & set(model.devices("storage"))
    if taken:
        raise HardwareError(("storage_hcas", "devices"),
                            f"device {sorted(taken)[0]} is named for a compute and a storage adapter",
                            "give every adapter its own RDMA device name")
    return model


# A model described in full starts from nothing; these are the fields it must set.
_BLANK = ServerModel(name="", description="", vendor_reference="defined in the cluster spec", rack_units=0,
                     cpu_model="", sockets=0, cores_per_socket=0, threads_per_core=1, memory_gib=0)
FULL_MODEL_FIELDS = (("rack_units",), ("memory_gib",), ("cpu", "sockets"), ("cpu", "cores_per_socket"))


def spec_model(name: str, raw: dict[str, Any], known: dict[str, ServerModel]) -> ServerModel:
    """A model of the spec's hardware.models: ``base`` (a catalog model or one in ``known``) with fields changed,
    or a model described in full. Raises HardwareError."""
    if name in SERVERS:
        raise HardwareError((), f"model {name!r} is already in the catalog",
                            f"give it another name (with base: {name}), or override fields on the pool")
    fields = {k: v for k, v in raw.items() if k != "base"}
    if "base" in raw:
        base = known.get(raw["base"]) or SERVERS.get(raw["base"])
        if base is None:
            from gpucloud.findings import choices_hint

            raise HardwareError(("base",), f"unknown base model {raw['base']!r}",
                                choices_hint(raw["base"], [*SERVERS, *known], "models"))
        return apply_fields(base, name, fields)
    missing = [".".join(f) for f in FULL_MODEL_FIELDS
               if (raw.get(f[0], {}).get(f[1]) if len(f) == 2 else raw.get(f[0])) is None]
    if missing:
        raise HardwareError((), f"model {name!r} has no base and lacks {', '.join(missing)}",
                            "set base: <a catalog model> to start from, or give every one of " +
                            ", ".join(".".join(f) for f in FULL_MODEL_FIELDS))
    return apply_fields(_BLANK, name, fields)


def model_fields(model: ServerModel) -> dict[str, Any]:
    """Every field of a model in the spec's shape (what hardware.models takes), for ``gpucloud catalog``."""
    def hcas(group: tuple[HCA, ...], devices: tuple[str, ...]) -> dict[str, Any]:
        return {"count": len(group), "rate": group[0].rate if group else None,
                "model": group[0].model if group else None, "devices": list(devices)}

    return {
        "name": model.name, "description": model.description, "vendor_reference": model.vendor_reference,
        "rack_units": model.rack_units, "power_kw": model.power_kw,
        "cpu": {"model": model.cpu_model, "sockets": model.sockets, "cores_per_socket": model.cores_per_socket,
                "threads_per_core": model.threads_per_core, "arch": model.cpu_arch},
        "memory_gib": model.memory_gib,
        "gpu": {"model": model.gpu.key or model.gpu.name if model.gpu else None,
                "memory_gib": model.gpu.memory_gib if model.gpu else None, "count": model.gpus,
                "sockets": list(model.gpu_socket)},
        "nvswitch": model.nvswitch,
        "compute_hcas": hcas(model.compute_hcas, model.devices("compute")),
        "storage_hcas": hcas(model.storage_hcas, model.devices("storage")),
        "nvme": {"drives": model.nvme_drives, "drive_tb": model.nvme_drive_tb, "first": model.nvme_first},
        "nvlink": None if model.nvlink is None else {
            "trays": model.nvlink.trays, "switch_trays": model.nvlink.switch_trays,
            "rack_power_kw": model.nvlink.rack_power_kw, "nmx": model.nvlink.nmx},
    }


def switch(name: str) -> SwitchModel:
    return SWITCHES[SWITCH_ALIASES.get(name, name)]


def switch_names() -> list[str]:
    return sorted([*SWITCHES, *SWITCH_ALIASES])
