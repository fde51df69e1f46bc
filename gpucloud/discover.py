"""``gpucloud provision discover``: read each host's MACs from its BMC into the discovered-MAC file beside the spec.

The MACs are what the Redfish provider reads (``gpucloud.stack.redfish.Client.state``, the system's
EthernetInterfaces). A boot MAC the BMC no longer lists is a finding (``discovered-mac-changed``), and the record keeps
the old MAC until ``--accept-changes``: a replaced board is not installed until an operator says it is the machine
meant to be in that slot.
"""

from __future__ import annotations

import os
import re
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
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


def run_cli(spec: Path, limit: list[str], accept_changes: bool, checked_or_exit, echo) -> int:
    from gpucloud.plan.hosts import plan_hosts

    checked = checked_or_exit(spec)
    s = checked.spec
    if s.provider.kind != "redfish" or not s.provider.password:
        echo(f"{spec}: discover reads the BMCs through Redfish; set provider.kind: redfish with a password secret")
        return 2
    password = os.environ.get(secret_env(s.provider.password))
    if not password:
        echo(f"set {secret_env(s.provider.password)} to the BMC password (secret {s.provider.password!r})")
        return 2
    hosts = [h for pp in plan_hosts(s) for h in pp.hosts if h.bmc and (not limit or h.name in limit)]
    unknown = sorted(set(limit) - {h.name for h in hosts})
    if unknown:
        echo(f"--limit names hosts the plan has no BMC for: {', '.join(unknown[:5])}")
        return 2
    reported, errors = read_bmcs(hosts, s.provider, password)
    records, findings = merge(dict(s.discovered), reported, accept_changes)
    target = discovered.path_beside(checked.loaded.file)
    discovered.write(target, s.name, records)
    for line in errors:
        echo(f"error: {line}")
    for f in findings:
        echo(f"warning: {f.message}; {f.hint}")
    echo(f"{target}: {len(records)} host(s) recorded, {len(reported)} read now, {len(errors)} BMC(s) failed")
    return 1 if errors or (findings and not accept_changes) else 0
