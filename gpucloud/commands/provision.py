"""``gpucloud provision discover``: read every host's MACs from its BMC (Redfish) into the discovered-MAC file
beside the spec (clusters/discovered/<name>.yaml). ``gpucloud provision serve``: serve the plan's boot files and
record the host keys installed nodes phone home (gpucloud/phonehome.py)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from gpucloud import phonehome
from gpucloud.discover import merge, read_bmcs, secret_env
from gpucloud.plan.hosts import plan_hosts
from gpucloud.spec import discovered


def run_cli(spec: Path, limit: list[str], accept_changes: bool, checked_or_exit: Callable,
            echo: Callable[[str], None]) -> int:
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


def serve(spec: Path, root: Path, known_hosts: Path, bind: str | None, port: int | None, checked_or_exit,
              echo) -> int:
    from gpucloud.plan import build_plan

    checked = checked_or_exit(spec)
    plan = build_plan(checked.spec, tuple(checked.findings))
    if plan.provision is None:
        echo(f"{spec}: no pool has the provisioner role (or there is no management network); nothing to serve")
        return 2
    if not (root / "ipxe" / "boot.ipxe").is_file():
        echo(f"{root}: not a rendered provision/http folder (no ipxe/boot.ipxe); run gpucloud plan first")
        return 2
    p = plan.provision
    try:
        server = phonehome.make_server(root, phonehome.nodes_from_plan(plan), known_hosts, bind or p.server_address,
                             port or p.http_port, echo)
    except OSError as exc:
        echo(f"cannot listen on {bind or p.server_address}:{port or p.http_port}: {exc.strerror}")
        return 2
    # An AF_INET server: its address is (host str, port); the stubs allow bytes for AF_UNIX ones.
    where = f"{server.server_address[0]}:{server.server_address[1]}"  # type: ignore[str-bytes-safe]
    echo(f"serving {root} and /phone-home/ on {where}, host keys to {known_hosts}")
    try:
        server.serve_forever()
    finally:
        server.server_close()
    return 0
