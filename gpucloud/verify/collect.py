"""Run the read-only collectors on one host over SSH and split their output into sections.

One SSH session per host runs one POSIX shell script, so a host costs one connection and one round trip. Every
collector runs under ``timeout`` (a hung nvidia-smi is a classic failure, and must not take the whole host with
it) and is framed by marker lines on stdout and on stderr, so the sections survive tools that print nothing or do
not end their output with a newline. Nothing the script runs changes the node.
"""

from __future__ import annotations

import shlex
import socket
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from gpucloud.verify.expect import HostExpect, PoolExpect
from gpucloud.verify.parse import GPU_FIELDS

if TYPE_CHECKING:  # imported where it connects: planning commands never load paramiko
    import paramiko

MARK = "::gpucloud-verify::"
# What one host may send back, stdout and stderr together. A healthy HGX node sends tens of KiB; a collector that
# floods its output (a broken tool, a wrong PATH) must not fill verify's memory, which holds --parallel hosts at once.
MAX_OUTPUT = 16 * 1024 * 1024


@dataclass
class Section:
    out: str = ""
    err: str = ""
    rc: int | None = None  # None: the section never finished (host timed out)


@dataclass
class Collected:
    sections: dict[str, Section] = field(default_factory=dict)
    timed_out: bool = False


def collectors(pe: PoolExpect, node: str) -> list[tuple[str, str]]:
    """(section, command) pairs for a host of this pool. Only what the plan can judge is collected."""
    out = [("hostname", "hostname -s"), ("kernel", "uname -r")]
    if pe.gpus:
        out.append(("gpus", f"nvidia-smi --query-gpu={','.join(GPU_FIELDS)} --format=csv,noheader,nounits"))
        if pe.nvswitch:
            out.append(("nvlink", "nvidia-smi nvlink --status"))
    if pe.ports:
        out.append(("ibstat", "ibstat"))
        out.append(("ibstatus", "ibstatus"))
    if pe.ipoib_prefix is not None and pe.ports:
        out.append(("addresses", "ip -j addr show"))
    if pe.mounts:
        out.append(("mounts", "findmnt --json --list --output TARGET,SOURCE,FSTYPE"))
    for service in pe.services:
        out.append((f"service:{service}", f"pgrep -x {service}"))
    if pe.slurm_node:
        out.append(("slurm", f"scontrol show node -o {shlex.quote(node)}"))
    if pe.packages:
        # Exit 1 when a package is unknown to dpkg; the names it knows are still listed.
        out.append(("packages", "dpkg-query -W -f='${Package}\\t${Version}\\t${db:Status-Abbrev}\\n' "
                    + " ".join(shlex.quote(name) for name, _ in pe.packages)))
    return out


def script(pe: PoolExpect, node: str, collector_timeout: int) -> str:
    lines = [
        "LC_ALL=C; export LC_ALL",
        # ibstat and friends live in sbin, which non-login sessions may not have on their PATH.
        'PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"; export PATH',
        "if command -v timeout >/dev/null 2>&1; then T=\"timeout -k 2 %d\"; else T=; fi" % collector_timeout,
        "c() { n=$1; shift; printf '%sbegin %%s\\n' \"$n\"; printf '%sbegin %%s\\n' \"$n\" >&2; "
        "$T \"$@\" </dev/null; r=$?; printf '\\n%send %%s %%s\\n' \"$n\" \"$r\"; "
        "printf '\\n%send %%s\\n' \"$n\" >&2; }" % (MARK, MARK, MARK, MARK),
    ]
    for name, command in collectors(pe, node):
        lines.append(f"c {name} {command}")
    return "\n".join(lines) + "\n"


def split(stdout: str, stderr: str) -> dict[str, Section]:
    sections: dict[str, Section] = {}
    for stream, text in (("out", stdout), ("err", stderr)):
        name = None
        buf: list[str] = []
        for line in text.split("\n"):
            if line.startswith(MARK):
                words = line[len(MARK):].split()
                if len(words) >= 2 and words[0] == "begin":
                    name, buf = words[1], []
                elif len(words) >= 2 and words[0] == "end" and name == words[1]:
                    sec = sections.setdefault(name, Section())
                    body = "\n".join(buf)
                    # The end marker is preceded by a newline of our own; drop it.
                    setattr(sec, stream, body[:-1] if body.endswith("\n") else body)
                    if stream == "out" and len(words) >= 3 and words[2].lstrip("-").isdigit():
                        sec.rc = int(words[2])
                    name = None
                continue
            if name is not None:
                buf.append(line)
        if name is not None and stream == "out":  # cut off mid-section
            sections.setdefault(name, Section()).out = "\n".join(buf)
    return sections


@dataclass(frozen=True)
class SshOptions:
    user: str | None
    port: int
    timeout: float
    pkey: paramiko.PKey | None = None  # None: agent and ~/.ssh keys, as ssh would


class ConnectFailed(Exception):
    def __init__(self, check: str, detail: str):
        super().__init__(detail)
        self.check = check
        self.detail = detail


def _describe(exc: BaseException) -> str:
    text = (str(exc) or type(exc).__name__).replace("[Errno None] ", "")
    return " ".join(text.split())[:300]


def run_host(he: HostExpect, known, opts: SshOptions) -> Collected:
    """Connect with strict host-key checking, run the script, and return its sections.

    Raises ConnectFailed when the node could not be looked at (unreachable, refused key, auth, timeout before the
    script started)."""
    import paramiko

    from gpucloud.verify.known_hosts import HostKeyRefused, StrictPolicy, lookup_names

    deadline = time.monotonic() + opts.timeout
    names = lookup_names(he.address, he.name, opts.port, he.fqdn)
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(StrictPolicy(known, names))
    t = opts.timeout
    try:
        try:
            client.connect(
                he.address, port=opts.port, username=opts.user, pkey=opts.pkey, timeout=t, banner_timeout=t,
                auth_timeout=t, channel_timeout=t, allow_agent=opts.pkey is None, look_for_keys=opts.pkey is None,
                disabled_algorithms=known.disabled_algorithms(names) or None,
            )
        except HostKeyRefused as exc:
            raise ConnectFailed(exc.check, exc.detail) from None
        except paramiko.AuthenticationException as exc:
            raise ConnectFailed("ssh-auth", _describe(exc)) from None
        except (socket.timeout, TimeoutError) as exc:
            raise ConnectFailed("timeout", f"no SSH answer within {opts.timeout:g} s") from None
        except paramiko.SSHException as exc:
            # A server that never sends its banner surfaces as an unrelated error once the timeout has passed.
            if time.monotonic() >= deadline - 0.2 or "banner" in str(exc).lower():
                raise ConnectFailed("timeout", f"no SSH banner within {opts.timeout:g} s") from None
            raise ConnectFailed("ssh-error", _describe(exc)) from None
        except OSError as exc:
            raise ConnectFailed("unreachable", _describe(exc)) from None
        remaining = deadline - time.monotonic()
        collector_timeout = max(1, int(opts.timeout / 3))
        try:
            transport = client.get_transport()
            if transport is None:  # connect() returned, so it is there; an SSH error if not
                raise paramiko.SSHException("no transport after connecting")
            chan = transport.open_session(timeout=max(remaining, 0.1))
            chan.settimeout(max(remaining, 0.1))
            # The script goes in on stdin, so the login shell (bash, zsh, tcsh) never parses it; /bin/sh does.
            chan.exec_command("/bin/sh -s")
            chan.sendall(script(he.pool, he.name, collector_timeout).encode())
            chan.shutdown_write()
        except (paramiko.SSHException, OSError, socket.timeout) as exc:
            raise ConnectFailed("ssh-error", _describe(exc)) from None
        out, err, timed_out = _read(chan, deadline)
        return Collected(split(out, err), timed_out)
    except OutputTooLarge:
        raise ConnectFailed("output-limit", f"the host sent more than {MAX_OUTPUT // 2**20} MiB; verify stopped "
                                            "reading it") from None
    finally:
        client.close()


class OutputTooLarge(Exception):
    pass


def _read(chan, deadline: float, limit: int = MAX_OUTPUT) -> tuple[str, str, bool]:
    out: list[bytes] = []
    err: list[bytes] = []
    timed_out = False
    size = 0
    while True:
        if size > limit:
            raise OutputTooLarge()
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            timed_out = True
            break
        chan.settimeout(remaining)
        try:
            data = chan.recv(65536)
        except socket.timeout:
            timed_out = True
            break
        while chan.recv_stderr_ready() and size <= limit:
            err.append(chan.recv_stderr(65536))
            size += len(err[-1])
        if not data:
            break
        out.append(data)
        size += len(data)
    while chan.recv_stderr_ready():
        err.append(chan.recv_stderr(65536))
        size += len(err[-1])
        if size > limit:
            raise OutputTooLarge()
    return b"".join(out).decode("utf-8", "replace"), b"".join(err).decode("utf-8", "replace"), timed_out
