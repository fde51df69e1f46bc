"""Waiting for a PXE-booted node's install to phone home, so the configuration layers never run on a half-installed
machine.

The provisioning server (gpucloud.phonehome) answers ``GET /phone-home/<host>`` with how many reports it has taken
for the host and when the latest came. The Redfish node resource reads that record before it sets the one-time PXE
boot (``read``: an unreachable server or a host it does not know fails there, before any power change), then polls
until the record moves (``wait``): a report the server already had before the boot is an old install, not this one.
A server restarted meanwhile starts again from no reports, so a changed record counts only with a report in it.

Every error names the node, its BMC and the URL, and says what to check.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Callable

import requests

REQUEST_TIMEOUT = 10.0


class InstallWaitError(Exception):
    """No phone-home could be read or none arrived in time; the message names the node, its BMC and the URL.
    ``what``: the problem alone; ``final``: polling again cannot help (the server does not know the node)."""

    def __init__(self, message: str, what: str, final: bool):
        super().__init__(message)
        self.what = what
        self.final = final


@dataclass(frozen=True)
class Record:
    reports: int
    last: str | None
    fingerprints: tuple[str, ...] = ()

    def newer_than(self, before: Record) -> bool:
        return self.reports > 0 and (self.reports, self.last) != (before.reports, before.last)


@dataclass(frozen=True)
class Waiter:
    node: str
    bmc: str
    url: str
    timeout: float
    poll_interval: float = 5.0
    request_timeout: float = REQUEST_TIMEOUT

    def _fail(self, what: str, hint: str, final: bool = False) -> InstallWaitError:
        return InstallWaitError(f"node {self.node}: BMC {self.bmc}: phone-home {self.url}: {what}; {hint}", what,
                                final)

    def read(self) -> Record:
        """The server's record of the node now. Raises InstallWaitError when it cannot be read."""
        try:
            resp = requests.get(self.url, timeout=self.request_timeout, headers={"Accept": "application/json"})
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as exc:
            raise self._fail(f"the provisioning server does not answer ({exc.__class__.__name__})",
                             "start it (the provisioner role, or `gpucloud provision serve`) on its planned address "
                             "and port, and check that this machine reaches the management network") from None
        if resp.status_code == 404:
            raise self._fail("the provisioning server plans no install for this node",
                             "record its MAC (`gpucloud provision discover`), plan again and give the server the "
                             "new provision/nodes.json (the provisioner role restarts it)", final=True)
        if resp.status_code != 200:
            raise self._fail(f"the provisioning server answered HTTP {resp.status_code}",
                             "check that the URL is the provisioning server's (provisioning.http_port) and its log")
        try:
            data: Any = resp.json()
            return Record(reports=int(data["reports"]), last=data.get("last"),
                          fingerprints=tuple(data.get("fingerprints") or ()))
        except (ValueError, KeyError, TypeError):
            raise self._fail("the answer is not a phone-home record",
                             "check that the URL is the provisioning server's (gpucloud/phonehome.py)") from None

    def wait(self, before: Record, clock: Callable[[], float] = time.monotonic,
             sleep: Callable[[float], None] = time.sleep) -> Record:
        """Poll until the record moves past ``before``, at most ``timeout`` seconds. A server that stops answering
        for a while (a restart) is polled on; one that stops knowing the node fails at once."""
        deadline = clock() + self.timeout
        problem = ""
        while True:
            try:
                now = self.read()
                problem = ""
                if now.newer_than(before):
                    return now
            except InstallWaitError as exc:
                if exc.final:
                    raise
                problem = exc.what
            if clock() >= deadline:
                last = f" (the last poll: {problem})" if problem else ""
                raise self._fail(
                    f"no report {self.timeout:g} s after the PXE boot{last}",
                    "the install did not finish or could not post: watch the node's console through its BMC, check "
                    "the DHCP server's log for its MAC and the provisioning server's log for its kernel, initrd and "
                    "seed, or raise provisioning.phone_home_timeout if installs are only slow")
            sleep(min(self.poll_interval, max(0.0, deadline - clock())))
