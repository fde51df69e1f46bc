"""Strict host-key checking against one OpenSSH known_hosts file.

The file is read once and indexed by name, so checking 10,000 hosts costs one pass over it (paramiko's own
``HostKeys.lookup`` scans every line per host). A host is looked up under its address and its planned name (with
``[name]:port`` for ports other than 22, as OpenSSH writes them); hashed names are matched too. An unknown key or a
changed key is refused; nothing is ever added to the file.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path

import paramiko
from paramiko.hostkeys import HostKeyEntry, HostKeys

# Host key algorithms paramiko may negotiate for each key type known_hosts stores.
_ALGORITHMS = {
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
    "ssh-ed25519": ("ssh-ed25519",),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
    "ssh-dss": ("ssh-dss",),
}
ALL_ALGORITHMS = tuple(a for algs in _ALGORITHMS.values() for a in algs)


class KnownHostsError(Exception):
    """The file cannot be used at all (missing, unreadable, past the input limits); a user mistake, reported with
    exit code 2."""

    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.hint = hint


class HostKeyRefused(paramiko.SSHException):
    def __init__(self, check: str, detail: str):
        super().__init__(detail)
        self.check = check  # host-key-unknown / host-key-changed / host-key-revoked
        self.detail = detail


def fingerprint(key: paramiko.PKey) -> str:
    """OpenSSH's SHA256 fingerprint, as ``ssh-keygen -lf`` prints it."""
    import hashlib

    digest = hashlib.sha256(key.asbytes()).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


def lookup_names(address: str, name: str, port: int, fqdn: str | None = None) -> tuple[str, ...]:
    names = []
    for n in (address, name, fqdn):
        if n and n not in names:
            names.append(n if port == 22 else f"[{n}]:{port}")
    return tuple(names)


@dataclass
class KnownHosts:
    plain: dict[str, list[paramiko.PKey]] = field(default_factory=dict)
    hashed: list[tuple[str, paramiko.PKey]] = field(default_factory=list)
    revoked: set[bytes] = field(default_factory=set)
    skipped: int = 0  # lines verify cannot use (certificate authorities, unknown key types)

    @classmethod
    def load(cls, path: Path, max_mib: int | None = None) -> "KnownHosts":
        """Read line by line under gpucloud.verify.inputs' limits, so a wrong path cannot fill memory."""
        from gpucloud.verify.inputs import DEFAULT_MAX_MIB, InputError, lines

        kh = cls()
        try:
            for lineno, raw in lines(Path(path), "known_hosts file", max_mib or DEFAULT_MAX_MIB):
                kh._add(lineno, raw)
        except InputError as exc:
            raise KnownHostsError(exc.message, exc.hint) from None
        return kh

    def _add(self, lineno: int, raw: str) -> None:
        line = raw.strip()
        if not line or line.startswith("#"):
            return
        marker = None
        if line.startswith("@"):
            marker, _, line = line.partition(" ")
            line = line.strip()
        try:
            entry = HostKeyEntry.from_line(line, lineno)
        except (paramiko.SSHException, binascii.Error, ValueError):
            entry = None
        if entry is None or marker == "@cert-authority":
            self.skipped += 1
            return
        if marker == "@revoked":
            self.revoked.add(entry.key.asbytes())
            return
        for hostname in entry.hostnames:
            if hostname.startswith("|1|"):
                self.hashed.append((hostname, entry.key))
            else:
                self.plain.setdefault(hostname, []).append(entry.key)

    def keys_for(self, names: tuple[str, ...]) -> list[paramiko.PKey]:
        keys: list[paramiko.PKey] = []
        for name in names:
            keys.extend(self.plain.get(name, ()))
        if self.hashed:
            for name in names:
                for hashed, key in self.hashed:
                    if HostKeys.hash_host(name, hashed) == hashed:
                        keys.append(key)
        return keys

    def disabled_algorithms(self, names: tuple[str, ...]) -> dict[str, list[str]]:
        """Ask the server for a key type we know for it, as OpenSSH does, so that a node offering ed25519 when
        only its RSA key is recorded is not mistaken for a changed key."""
        types = {k.get_name() for k in self.keys_for(names)}
        if not types:
            return {}
        allowed = {a for t in types for a in _ALGORITHMS.get(t, (t,))}
        return {"keys": [a for a in ALL_ALGORITHMS if a not in allowed]}

    def check(self, names: tuple[str, ...], key: paramiko.PKey) -> None:
        """Raise HostKeyRefused unless ``key`` is recorded for one of ``names`` and not revoked."""
        if key.asbytes() in self.revoked:
            raise HostKeyRefused("host-key-revoked", f"{key.get_name()} {fingerprint(key)} is revoked")
        known = self.keys_for(names)
        if not known:
            raise HostKeyRefused("host-key-unknown",
                                 f"no known_hosts entry for {' or '.join(names)}; offered {key.get_name()} "
                                 f"{fingerprint(key)}")
        if any(k.asbytes() == key.asbytes() for k in known):
            return
        recorded = ", ".join(sorted({f"{k.get_name()} {fingerprint(k)}" for k in known}))
        raise HostKeyRefused("host-key-changed",
                             f"offered {key.get_name()} {fingerprint(key)}, known_hosts has {recorded}")


class StrictPolicy(paramiko.MissingHostKeyPolicy):
    """Used with an empty paramiko key store, so every server key comes here and is checked against our index."""

    def __init__(self, known: KnownHosts, names: tuple[str, ...]):
        self.known = known
        self.names = names

    def missing_host_key(self, client, hostname, key):
        self.known.check(self.names, key)
