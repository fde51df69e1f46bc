"""Records shared by the verify stages: one finding about one host, and one host's result."""

from __future__ import annotations

from dataclasses import dataclass, field

# How to fix each problem, by check id; reports show it once per group.
HINTS: dict[str, str] = {
    "unreachable": "check power, the management network and sshd on the node (or --address if it moved)",
    "timeout": "the node answered too slowly: a hung nvidia-smi or NFS mount is the usual cause; raise --timeout "
               "to tell a slow node from a hung one",
    "host-key-unknown": "get the key out of band (console, BMC or the provisioning log), check it, then add it to "
                        "the known_hosts file; verify never accepts a key by itself",
    "host-key-changed": "a reinstalled node gets a new key; if that is expected, check the new key out of band and "
                        "replace the node's line in known_hosts; otherwise treat it as an incident",
    "host-key-revoked": "the key is marked @revoked in known_hosts; the node must be rekeyed",
    "ssh-auth": "check --user and --key, and that the key is in the node's authorized_keys",
    "ssh-error": "see the detail; rerun with --limit on this host",
    "output-limit": "a collector printed without end: run its command on the node by hand (see the checks table)",
    "hostname": "the address answers as another machine: fix DNS, DHCP or the --address map",
    "collector": "install the tool (driver utilities, infiniband-diags, util-linux, iproute2) or fix its error",
    "gpu-count": "a missing GPU is usually off the bus (Xid 79) or unseated: reboot once, then open a hardware case",
    "gpu-model": "the node carries other GPUs than its pool's model: fix the spec's pool model or move the node",
    "gpu-memory": "memory differs from the model: check for MIG mode or a different GPU SKU",
    "gpu-driver": "install the driver version pinned in software.nvidia_driver",
    "package-missing": "converge the node (gpucloud converge); check software.repositories if apt cannot find it",
    "package-version": "converge the node to install the pinned version (a lower pin needs "
                       "-e gpucloud_allow_downgrade=true); check that no one pinned it by hand (apt-mark showhold)",
    "gpu-persistence": "enable persistence (nvidia-persistenced) so that jobs do not pay driver init time",
    "gpu-ecc-mode": "enable ECC (nvidia-smi -e 1) and reboot",
    "gpu-ecc-uncorrected": "drain the node; reset the GPU or reboot to trigger row remapping, and replace the GPU if "
                           "errors return",
    "nvlink-inactive": "drain the node; check the fabric manager service, then the baseboard",
    "hca-count": "an adapter is missing or not in InfiniBand mode: check mlxconfig LINK_TYPE and the PCIe slot",
    "ib-port-down": "check the cable and the switch port; Polling means no link partner, Down/LinkUp means no "
                    "subnet manager",
    "ib-rate": "the link came up below the planned rate: reseat or replace the cable or transceiver",
    "hca-firmware": "bring every adapter in the pool to one firmware version (mlxfwmanager)",
    "ipoib-missing": "configure the planned IPoIB address (see the generated inventory)",
    "ipoib-down": "bring the IPoIB interface up; its HCA port must be Active first",
    "ipoib-prefix": "use the planned rail prefix length",
    "kernel": "bring the node to the kernel its pool runs, or the pool to the new one",
    "mount-missing": "mount the filesystem (check the client service, LNet for Lustre, the server for NFS)",
    "mount-type": "the mount point holds another filesystem than planned",
    "mount-source": "the mount point is served from another server, export or filesystem than planned",
    "service": "start the daemon and check its log",
    "slurm-state": "see Reason; scontrol update nodename=... state=resume once the cause is fixed",
    "slurm-unknown": "the node is not in slurm.conf: deploy the generated Slurm configuration",
}

# Problems that are a difference from the cluster's own majority rather than from the spec.
WARNING_CHECKS = frozenset({"kernel", "hca-firmware"})


@dataclass(frozen=True, slots=True)
class HostFinding:
    host: str
    check: str
    message: str  # the same words for every host with this problem, so hosts group by it
    detail: str = ""  # this host's specifics (GPU index, address, error text)

    @property
    def level(self) -> str:
        return "warning" if self.check in WARNING_CHECKS else "error"

    @property
    def hint(self) -> str:
        return HINTS.get(self.check, "")

    def as_dict(self, address: str = "") -> dict:
        return {"host": self.host, "address": address, "check": self.check, "level": self.level,
                "message": self.message, "detail": self.detail, "hint": self.hint}


@dataclass
class HostResult:
    host: str
    pool: str
    address: str
    # ok: every collector ran; unreachable/refused/timeout: verify could not look at the node
    reached: str = "ok"
    findings: list[HostFinding] = field(default_factory=list)
    kernel: str | None = None
    firmware: tuple[str, ...] = ()  # sorted distinct HCA firmware versions

    @property
    def status(self) -> str:
        if self.reached != "ok":
            return self.reached
        if any(f.level == "error" for f in self.findings):
            return "nonconforming"
        return "warning" if self.findings else "conforming"
