"""Read each host's MACs from its BMC for the discovered-MAC file beside the spec (the command,
``gpucloud provision discover``, is ``gpucloud.commands.provision``).

The MACs are what the Redfish provider reads (``gpucloud.stack.redfish.Client.state``, the system's
EthernetInterfaces). A boot MAC the BMC no longer lists is a finding (``discovered-mac-changed``), and the record keeps
the old MAC until ``--accept-changes``: a replaced board is not installed until an operator says it is the machine
meant to be in that slot.
"""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterable

from gpucloud.checks.provisioning import mac_changes
from gpucloud.spec import discovered
from gpucloud.spec.model import HostHardware

PARALLEL = 32


def secret_env(secret: str) -> str:
    return "GPUCLOUD_SECRET_" + re.sub(r"[^A-Za-z0-9]", "_", secret).upper()


def merge(recorded: dict[str, HostHardware], reported: dict[str, list[str]], accept_changes: bool):
    """The new records and the change findings. Without ``accept_changes`` a changed host keeps its old record."""
    findings = mac_changes(recorded, reported)
    changed = {f.path[1] for f in findings}
    out = dict(recorded)
    for host, macs in reported.items():
        if host in changed and not accept_changes:
            continue
        rec = discovered.record(recorded.get(host), macs)
        if rec is not None:
            out[host] = rec
    return out, findings


def read_bmcs(hosts: Iterable, provider, password: str, read: Callable | None = None) -> tuple[dict, list[str]]:
    """{host: [MAC]} from every host's BMC, and one error line per BMC that failed."""
    from gpucloud.stack.redfish import Client, RedfishError, Target

    def one(h):
        target = Target(node=h.name, bmc=f"https://{h.bmc}", username=provider.username or "", password=password,
                        verify_tls=provider.verify_tls, ca_bundle=provider.ca_bundle or "")
        try:
            return h.name, (read or (lambda t: Client(t).state()["mac_addresses"]))(target), None
        except RedfishError as exc:
            return h.name, None, str(exc)

    reported, errors = {}, []
    with ThreadPoolExecutor(PARALLEL) as pool:
        for name, macs, err in pool.map(one, list(hosts)):
            if err:
                errors.append(err)
            else:
                reported[name] = macs
    return reported, errors
