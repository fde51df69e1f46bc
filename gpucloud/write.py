"""Write a plan folder so that, at every instant, the folder holds either the complete old plan or the complete new one.

How a plan replaces another:

* The new plan is written in full into a sibling folder ``.NAME.gpucloud-new-PID-XXXXXXXX`` (same file system,
  PID of the writer), with ``plan-files.txt`` listing its files.
* It then swaps places with ``NAME`` in one system call, ``renameat2(RENAME_EXCHANGE)`` (Linux 3.15+, glibc 2.28+;
  ext4, XFS, Btrfs, tmpfs and overlayfs support it), called through ctypes. The old plan is now at the sibling's
  name and is removed afterwards. A run killed at any point leaves a complete plan at ``NAME``.
* We chose the exchange over the other atomic scheme, ``NAME`` as a symbolic link to versioned folders swapped by
  rename(2), because ``--out`` then stays a plain folder: ``cp -r``, tar, CI artefact uploads and ``rm -r`` treat
  it as one, and nothing else lies next to it once a run has finished.
* Where the exchange is not available (another OS, NFS, FUSE), the old plan is first renamed to
  ``.NAME.gpucloud-old-PID-XXXXXXXX``, then the new one to ``NAME``. A run killed between the two renames leaves no
  ``NAME``, but the old plan complete under that name, and the next run puts it back before anything else.

Leftovers: temporary folders carry their writer's PID; each run removes those whose writer is no longer running (and
the ``.NAME.tmp-*`` / ``.NAME.old-*`` folders of earlier gpucloud versions), so a killed run leaves nothing behind
for long and a concurrent run's folder is never touched.

What may be replaced: a folder that does not exist, is empty, or holds an earlier plan: its plan.json says gpucloud
wrote it and every file in it is one of that plan's files (listed in its plan-files.txt; for a plan written before
plan-files.txt existed, one of the files the new plan writes). Anything else is refused with the names of the files
that are not the plan's: they are never deleted silently. A symbolic link ``--out`` to such a folder replaces the
folder it points to and stays a link; a dangling link or a loop is refused.
"""

from __future__ import annotations

import ctypes
import errno
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Iterable, Mapping

MARKER = "plan.json"
MANIFEST = "plan-files.txt"
_MANIFEST_HEAD = "# The files of this gpucloud plan; `gpucloud plan` replaces the folder only if it holds nothing else.\n"
_SHOW = 10  # foreign files named in a refusal


class RefusedOutput(Exception):
    """The target exists and is not an earlier plan (or cannot be one); nothing was written."""

    def __init__(self, message: str, hint: str = "choose an empty or new folder for --out"):
        super().__init__(message)
        self.hint = hint


def is_plan_folder(path: Path) -> bool:
    marker = path / MARKER
    try:
        with marker.open("rb") as fh:
            head = json.loads(fh.read()) if marker.stat().st_size < 512 * 1024 * 1024 else {}
    except (OSError, ValueError):
        return False
    return isinstance(head, dict) and head.get("generator") == "gpucloud"


def target_of(out: Path) -> Path:
    """The folder a plan for ``out`` goes to: ``out`` itself, or the folder a symbolic link ``out`` points to."""
    out = Path(out)
    try:
        if out.is_symlink():
            try:
                return out.resolve(strict=True)
            except FileNotFoundError:
                raise RefusedOutput(f"{out} is a symbolic link to {os.readlink(out)}, which does not exist",
                                    "create that folder, or remove the link and run again") from None
        absolute = Path(os.path.abspath(out))  # "..", "." and "a/../b" by their names, as the shell shows them
        return absolute.parent.resolve() / absolute.name
    except RuntimeError as exc:  # Python < 3.13 reports a loop as RuntimeError
        raise RefusedOutput(f"{out}: symbolic link loop ({exc})", "remove the looping link") from None
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise RefusedOutput(f"{out}: symbolic link loop", "remove the looping link") from None
        raise RefusedOutput(f"{out}: {exc.strerror}") from None


def _present(folder: Path) -> set[str]:
    """Every file and symbolic link under ``folder`` (links not followed), relative, with / separators."""
    found = set()
    for top, dirs, files in os.walk(folder):
        rel = os.path.relpath(top, folder)
        for name in files + [d for d in dirs if os.path.islink(os.path.join(top, d))]:
            found.add(name if rel == "." else f"{rel}/{name}".replace(os.sep, "/"))
    return found


def _plan_files(folder: Path, new_files: Iterable[str] | None) -> set[str] | None:
    """The files the plan in ``folder`` consists of, or None when that cannot be known (an older plan, no new list)."""
    try:
        lines = (folder / MANIFEST).read_text("utf-8").splitlines()
    except (OSError, ValueError):
        return None if new_files is None else {*new_files, MARKER}
    return {line for line in lines if line and not line.startswith("#")} | {MANIFEST}


def check_target(out: Path, new_files: Iterable[str] | None = None) -> Path:
    """Raise RefusedOutput unless ``out`` may receive a plan; return the folder the plan goes to. ``new_files``: the
    files about to be written, which stand in for the list of an earlier plan that has none."""
    target = target_of(out)
    if target.exists() and not target.is_dir():
        raise RefusedOutput(f"{out} exists and is not a folder")
    if not target.is_dir() or not any(target.iterdir()):
        return target
    if not is_plan_folder(target):
        raise RefusedOutput(f"{out} is not empty and holds no earlier gpucloud plan (no plan.json from gpucloud)")
    planned = _plan_files(target, new_files)
    if planned is None:
        return target
    foreign = sorted(_present(target) - planned)
    if foreign:
        shown = ", ".join(foreign[:_SHOW]) + (f" and {len(foreign) - _SHOW} more" if len(foreign) > _SHOW else "")
        raise RefusedOutput(f"{out} holds an earlier plan and {len(foreign)} file(s) that are not part of it: {shown}",
                            f"move them out of {out} (replacing the plan would delete them), or choose another --out")
    return target


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def clean_leftovers(target: Path) -> None:
    """Remove the temporary folders that killed runs left next to ``target``; put back an old plan that a run killed
    between its two renames left without a ``target``."""
    name = re.escape(target.name)
    ours = re.compile(rf"^\.{name}\.gpucloud-(new|old)-(\d+)-[a-z0-9_]+$")
    legacy = re.compile(rf"^\.{name}\.(tmp|old)-[a-z0-9_]{{8}}$")
    try:
        entries = sorted(os.scandir(target.parent), key=lambda e: e.name)
    except OSError:
        return
    for entry in entries:
        m = ours.match(entry.name) or legacy.match(entry.name)
        if not m or not entry.is_dir(follow_symlinks=False):
            continue
        if m.re is ours and _alive(int(m.group(2))):
            continue  # a run writing now
        path = Path(entry.path)
        if m.group(1) == "old" and not os.path.lexists(target) and is_plan_folder(path):
            os.rename(path, target)
            continue
        shutil.rmtree(path, ignore_errors=True)


class _NoExchange(Exception):
    """renameat2(RENAME_EXCHANGE) is not available for these paths."""


_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def _exchange(a: Path, b: Path) -> None:
    """Swap two existing paths in one step (renameat2 with RENAME_EXCHANGE)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        raise _NoExchange() from None
    renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
    if renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) != 0:
        code = ctypes.get_errno()
        if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
            raise _NoExchange()
        raise OSError(code, os.strerror(code), str(b))


def _temp_name(target: Path, kind: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f".{target.name}.gpucloud-{kind}-{os.getpid()}-", dir=target.parent))


def _fill(folder: Path, files: Mapping[str, bytes]) -> None:
    real = folder.resolve()
    for rel in sorted(files):
        path = folder / rel
        if real not in path.resolve().parents:
            raise ValueError(f"renderer produced a path outside the plan folder: {rel}")
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(files[rel])
        os.chmod(path, 0o644)
    (folder / MANIFEST).write_text(_MANIFEST_HEAD + "".join(f"{rel}\n" for rel in sorted(files)), "utf-8")
    os.chmod(folder / MANIFEST, 0o644)
    for d in [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]:
        os.chmod(d, 0o755)


def write_tree(out: Path, files: Mapping[str, bytes]) -> None:
    """Write ``files`` ({relative path: bytes}) as the plan folder ``out``, replacing an earlier plan atomically."""
    if MANIFEST in files:
        raise ValueError(f"renderer produced {MANIFEST}, which the writer keeps")
    target = target_of(out)
    target.parent.mkdir(parents=True, exist_ok=True)
    clean_leftovers(target)
    check_target(out, files)
    tmp = _temp_name(target, "new")
    try:
        _fill(tmp, files)
        if not target.exists():
            os.rename(tmp, target)
            return
        try:
            _exchange(tmp, target)  # tmp now holds the old plan
        except _NoExchange:
            old = _temp_name(target, "old")
            os.rmdir(old)
            os.rename(target, old)
            try:
                os.rename(tmp, target)
            except BaseException:
                os.rename(old, target)
                raise
            os.rename(old, tmp)  # one name to clean up below, whichever way the plan got in
        # The new plan is in place: failing to remove the old one must not fail the run; the next run removes it.
        shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
