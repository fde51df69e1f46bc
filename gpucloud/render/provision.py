"""Provisioning files: the Kea DHCP configuration, iPXE scripts and the Ubuntu autoinstall seed of every host.

``provision/dhcp/kea-dhcp4.conf`` goes to the provisioning server's /etc/kea/; ``provision/server.json`` names that
server and ``provision/nodes.json`` the hosts whose phone-home it takes (the provisioner role reads both);
``provision/http/`` is the HTTP server's document root (the operator adds ``images/<image>/{vmlinuz,initrd,live.iso}``
and the iPXE binaries, see docs/provisioning.md). Every value written into YAML is JSON-quoted, so no host name, key
or URL can change the structure of a file.
"""

from __future__ import annotations

import json

from gpucloud.plan import Plan
from gpucloud.plan.provision import ProvisionPlan, Reservation

KEA = "provision/dhcp/kea-dhcp4.conf"
HTTP = "provision/http"
# Read by the provisioner role: which host runs the service, where, and the nodes the phone-home receiver accepts.
SERVER = "provision/server.json"
NODES = "provision/nodes.json"
LEASE_SECONDS = 86400
# Client architectures (DHCP option 93, RFC 4578): 0 BIOS, 7 and 9 x86-64 UEFI.
IPXE_USER_CLASS = "option[77].hex == 'iPXE'"


def script_name(mac: str) -> str:
    """The iPXE script of a MAC, as iPXE spells ``${netX/mac:hexhyp}``: 52-54-00-12-34-56.ipxe."""
    return mac.replace(":", "-") + ".ipxe"


def _classes(p: ProvisionPlan) -> list[dict]:
    # Every class starts with member('KNOWN'): only a client with a reservation is offered a boot file. The tests
    # exclude each other, so no two classes set boot-file-name for one client.
    known = "member('KNOWN')"
    not_ipxe = f"not ({IPXE_USER_CLASS})"
    http_client = "substring(option[60].hex,0,10) == 'HTTPClient'"
    return [
        {"name": "ipxe", "test": f"{known} and {IPXE_USER_CLASS}",
         "boot-file-name": f"{p.http_base}/ipxe/boot.ipxe"},
        {"name": "uefi-http-boot", "test": f"{known} and {not_ipxe} and {http_client}",
         "boot-file-name": f"{p.http_base}/ipxe/ipxe.efi",
         "option-data": [{"name": "vendor-class-identifier", "data": "HTTPClient"}]},
        {"name": "uefi-pxe", "test": f"{known} and {not_ipxe} and not ({http_client}) and "
                                     "(option[93].hex == 0x0007 or option[93].hex == 0x0009)",
         "next-server": p.server_address, "boot-file-name": "ipxe.efi"},
        {"name": "bios-pxe", "test": f"{known} and {not_ipxe} and option[93].hex == 0x0000",
         "next-server": p.server_address, "boot-file-name": "undionly.kpxe"},
    ]


def kea_config(p: ProvisionPlan) -> bytes:
    options = [{"name": "routers", "data": p.gateway}]
    if p.domain:
        options.append({"name": "domain-name", "data": p.domain})
    subnet = {
        "id": 1,
        "subnet": p.subnet,
        # No pools: an unknown MAC gets no address and no boot file. Every reservation is out of pool.
        "pools": [],
        "reservations-in-subnet": True,
        "reservations-out-of-pool": True,
        "option-data": options,
        "reservations": [],
    }
    conf = {"Dhcp4": {
        "interfaces-config": {"interfaces": ["*"], "dhcp-socket-type": "raw"},
        "lease-database": {"type": "memfile", "persist": True, "lfc-interval": 3600},
        "valid-lifetime": LEASE_SECONDS,
        "authoritative": True,
        "host-reservation-identifiers": ["hw-address"],
        "reservations-global": False,
        "client-classes": _classes(p),
        "subnet4": [subnet],
    }}
    text = json.dumps(conf, indent=1)
    # One reservation per line keeps a 12,500-host file short and its diffs one line per changed host.
    rows = ",\n".join(json.dumps({"hw-address": r.mac, "ip-address": r.address, "hostname": r.host})
                      for r in p.reservations)
    if rows:
        text = text.replace('"reservations": []', '"reservations": [\n' + rows + "\n    ]", 1)
    return (text + "\n").encode()


def boot_script(p: ProvisionPlan) -> bytes:
    return (
        "#!ipxe\n"
        "# Every known machine gets this script from DHCP; it chains the machine's own script by MAC.\n"
        "# A machine without a script has no install planned and boots on from its next device.\n"
        f"chain --autofree {p.http_base}/ipxe/${{netX/mac:hexhyp}}.ipxe || goto none\n"
        ":none\n"
        "echo gpucloud: no install planned for ${netX/mac}; record its MAC in the discovered-MAC file\n"
        "exit 1\n"
    ).encode()


def host_script(p: ProvisionPlan, r: Reservation, image: str) -> bytes:
    img = f"{p.http_base}/images/{image}"
    seed = f"{p.http_base}/install/{r.host}/"
    return (
        "#!ipxe\n"
        f"# {r.host}: pool {r.pool}, image {image}, management address {r.address}\n"
        f"kernel {img}/vmlinuz initrd=initrd ip=dhcp url={img}/live.iso autoinstall ds=nocloud-net;s={seed} "
        f"gpucloud.phone_home={p.phone_home_base}{r.host} ---\n"
        f"initrd --name initrd {img}/initrd\n"
        "boot\n"
    ).encode()


def _q(value) -> str:
    return json.dumps(value)


def user_data(p: ProvisionPlan, r: Reservation) -> bytes:
    fqdn = f"{r.host}.{p.domain}" if p.domain else r.host
    keys = [f"      - {_q(k)}" for k in p.ssh_keys]
    lines = [
        "#cloud-config",
        f"# {r.host}: Ubuntu autoinstall, rendered by gpucloud from the plan. The user-data section runs on the",
        "# installed system's first boot and posts its SSH host keys to the provisioning server.",
        "autoinstall:",
        "  version: 1",
        "  locale: en_US.UTF-8",
        "  keyboard: {layout: us}",
        "  refresh-installer: {update: false}",
        "  network:",
        "    version: 2",
        "    ethernets:",
        "      mgmt0:",
        f"        match: {{macaddress: {_q(r.mac)}}}",
        "        set-name: mgmt0",
        f"        addresses: [{_q(f'{r.address}/{p.prefix}')}]",
        f"        routes: [{{to: default, via: {_q(p.gateway)}}}]",
        "  storage:",
        f"    layout: {{name: lvm, match: {{size: {p.disk}}}}}",
        "  apt:",
        f"    primary: [{{arches: [default], uri: {_q(p.mirror)}}}]",
        "  ssh:",
        "    install-server: true",
        "    allow-pw: false",
        "    authorized-keys:" + ("" if keys else " []"),
        *keys,
        "  user-data:",
        f"    hostname: {_q(r.host)}",
        f"    fqdn: {_q(fqdn)}",
        "    prefer_fqdn_over_hostname: false",
        "    disable_root: false",
        "    ssh_pwauth: false",
        "    ssh_authorized_keys:" + ("" if keys else " []"),
        *keys,
        "    phone_home:",
        f"      url: {_q(p.phone_home_base + r.host)}",
        "      post: [pub_key_ed25519, pub_key_ecdsa, pub_key_rsa, hostname, fqdn, instance_id]",
        "      tries: 10",
    ]
    return ("\n".join(lines) + "\n").encode()


def meta_data(cluster: str, r: Reservation) -> bytes:
    return f"instance-id: {_q(f'gpucloud-{cluster}-{r.host}')}\nlocal-hostname: {_q(r.host)}\n".encode()


def server_file(p: ProvisionPlan) -> bytes:
    return (json.dumps({"host": p.server, "address": p.server_address, "http_port": p.http_port}, indent=1,
                       sort_keys=True) + "\n").encode()


def nodes_file(p: ProvisionPlan) -> bytes:
    """The phone-home receiver's nodes (``gpucloud.phonehome.load_nodes``): name, planned address, FQDN; one a line."""
    rows = ",\n".join(f" {json.dumps(r.host)}: " + json.dumps(
        {"address": r.address, "fqdn": f"{r.host}.{p.domain}" if p.domain else None}, sort_keys=True)
        for r in p.reservations)
    return ("{\n" + rows + ("\n" if rows else "") + "}\n").encode()


def render(plan: Plan) -> dict[str, bytes]:
    p = plan.provision
    if p is None:
        return {}
    images = {pi.pool: pi.image for pi in p.pools}
    files = {KEA: kea_config(p), SERVER: server_file(p), NODES: nodes_file(p),
             f"{HTTP}/ipxe/boot.ipxe": boot_script(p)}
    cluster = plan.spec.name
    for r in p.reservations:
        files[f"{HTTP}/ipxe/{script_name(r.mac)}"] = host_script(p, r, images[r.pool])
        files[f"{HTTP}/install/{r.host}/user-data"] = user_data(p, r)
        files[f"{HTTP}/install/{r.host}/meta-data"] = meta_data(cluster, r)
    return files
