"""The Redfish dynamic provider: one RedfishNode resource per bare-metal node.

create   set a one-time PXE boot when the node has an image to install, power it on; where the plan has a
         provisioning server (input ``phone_home``, its URL for this node), read the node's phone-home record
         first and then wait, at most ``phone_home_timeout`` seconds, for the new install to report
         (gpucloud.stack.installwait), so the configuration layers that depend on the node run on an installed
         machine; read it back
read     power state, serial number, system UUID and MAC addresses, so `pulumi refresh` shows drift
diff     an image or BMC change replaces the node (power off, then PXE-install again); a node found powered
         off by refresh is an update that powers it on again
delete   power off
"""

from __future__ import annotations

from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, ReadResult, Resource
from pulumi.dynamic import ResourceProvider, UpdateResult

from gpucloud.stack.installwait import Waiter
from gpucloud.stack.redfish import Client, Target

# Inputs whose change means the node must be installed again (or is another machine).
REPLACE_KEYS = ("bmc", "system", "image")
REQUIRED = ("node", "bmc", "username", "password", "boot_target", "power")
OUTPUT_KEYS = ("power_state", "serial_number", "system_uuid", "mac_addresses", "system_uri")


def target(props: dict[str, Any]) -> Target:
    return Target(
        node=props["node"], bmc=props["bmc"], username=props["username"], password=props["password"],
        verify_tls=bool(props.get("verify_tls", True)), ca_bundle=props.get("ca_bundle") or "",
        system=props.get("system") or "",
        request_timeout=float(props.get("request_timeout", 30)),
        power_timeout=float(props.get("power_timeout", 300)), poll_interval=float(props.get("poll_interval", 5)),
    )


class RedfishNodeProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(k, f"{k} is required") for k in REQUIRED if news.get(k) in (None, "")]
        bmc = news.get("bmc") or ""
        if bmc and not bmc.startswith(("https://", "http://")):
            failures.append(CheckFailure("bmc", f"{bmc!r} is not an http(s) URL"))
        if news.get("power") not in (None, "On", "Off"):
            failures.append(CheckFailure("power", "power must be On or Off"))
        url = news.get("phone_home")
        if url and not str(url).startswith(("http://", "https://")):
            failures.append(CheckFailure("phone_home", f"{url!r} is not an http(s) URL"))
        timeout = news.get("phone_home_timeout")
        if url and (not isinstance(timeout, (int, float)) or timeout <= 0):
            failures.append(CheckFailure("phone_home_timeout", "phone_home_timeout must be a positive number"))
        return CheckResult(news, failures)

    @staticmethod
    def _waiter(props: dict[str, Any]) -> Waiter | None:
        """The phone-home wait of a node this create installs; None where nothing installs it or no server is
        planned (then the node is only powered on, as without provisioning)."""
        if not (props.get("image") and props.get("phone_home")):
            return None
        return Waiter(node=props["node"], bmc=props["bmc"], url=props["phone_home"],
                      timeout=float(props["phone_home_timeout"]), poll_interval=float(props.get("poll_interval", 5)))

    def _apply(self, props: dict[str, Any], install: bool) -> dict[str, Any]:
        client = Client(target(props))
        if install and props.get("image"):
            client.provision(props["boot_target"])
        elif props.get("power", "On") == "On":
            client.power_on()
        else:
            client.power_off()
        return {**props, **client.state()}

    def create(self, props: dict[str, Any]) -> CreateResult:
        waiter = self._waiter(props)
        # Read before the boot: an earlier install's report must not count, and a server that is down or does not
        # know the node fails here, before the BMC is touched.
        before = waiter.read() if waiter else None
        outs = self._apply(props, install=True)
        if waiter and before is not None:
            waiter.wait(before)
        return CreateResult(id_=f"{props['bmc'].rstrip('/')}{outs['system_uri']}", outs=outs)

    def read(self, id_: str, props: dict[str, Any]) -> ReadResult:
        return ReadResult(id_, {**props, **Client(target(props)).state()})

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = sorted(k for k in set(olds) | set(news)
                         if k not in OUTPUT_KEYS and k != "__provider" and olds.get(k) != news.get(k))
        replaces = [k for k in REPLACE_KEYS if k in changed]
        # Drift found by refresh: the node is not in the power state the stack wants.
        if olds.get("power_state") and olds.get("power_state") != news.get("power", "On"):
            changed.append("power_state")
        return DiffResult(changes=bool(changed), replaces=replaces, stables=["system_uri"],
                          delete_before_replace=True)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        return UpdateResult(outs=self._apply(news, install=False))

    def delete(self, _id: str, props: dict[str, Any]) -> None:
        Client(target(props)).power_off()


class RedfishNode(Resource, module="gpucloud", name="RedfishNode"):
    """A bare-metal node as its BMC sees it. Outputs: power_state, serial_number, mac_addresses, system_uri."""

    power_state: pulumi.Output[str]
    serial_number: pulumi.Output[str]
    system_uuid: pulumi.Output[str]
    mac_addresses: pulumi.Output[list]
    system_uri: pulumi.Output[str]

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        outputs = {k: None for k in OUTPUT_KEYS}
        secret = pulumi.ResourceOptions(additional_secret_outputs=["password"])
        super().__init__(RedfishNodeProvider(), name, {**outputs, **props}, pulumi.ResourceOptions.merge(secret, opts))
