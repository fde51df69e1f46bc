"""Checks: the provisioning service and the discovered hardware (MAC addresses) it installs from."""

from __future__ import annotations

from gpucloud.checks import check
from gpucloud.findings import Finding
from gpucloud.plan.provision import ROLE
from gpucloud.spec.model import HostHardware


def _planned_names(spec) -> set[str]:
    names: set[str] = set()
    for pool in spec.pools:
        names.update(pool.hostname_for(i) for i in pool.indices if i not in pool.exclude)
    return names


@check("provisioning-server")
def server(spec):
    """One install service per cluster; SSH keys with no service to install them."""
    pools = spec.pools_with_role(ROLE)
    if len(pools) > 1:
        first = min(pools, key=lambda p: p.id)
        other = next(p for p in pools if p is not first)
        yield Finding("provisioning-server", "warning", other.path + ("roles",),
                      f"{len(pools)} pools have the {ROLE} role; only the first host of pool {first.name} serves",
                      f"keep the {ROLE} role on one pool")
    if not pools and spec.provisioning.ssh_keys:
        yield Finding("provisioning-server", "warning", ("provisioning",),
                      f"provisioning is configured but no pool has the {ROLE} role, so nothing is installed",
                      f"add {ROLE} to the roles of the pool that runs the install service")


# An unattended Ubuntu server install from a mirror takes 10-30 minutes (more with a GPU driver build); a shorter wait
# fails nodes that are only slow.
SHORT_PHONE_HOME = 600


@check("provisioning-phone-home-timeout")
def phone_home_timeout(spec):
    """A phone-home wait too short for an unattended install: apply would fail nodes that are only slow."""
    t = spec.provisioning.phone_home_timeout
    if spec.pools_with_role(ROLE) and t < SHORT_PHONE_HOME:
        yield Finding("provisioning-phone-home-timeout", "warning", ("provisioning", "phone_home_timeout"),
                      f"apply waits only {t} s for a PXE-booted node to phone home; an unattended install takes "
                      "10-30 minutes, so nodes that are only slow would fail",
                      f"leave phone_home_timeout out (3600 s) or set it to at least {SHORT_PHONE_HOME}")


@check("discovered-unknown-host")
def unknown_hosts(spec):
    """A host in the discovered-MAC file that the spec does not plan (renamed, excluded or removed)."""
    if not spec.discovered:
        return
    extra = sorted(set(spec.discovered) - _planned_names(spec))
    if extra:
        shown = ", ".join(extra[:5]) + (f" and {len(extra) - 5} more" if len(extra) > 5 else "")
        yield Finding("discovered-unknown-host", "warning", ("node_pools",),
                      f"the discovered-MAC file records {len(extra)} host(s) the spec does not plan: {shown}",
                      "remove them from the discovered-MAC file, or run gpucloud discover again")


@check("discovered-duplicate-mac")
def duplicate_macs(spec):
    """Two hosts that boot from one MAC: DHCP cannot tell them apart (and Kea refuses the configuration)."""
    owner: dict[str, str] = {}
    for host in sorted(spec.discovered):
        mac = spec.discovered[host].mac
        if mac in owner:
            yield Finding("discovered-duplicate-mac", "error", ("node_pools",),
                          f"hosts {owner[mac]} and {host} both boot from MAC {mac} in the discovered-MAC file",
                          "correct the mac of one of them (its BMC lists its own ports)")
        else:
            owner[mac] = host


def mac_changes(recorded: dict[str, HostHardware], reported: dict[str, list[str]]) -> list[Finding]:
    """Hosts whose BMC no longer lists the boot MAC on record: a swapped board or NIC (or the wrong BMC address).

    The new MAC gets no install until the record is updated, which is the point: an operator confirms that the
    machine in the slot is the one meant before it is wiped.
    """
    out = []
    for host in sorted(set(recorded) & set(reported)):
        now = sorted({m.strip().lower().replace("-", ":") for m in reported[host]})
        if now and recorded[host].mac not in now:
            out.append(Finding(
                "discovered-mac-changed", "warning", ("discovered", host),
                f"host {host}: its BMC reports MACs {', '.join(now)}, not the recorded {recorded[host].mac}",
                "if the board was replaced, run gpucloud discover --accept-changes to record it; otherwise check "
                "the host's BMC address"))
    return out
