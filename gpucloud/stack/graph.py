"""Names and inputs of every resource, shared by the components and the fast dry-run. No Pulumi import; the one
file read is the layers' Ansible sources (gpucloud.stack.sources), hashed into their triggers.

The components (gpucloud.stack.components) build their children's names and inputs with these functions, and
``stack_graph`` walks the same structure without the Pulumi SDK, emulating what the SDK records (protect inherited
from the parent, depends_on on a component expanded to its custom-resource descendants, secrets as [secret]). The
dry-run checks the two against each other under set_mocks (see
gpucloud.stack.dryrun), so a difference is a failed plan, not a silent lie.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CLUSTER = "gpucloud:cluster:Cluster"
CONTROL = "gpucloud:control:ControlPlane"
POOL = "gpucloud:compute:NodePool"
NODE = "gpucloud:metal:BareMetalNode"
STORAGE = "gpucloud:storage:Storage"
FILESYSTEM = "gpucloud:storage:Filesystem"
LAYERS = "gpucloud:config:ConfigurationLayers"
REDFISH = "pulumi-python:dynamic/gpucloud:RedfishNode"
COMMAND = "pulumi-python:dynamic/gpucloud:LayerCommand"
SECRET = "[secret]"
BOOT_TARGET = "Pxe"
POWER_TIMEOUT = 300
POLL_INTERVAL = 5
LAYER_ENV = {"ANSIBLE_FORCE_COLOR": "0"}
# Pulumi runs a program whose `main` is a folder from that folder (infra/), and its providers too: the playbooks and
# the inventory are one level up. Relative, so the inputs are the same in every checkout and in the dry-run.
LAYER_DIR = ".."
REDFISH_OUTPUTS = ("power_state", "serial_number", "system_uuid", "mac_addresses", "system_uri")


def pool_name(pool: str) -> str:
    return f"pool-{pool}"


def redfish_name(host: str) -> str:
    return f"{host}-bmc"


def pool_inputs(name: str, model: str, image: str | None, roles, hosts: int) -> dict[str, Any]:
    return {"pool": name, "model": model, "image": image, "roles": list(roles), "hosts": hosts}


def node_inputs(hostname: str, image: str | None) -> dict[str, Any]:
    return {"hostname": hostname, "image": image}


@dataclass(frozen=True)
class PhoneHome:
    """The stack input's ``phone_home``: the receiver's base URL, the wait, and the stack's hosts it installs."""

    base: str
    timeout: int
    hosts: frozenset[str]
    server: str = ""  # the provisioning server: installed by hand, so its BMC never PXE-boots it

    @classmethod
    def of(cls, raw: dict[str, Any] | None) -> PhoneHome | None:
        return cls(raw["base"], raw["timeout"], frozenset(raw["hosts"]), raw.get("server", "")) if raw else None

    def boot_image(self, host: str, image: str | None) -> str | None:
        """The image the node resource installs: none on the provisioning server, which nothing could install (a
        PXE boot would only restart it while the other nodes' installs need it)."""
        return None if host == self.server else image

    def wait(self, host: str, image: str | None) -> tuple[str | None, int | None]:
        """(URL, timeout) of the phone-home a PXE-booted ``host`` waits for; (None, None) where nothing installs it:
        no image, or no install planned (the provisioning server itself, a host without a recorded MAC)."""
        if not image or host not in self.hosts:
            return None, None
        return self.base + host, self.timeout


def boot_image(ph: PhoneHome | None, host: str, image: str | None) -> str | None:
    """``ph.boot_image(host, image)``, or the pool's image where the plan has no provisioning server."""
    return ph.boot_image(host, image) if ph is not None else image


def phone_home(ph: PhoneHome | None, host: str, image: str | None) -> tuple[str | None, int | None]:
    """``ph.wait(host, image)``, or (None, None) where the plan has no provisioning server."""
    return ph.wait(host, image) if ph is not None else (None, None)


def redfish_inputs(hostname: str, bmc: str, image: str | None, username: str | None, password: Any,
                   verify_tls: bool, ca_bundle: str | None, phone_home_url: str | None = None,
                   phone_home_timeout: int | None = None) -> dict[str, Any]:
    return {
        "node": hostname, "bmc": f"https://{bmc}", "system": "", "username": username or "", "password": password,
        "image": image or "", "boot_target": BOOT_TARGET, "power": "On", "verify_tls": verify_tls,
        "ca_bundle": ca_bundle or "", "power_timeout": POWER_TIMEOUT, "poll_interval": POLL_INTERVAL,
        "phone_home": phone_home_url, "phone_home_timeout": phone_home_timeout,
    }


def filesystem_inputs(fs: dict[str, Any]) -> dict[str, Any]:
    return {"name": fs["name"], "kind": fs["kind"], "mount": fs["mount"], "capacity": fs["capacity"],
            "pools": fs["pools"], "settings": fs["settings"]}


def layer_command(inventory: str, playbook: str, limit: str | None) -> str:
    cmd = f"ansible-playbook -i {inventory} {playbook}"
    return cmd + (f" --limit {limit}" if limit else "")


def layer_inputs(cmd: str, trigger: str, playbook: str) -> dict[str, Any]:
    """A layer's command. Its triggers: the plan's (rendered files, versions, hosts) and the digest of the playbook
    and roles it runs (gpucloud.stack.sources), so a role change re-runs the layers that use it."""
    from gpucloud.stack import sources

    return {"create": cmd, "update": cmd, "triggers": [trigger, sources.digest(playbook)], "dir": LAYER_DIR,
            "environment": dict(LAYER_ENV)}


def plan_path(cluster: str) -> str:
    """Where the Pulumi program writes the cluster's plan before the layers run (as `gpucloud plan --out` would)."""
    return f"plans/{cluster}"


def inventory_path(cluster: str) -> str:
    # The plan folder's own inventory: its gpucloud_plan_dir ({{ inventory_dir }}/..) is the plan folder, where the
    # roles find slurm/, fabric/ and storage/. inventory/<cluster>/ in the repository holds no such files.
    return f"{plan_path(cluster)}/inventory/hosts.yml"


def pool_kind(raw: dict[str, Any]) -> str:
    return "control" if raw["control"] else "storage" if raw["storage_server"] else "compute"


def stack_graph(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Every resource the program declares for one stack input, as the dry-run records it (before normalising)."""
    out: list[dict[str, Any]] = []
    redfish: dict[str, list[str]] = {}  # component name -> custom-resource descendants

    def add(name, typ, parent, inputs, protect=False, deps=(), options=None):
        rec = {"name": name, "type": typ, "parent": parent, "protect": protect, "dependencies": sorted(deps),
               "inputs": inputs}
        if options:
            rec["options"] = options
        out.append(rec)

    prov = data["provider"]
    ph = PhoneHome.of(data.get("phone_home"))

    def pool(raw, parent, ancestors):
        pname = pool_name(raw["name"])
        add(pname, POOL, parent, pool_inputs(raw["name"], raw["model"], raw["image"], raw["roles"],
                                             len(raw["hosts"])))
        protect = raw["protect"]
        for host, bmc in raw["hosts"]:
            add(host, NODE, pname, node_inputs(host, raw["image"]), protect)
            if prov["kind"] == "redfish" and bmc:
                rname = redfish_name(host)
                image = boot_image(ph, host, raw["image"])
                inputs = redfish_inputs(host, bmc, image, prov["username"], SECRET, prov["verify_tls"],
                                        prov["ca_bundle"], *phone_home(ph, host, image))
                add(rname, REDFISH, host, {**{k: None for k in REDFISH_OUTPUTS}, **inputs}, protect,
                    options={"additional_secret_outputs": ["password"]})
                for a in (*ancestors, pname):
                    redfish.setdefault(a, []).append(rname)

    stack = data["stack"]
    add(stack, CLUSTER, None, {"cluster": data["cluster"], "part": data["part"]})
    kinds = [pool_kind(raw) for raw in data["pools"]]
    after: list[str] = []
    control = [raw for raw, k in zip(data["pools"], kinds) if k == "control"]
    if control:
        cname = f"{stack}-control"
        add(cname, CONTROL, stack, {"pools": [raw["name"] for raw in control]})
        for raw in control:
            pool(raw, cname, (cname,))
        after.append(cname)
    servers = [raw for raw, k in zip(data["pools"], kinds) if k == "storage"]
    if data["storage"] or servers:
        sname = f"{stack}-storage"
        add(sname, STORAGE, stack, {"filesystems": [f["name"] for f in data["storage"]]})
        for fs in data["storage"]:
            add(f"{sname}-{fs['name']}", FILESYSTEM, sname, filesystem_inputs(fs), True)
        for raw in servers:
            pool(raw, sname, (sname,))
        after.append(sname)
    for raw, k in zip(data["pools"], kinds):
        if k == "compute":
            pool(raw, stack, ())
            after.append(pool_name(raw["name"]))
    lname = f"{stack}-layers"
    inventory = inventory_path(data["cluster"])
    add(lname, LAYERS, stack, {"inventory": inventory, "layers": [x["name"] for x in data["layers"]]})
    previous = [r for a in after for r in redfish.get(a, ())]
    for layer in data["layers"]:
        cmd = layer_command(inventory, layer["playbook"], layer["limit"])
        name = f"{lname}-{layer['name']}"
        add(name, COMMAND, lname, layer_inputs(cmd, layer["trigger"], layer["playbook"]), deps=previous)
        previous = [name]
    return out
