"""Provisioning planner: from a powered-on bare machine to an installed node that answers SSH.

The model (docs/provisioning.md has the walk-through):

* the service runs on the first host of the first pool (by id) with the ``provisioner`` role, on its management
  address: a DHCP server (Kea), an HTTP server for iPXE scripts, kernels, initrds and install data, and the
  phone-home receiver. No pool with the role: nothing is planned;
* one DHCP reservation per host (the server itself excepted: it is installed by hand) whose MAC is recorded in the discovered-hardware file beside the spec
  (``gpucloud.spec.discovered``): that MAC, the host's planned management address and its name. The subnet has no
  dynamic pool, so a machine whose MAC is not recorded gets no address and no boot file: nothing installs on a
  machine the plan does not know;
* the firmware loads iPXE (Debian's ``ipxe`` package: ``ipxe.efi`` by UEFI HTTP boot, or ``ipxe.efi`` /
  ``undionly.kpxe`` by PXE where the firmware has no HTTP boot); iPXE asks again, is recognised by its user class
  (DHCP option 77 = ``iPXE``), and is given ``boot.ipxe``, which chains the host's own script by MAC. Kernel,
  initrd and install data then come over HTTP (reliable and fast for 500 MB, where TFTP is neither);
* each host's script boots its pool image's kernel and initrd with Ubuntu's autoinstall pointed at its own
  NoCloud seed (``install/<host>/``): disk layout, the planned address, host name, the operators' SSH keys, the
  package mirror, and a phone-home that posts the installed system's SSH host keys, which become the known_hosts
  lines converge and verify check;
* the Redfish node resource that PXE-boots a host with a reservation waits for that phone-home (at most
  ``phone_home_timeout`` seconds) before the configuration layers run. The server (installed by hand) and hosts
  without a recorded MAC have no install planned, so nothing waits for them.

Only hosts on the management network are provisioned. The plan holds names and numbers only; the renderer writes
the files.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

from gpucloud.plan.hosts import PoolPlan, gateway
from gpucloud.spec.model import Spec

ROLE = "provisioner"
# Kernel and initrd of a pool's image, as the operator unpacks them under images/<image>/ (docs/provisioning.md).
DEFAULT_IMAGE = "ubuntu-22.04"


@dataclass(frozen=True, slots=True)
class Reservation:
    host: str
    pool: str
    mac: str
    address: str


@dataclass(frozen=True)
class PoolInstall:
    pool: str
    image: str
    hosts: tuple[str, ...]  # the pool's hosts with a recorded MAC


@dataclass(frozen=True)
class ProvisionPlan:
    server: str  # host name of the provisioning server
    server_address: str
    http_port: int
    subnet: str  # the management network, CIDR
    prefix: int
    gateway: str
    domain: str | None
    mirror: str
    ssh_keys: tuple[str, ...]
    disk: str
    reservations: tuple[Reservation, ...]  # ordered by pool id, then host position
    pools: tuple[PoolInstall, ...]
    unrecorded: int  # hosts on the management network without a recorded MAC: they get no install
    phone_home_timeout: int = 3600  # seconds a PXE-booted node's resource waits for its phone-home

    @property
    def http_base(self) -> str:
        return f"http://{self.server_address}:{self.http_port}"

    @property
    def phone_home_base(self) -> str:
        """The receiver's URL without the host name: ``<base><host>`` is where a host posts, and where its record is
        read (gpucloud.phonehome)."""
        return f"{self.http_base}/phone-home/"

    @cached_property
    def installed(self) -> frozenset[str]:
        """The hosts with a reservation: those the service installs (the server and unrecorded hosts are not)."""
        return frozenset(r.host for r in self.reservations)


def plan_provision(spec: Spec, pools: tuple[PoolPlan, ...]) -> ProvisionPlan | None:
    mgmt = spec.networks.get("management")
    servers = sorted((p for p in pools if ROLE in p.pool.roles and p.hosts), key=lambda p: p.pool.id)
    server = servers[0].hosts[0] if servers else None
    if mgmt is None or server is None or server.management is None:
        return None  # checks.provisioning reports a provisioner role without a management network
    hardware = spec.discovered
    reservations: list[Reservation] = []
    installs: list[PoolInstall] = []
    unrecorded = 0
    for pp in sorted(pools, key=lambda p: p.pool.id):
        names = []
        for h in pp.hosts:
            if h is server:
                continue  # installed by hand (BMC virtual media): it cannot boot from its own service
            rec = hardware.get(h.name)
            if h.management is None:
                continue  # not reached: with a management network every host has an address on it
            if rec is None:
                unrecorded += 1
                continue
            reservations.append(Reservation(host=h.name, pool=h.pool, mac=rec.mac, address=h.management))
            names.append(h.name)
        installs.append(PoolInstall(pool=pp.pool.name, image=pp.pool.image or DEFAULT_IMAGE, hosts=tuple(names)))
    inst = spec.provisioning
    return ProvisionPlan(
        server=server.name, server_address=server.management, http_port=inst.http_port, subnet=str(mgmt.cidr),
        prefix=mgmt.cidr.prefixlen, gateway=gateway(mgmt), domain=mgmt.domain, mirror=inst.mirror,
        ssh_keys=inst.ssh_keys, disk=inst.disk, reservations=tuple(reservations), pools=tuple(installs),
        unrecorded=unrecorded, phone_home_timeout=inst.phone_home_timeout)
