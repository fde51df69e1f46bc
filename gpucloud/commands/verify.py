"""``gpucloud verify``: the command's work, kept out of cli.py so the CLI module stays a list of commands.

Exit codes: 0 every host conforms, 1 something does not (or a host could not be looked at), 2 verify itself could
not run (spec with errors, no known_hosts file, unreadable key, unknown names in --limit or the address map, an input
file past its limits: see gpucloud.verify.inputs).
"""

from __future__ import annotations

import sys
from pathlib import Path

from gpucloud.verify.inputs import DEFAULT_MAX_MIB

EXIT_OK, EXIT_DIFFERENT, EXIT_USAGE = 0, 1, 2
MAX_KEY_BYTES = 1024 * 1024  # an RSA-16384 private key in PEM is about 12 KiB


class UsageError(Exception):
    def __init__(self, message: str, hint: str = ""):
        super().__init__(message)
        self.message = message
        self.hint = hint


def _fail(message: str, hint: str = "") -> int:
    sys.stderr.write(f"error: {message}\n")
    if hint:
        sys.stderr.write(f"  hint: {hint}\n")
    return EXIT_USAGE


def _unknown_hosts(names, planned: set[str], what: str) -> None:
    from gpucloud.findings import choices_hint

    unknown = sorted(n for n in names if n not in planned)
    if unknown:
        from gpucloud.hostlist import compress

        raise UsageError(f"{what} names host(s) not in the plan: {compress(unknown)}",
                         choices_hint(unknown[0], planned, "hosts"))


def limit_hosts(limit: str | None, planned: set[str]) -> set[str] | None:
    if not limit:
        return None
    from ClusterShell.NodeSet import NodeSetException

    from gpucloud.hostlist import HostlistTooLarge, expand

    shown = limit if len(limit) <= 80 else limit[:77] + "..."
    try:
        names = expand(limit)
    except HostlistTooLarge as exc:
        raise UsageError(f"--limit {shown!r} is too large: {exc}", "name the hosts to verify, e.g. gpu[0001-0128]")
    except (NodeSetException, ValueError, OverflowError) as exc:
        raise UsageError(f"--limit {shown!r} is not a hostlist: {exc}", "write e.g. gpu[001-016],login01")
    _unknown_hosts(names, planned, "--limit")
    return set(names)


def address_map(pairs: list[str], path: Path | None, planned: set[str],
                max_mib: int = DEFAULT_MAX_MIB) -> dict[str, str]:
    """--address HOST=ADDR (repeatable) over --addresses FILE (one 'host: address' per line)."""
    from gpucloud.verify.inputs import InputError, address_file

    out: dict[str, str] = {}
    if path is not None:
        try:
            out.update(address_file(Path(path), max_mib))
        except InputError as exc:
            raise UsageError(exc.message, exc.hint) from None
    for pair in pairs:
        host, sep, addr = pair.partition("=")
        if not sep or not host or not addr:
            raise UsageError(f"--address {pair!r} is not HOST=ADDRESS", "write e.g. --address gpu01=10.0.0.5")
        out[host] = addr
    _unknown_hosts(out, planned, "the address map")
    return out


def load_key(path: Path | None):
    if path is None:
        return None
    import stat

    import paramiko

    # paramiko reads the whole file (twice): make sure it is a small regular file first, so a wrong path such as
    # /dev/zero is refused instead of read without end.
    try:
        st = Path(path).stat()
    except OSError as exc:
        raise UsageError(f"cannot use key {path}: {exc.strerror or exc}", "give a private key file")
    if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_KEY_BYTES:
        raise UsageError(f"cannot use key {path}: not a regular file of at most {MAX_KEY_BYTES // 1024} KiB",
                         "give a private key file in OpenSSH or PEM format")
    try:
        return paramiko.PKey.from_path(path)
    except paramiko.PasswordRequiredException:
        raise UsageError(f"key {path} is encrypted", "load it into ssh-agent and leave out --key")
    except (OSError, paramiko.SSHException, ValueError) as exc:
        raise UsageError(f"cannot use key {path}: {exc}", "give a private key file in OpenSSH or PEM format")


def main(spec: Path, limit: str | None, known_hosts: Path | None, user: str | None, key: Path | None, port: int,
         timeout: float, parallel: int, addresses: list[str], addresses_file: Path | None, output: str,
         progress: bool | None, max_input_mib: int = DEFAULT_MAX_MIB) -> int:
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan
    from gpucloud.report import text as findings_text

    checked = check_spec(spec)
    if checked.fails("error"):
        findings_text(checked.findings, {checked.loaded.file: checked.loaded.text}, sys.stderr, False)
        return _fail(f"{spec} has errors; verify needs a valid spec", "run gpucloud validate and fix the spec")
    plan = build_plan(checked.spec)
    planned = {h.name for h in plan.hosts()}
    known_path = Path(known_hosts) if known_hosts else Path.home() / ".ssh" / "known_hosts"
    try:
        only = limit_hosts(limit, planned)
        mapping = address_map(addresses, addresses_file, planned, max_input_mib)
        pkey = load_key(key)
        from gpucloud.verify.known_hosts import KnownHosts, KnownHostsError

        try:
            known = KnownHosts.load(known_path, max_input_mib)
        except KnownHostsError as exc:
            raise UsageError(str(exc), exc.hint or "give --known-hosts FILE; collect keys with ssh-keyscan only "
                                                   "after checking them out of band")
    except UsageError as exc:
        return _fail(exc.message, exc.hint)

    from gpucloud.verify import report
    from gpucloud.verify.collect import SshOptions
    from gpucloud.verify.expect import expectations
    from gpucloud.verify.run import progress_bar, verify_all

    expects = expectations(plan, mapping, only)
    opts = SshOptions(user=user, port=port, timeout=timeout, pkey=pkey)
    show = sys.stderr.isatty() if progress is None else progress
    if show:
        bar, advance = progress_bar(len(expects))
        with bar:
            results = verify_all(expects, known, opts, parallel, advance)
    else:
        results = verify_all(expects, known, opts, parallel)
    if output == "json":
        report.as_json(plan.spec.name, Path(spec).name, results, sys.stdout)
    else:
        report.text(plan.spec.name, results, sys.stdout)
    return EXIT_OK if report.conforms(results) else EXIT_DIFFERENT
