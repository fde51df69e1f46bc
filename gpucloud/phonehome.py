"""The provisioning HTTP server: the rendered ``provision/http/`` folder, and the phone-home receiver.

A node's first boot after the install posts its SSH host keys (cloud-init's phone_home module, form-encoded
``pub_key_ed25519=...``) to ``/phone-home/<host>``. The receiver writes them as known_hosts lines under the host's
planned address, name and FQDN, the names converge and verify look up (``gpucloud.verify.known_hosts``), replacing
the host's earlier lines: a reinstall makes new keys.

``GET /phone-home/<host>`` answers what the server has recorded for a planned host, as JSON: ``reports`` (how many
posts it took for the host since it started), ``last`` (the UTC time of the latest, or null) and ``fingerprints``
(the SHA256 fingerprints of the keys last posted; public, like the keys). The Redfish node resource reads it before
it PXE-boots a node and waits until ``reports`` or ``last`` moves (``gpucloud.stack.installwait``): a new install,
not an old one, has phoned home. A host the plan does not install answers 404.

Trust: a post is taken only for a planned host, only from that host's planned management address (the address its
DHCP reservation and its installed network configuration give it), and only with well-formed public keys. Anyone
who can take a node's address on the management network can still post for it; the management network is the
trust boundary, as it is for DHCP itself.

The module uses the standard library only, so the provisioner role runs this one file on the provisioning host
(``python3 phonehome.py --nodes provision/nodes.json ...``, see ``main``) without installing gpucloud there;
``gpucloud provision serve`` runs the same server from a spec.
"""

from __future__ import annotations

import argparse
import base64
import binascii
import hashlib
import json
import os
import struct
import tempfile
import threading
import time
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

POSTED_KEYS = ("pub_key_ed25519", "pub_key_ecdsa", "pub_key_rsa")
KEY_TYPES = ("ssh-ed25519", "ecdsa-sha2-nistp256", "ecdsa-sha2-nistp384", "ecdsa-sha2-nistp521", "ssh-rsa")
MAX_POST = 64 << 10


@dataclass(frozen=True)
class Node:
    name: str
    address: str
    fqdn: str | None = None

    @property
    def names(self) -> tuple[str, ...]:
        out: list[str] = []
        for n in (self.address, self.name, self.fqdn):
            if n and n not in out:
                out.append(n)
        return tuple(out)


def parse_key(text: str) -> tuple[str, str] | None:
    """``(type, base64)`` of an OpenSSH public key line whose blob names the same type, else None."""
    parts = text.strip().split()
    if len(parts) < 2 or parts[0] not in KEY_TYPES:
        return None
    try:
        blob = base64.b64decode(parts[1], validate=True)
        (n,) = struct.unpack(">I", blob[:4])
    except (binascii.Error, struct.error, ValueError):
        return None
    if blob[4:4 + n].decode("ascii", "replace") != parts[0]:
        return None
    return parts[0], parts[1]


def known_hosts_lines(node: Node, form: dict[str, list[str]]) -> list[str]:
    """The known_hosts lines of the keys posted in ``form`` (cloud-init's field names), in POSTED_KEYS order."""
    out = []
    for field in POSTED_KEYS:
        for value in form.get(field, ())[:1]:
            key = parse_key(value)
            if key is not None:
                out.append(f"{','.join(node.names)} {key[0]} {key[1]}")
    return out


def fingerprint(blob_b64: str) -> str:
    """OpenSSH's SHA256 fingerprint of a key's base64 blob (``ssh-keygen -l``): ``SHA256:<base64, unpadded>``."""
    digest = hashlib.sha256(base64.b64decode(blob_b64)).digest()
    return "SHA256:" + base64.b64encode(digest).decode().rstrip("=")


class Reports:
    """Each planned host's phone-home record since the server started: count, latest time, key fingerprints."""

    def __init__(self, clock=time.time):
        self.lock = threading.Lock()
        self.clock = clock
        self.rows: dict[str, dict] = {}

    def record(self, node: Node, lines: list[str]) -> None:
        when = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock()))
        prints = [f"{ln.split()[1]} {fingerprint(ln.split()[2])}" for ln in lines]
        with self.lock:
            old = self.rows.get(node.name, {})
            self.rows[node.name] = {"reports": old.get("reports", 0) + 1, "last": when, "fingerprints": prints}

    def answer(self, node: Node) -> dict:
        with self.lock:
            row = dict(self.rows.get(node.name) or {"reports": 0, "last": None, "fingerprints": []})
        return {"node": node.name, **row}


class KnownHosts:
    """One known_hosts file, each host's lines replaced as a whole and the file rewritten atomically."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.lock = threading.Lock()

    def replace_host(self, node: Node, lines: list[str]) -> None:
        names = set(node.names)
        with self.lock:
            try:
                old = self.path.read_text(encoding="utf-8").splitlines()
            except FileNotFoundError:
                old = []
            kept = [ln for ln in old if not (ln and not ln.startswith("#") and set(ln.split()[0].split(",")) & names)]
            fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", dir=self.path.parent)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write("".join(ln + "\n" for ln in kept + lines))
            os.replace(tmp, self.path)


def nodes_from_plan(plan) -> dict[str, Node]:
    p = plan.provision
    if p is None:
        return {}
    return {r.host: Node(r.host, r.address, f"{r.host}.{p.domain}" if p.domain else None) for r in p.reservations}


def load_nodes(path: str | Path) -> dict[str, Node]:
    """The nodes of a rendered ``provision/nodes.json`` (``gpucloud.render.provision.nodes_file``).

    Raises ValueError naming the file and what is wrong with it."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: cannot read the nodes file: {exc}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}:{exc.lineno}:{exc.colno}: not JSON ({exc.msg}); render it again with "
                         "`gpucloud plan`") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected an object of host names (provision/nodes.json of a plan)")
    nodes = {}
    for name, row in data.items():
        if not isinstance(row, dict) or not isinstance(row.get("address"), str):
            raise ValueError(f"{path}: $.{name}: expected {{\"address\": ..., \"fqdn\": ...}}")
        fqdn = row.get("fqdn")
        nodes[name] = Node(name, row["address"], fqdn if isinstance(fqdn, str) else None)
    return nodes


def make_server(root: str | Path, nodes: dict[str, Node], known_hosts: str | Path, bind: str, port: int,
                log=None) -> ThreadingHTTPServer:
    """An HTTP server for ``root`` (the rendered provision/http/) with the phone-home receiver; not yet serving."""
    store = KnownHosts(known_hosts)
    reports = Reports()
    say = log or (lambda message: None)

    class Handler(SimpleHTTPRequestHandler):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, directory=str(root), **kwargs)

        def log_message(self, format, *args):  # noqa: A002 - the base class's name
            say(f"{self.client_address[0]} {format % args}")

        def _answer(self, code: int, text: str) -> None:
            body = (text + "\n").encode()
            self.send_response(code)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _phone_home_node(self) -> tuple[bool, Node | None, str]:
            """(whether the path is /phone-home/<name>, the planned node of that name or None, the name)."""
            parts = self.path.split("?")[0].strip("/").split("/")
            if len(parts) != 2 or parts[0] != "phone-home":
                return False, None, ""
            return True, nodes.get(parts[1]), parts[1]

        def do_GET(self):  # noqa: N802 - http.server's naming
            ours, node, name = self._phone_home_node()
            if not ours:
                return super().do_GET()
            if node is None:
                return self._answer(404, f"no install is planned for {name[:64]!r}")
            body = (json.dumps(reports.answer(node), sort_keys=True) + "\n").encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_POST(self):  # noqa: N802 - http.server's naming
            ours, node, name = self._phone_home_node()
            if not ours:
                return self._answer(404, "not found")
            if node is None:
                return self._answer(404, f"no install is planned for {name[:64]!r}")
            if self.client_address[0] != node.address:
                say(f"refused phone-home for {node.name} from {self.client_address[0]} (planned {node.address})")
                return self._answer(403, f"{node.name} phones home from {node.address}")
            length = int(self.headers.get("Content-Length") or 0)
            if length <= 0 or length > MAX_POST:
                return self._answer(400, "expected a form-encoded body")
            form = parse_qs(self.rfile.read(length).decode("utf-8", "replace"))
            lines = known_hosts_lines(node, form)
            if not lines:
                return self._answer(400, "no well-formed SSH host key in the post")
            store.replace_host(node, lines)
            reports.record(node, lines)
            say(f"{node.name}: recorded {len(lines)} host key(s)")
            return self._answer(200, "recorded")

    return ThreadingHTTPServer((bind, port), Handler)


def main(argv: list[str] | None = None) -> int:
    """The server without gpucloud installed: the provisioner role runs ``python3 phonehome.py`` under systemd."""
    import sys

    ap = argparse.ArgumentParser(prog="phonehome.py", description="Serve a plan's provision/http folder and record "
                                 "the SSH host keys installed nodes phone home.")
    ap.add_argument("--nodes", required=True, help="the plan's provision/nodes.json")
    ap.add_argument("--root", required=True, help="the plan's provision/http folder (with images/ added)")
    ap.add_argument("--known-hosts", required=True, help="known_hosts file the posted host keys go to")
    ap.add_argument("--bind", required=True, help="address to listen on (the planned server address)")
    ap.add_argument("--port", required=True, type=int, help="port to listen on (the planned HTTP port)")
    args = ap.parse_args(argv)

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    try:
        nodes = load_nodes(args.nodes)
    except ValueError as exc:
        say(str(exc))
        return 2
    root = Path(args.root)
    if not (root / "ipxe" / "boot.ipxe").is_file():
        say(f"{root}: not a rendered provision/http folder (no ipxe/boot.ipxe); run gpucloud plan first")
        return 2
    try:
        server = make_server(root, nodes, args.known_hosts, args.bind, args.port, say)
    except OSError as exc:
        say(f"cannot listen on {args.bind}:{args.port}: {exc.strerror}")
        return 2
    say(f"serving {root} and /phone-home/ for {len(nodes)} node(s) on {args.bind}:{server.server_address[1]}, "
        f"host keys to {args.known_hosts}")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        return 130
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
