"""A small Redfish client for what provisioning needs: power, one-time boot override, and reading a system back.

Every error is a RedfishError that names the node and its BMC and says what to check, because an operator reading
a failed `pulumi up` over 1,000 nodes must know which BMC failed and why. BMCs apply power changes seconds after
they accept them, so every power change is followed by polling until the state is reached or a timeout passes.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import requests

SYSTEMS = "/redfish/v1/Systems"


class RedfishError(Exception):
    """A BMC refused, failed or could not be reached; the message names the node and the BMC."""


@dataclass(frozen=True)
class Target:
    node: str
    bmc: str  # base URL, e.g. https://10.17.0.5
    username: str
    password: str
    verify_tls: bool = True
    ca_bundle: str = ""  # path to a CA bundle the BMC certificates are checked against
    system: str = ""  # system path; empty: the BMC's only (or first) system
    request_timeout: float = 30.0
    power_timeout: float = 300.0
    poll_interval: float = 5.0


class Client:
    def __init__(self, target: Target):
        self.t = target
        self.base = target.bmc.rstrip("/")
        self.session = requests.Session()
        self.session.auth = (target.username, target.password)
        # Passed with every request: a session-level verify loses to REQUESTS_CA_BUNDLE in requests' merging.
        # verify_tls: false switches verification off, ca_bundle or not (the provider-tls check warns about it).
        self.verify: bool | str = (target.ca_bundle or True) if target.verify_tls else False
        self.session.headers.update({"Accept": "application/json", "OData-Version": "4.0"})
        self._system = target.system

    def _fail(self, what: str, hint: str = "") -> RedfishError:
        return RedfishError(f"node {self.t.node}: BMC {self.base}: {what}" + (f"; {hint}" if hint else ""))

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        url = self.base + path
        try:
            resp = self.session.request(method, url, json=body, timeout=self.t.request_timeout, verify=self.verify)
        except requests.exceptions.SSLError as exc:
            raise self._fail(f"TLS verification failed ({exc.__class__.__name__})",
                             "set provider.ca_bundle to the CA that signed the BMC certificates") from None
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise self._fail(f"unreachable ({exc.__class__.__name__})",
                             "check the BMC address, the out-of-band network and that the BMC is powered") from None
        if resp.status_code in (401, 403):
            raise self._fail(f"authentication failed (HTTP {resp.status_code} on {method} {path})",
                             "check provider.username and the BMC password secret")
        if resp.status_code >= 400:
            raise self._fail(f"{method} {path} failed with HTTP {resp.status_code}: {_message(resp)}")
        if resp.status_code == 204 or not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError:
            raise self._fail(f"{method} {path} returned something that is not JSON") from None

    @property
    def system_path(self) -> str:
        if not self._system:
            members = self.request("GET", SYSTEMS).get("Members", [])
            if not members:
                raise self._fail("the BMC lists no computer system under /redfish/v1/Systems")
            # A BMC of one server lists one system; with several, the first is the host (set `system` otherwise).
            self._system = members[0]["@odata.id"]
        return self._system

    def system(self) -> dict:
        return self.request("GET", self.system_path)

    def state(self) -> dict[str, Any]:
        """What the BMC says about the system now (refresh compares this with the stack's state)."""
        sysdoc = self.system()
        macs = []
        nics = sysdoc.get("EthernetInterfaces", {}).get("@odata.id")
        if nics:
            for member in self.request("GET", nics).get("Members", []):
                mac = self.request("GET", member["@odata.id"]).get("MACAddress")
                if mac:
                    macs.append(mac.lower())
        return {
            "power_state": sysdoc.get("PowerState", "Unknown"),
            "serial_number": sysdoc.get("SerialNumber") or "",
            "system_uuid": sysdoc.get("UUID") or "",
            "mac_addresses": sorted(macs),
            "system_uri": self.system_path,
        }

    def set_one_time_boot(self, target: str) -> None:
        boot = self.system().get("Boot", {})
        allowed = boot.get("BootSourceOverrideTarget@Redfish.AllowableValues")
        # Some BMCs accept any value and then boot from disk anyway; refuse what the BMC does not list.
        if allowed is not None and target not in allowed:
            raise self._fail(f"rejects boot target {target!r} (allowed: {', '.join(allowed)})",
                             "choose one of the allowed targets")
        self.request("PATCH", self.system_path,
                     {"Boot": {"BootSourceOverrideTarget": target, "BootSourceOverrideEnabled": "Once"}})

    def reset(self, reset_type: str) -> None:
        action = self.system().get("Actions", {}).get("#ComputerSystem.Reset", {})
        target = action.get("target", self.system_path + "/Actions/ComputerSystem.Reset")
        allowed = action.get("ResetType@Redfish.AllowableValues")
        if allowed is not None and reset_type not in allowed:
            raise self._fail(f"does not support reset type {reset_type!r} (allowed: {', '.join(allowed)})")
        self.request("POST", target, {"ResetType": reset_type})

    def wait_power(self, wanted: str) -> str:
        deadline = time.monotonic() + self.t.power_timeout
        state = self.system().get("PowerState")
        while state != wanted:
            if time.monotonic() >= deadline:
                raise self._fail(f"power state is still {state!r} {self.t.power_timeout:g} s after asking for "
                                 f"{wanted!r}", "check the BMC's event log; raise power_timeout for slow BMCs")
            time.sleep(self.t.poll_interval)
            state = self.system().get("PowerState")
        return state

    def power_on(self) -> None:
        if self.system().get("PowerState") != "On":
            self.reset("On")
        self.wait_power("On")

    def power_off(self) -> None:
        if self.system().get("PowerState") != "Off":
            self.reset("ForceOff")
        self.wait_power("Off")

    def provision(self, boot_target: str) -> None:
        """Boot once from ``boot_target`` (PXE) to (re)install the image, then leave the node on."""
        self.set_one_time_boot(boot_target)
        if self.system().get("PowerState") == "On":
            self.reset("ForceRestart")
        else:
            self.reset("On")
        self.wait_power("On")


def _message(resp: requests.Response) -> str:
    try:
        err = resp.json().get("error", {})
        extended = err.get("@Message.ExtendedInfo") or []
        if extended and isinstance(extended, list):
            return "; ".join(str(e.get("Message", "")) for e in extended if isinstance(e, dict)) or str(err)
        return str(err.get("message") or err or resp.text[:200])
    except ValueError:
        return resp.text[:200].strip() or resp.reason
