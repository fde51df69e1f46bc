"""The Ansible sources a configuration layer runs, and their digest, which joins the layer's trigger.

A layer's playbook, the playbooks it imports, the roles its plays list and every role those include (include_role /
import_role by name, meta dependencies), each role as its whole folder (tasks, templates, defaults, handlers, files,
...). Editing a role therefore re-runs exactly the layers whose playbooks reach it, and the plan's
pulumi/<stack>.json shows which. Deterministic: files are read in sorted order, by path relative to the project.
"""

from __future__ import annotations

import hashlib
import re
from functools import lru_cache
from pathlib import Path

import yaml

PROJECT = Path(__file__).resolve().parents[2]
_INCLUDE = re.compile(r"(?:include_role|import_role):\s*\n\s+name:\s*['\"]?([\w.-]+)")


def _role_names(items) -> list[str]:
    names = []
    for item in items or ():
        if isinstance(item, str):
            names.append(item)
        elif isinstance(item, dict) and isinstance(item.get("role") or item.get("name"), str):
            names.append(item.get("role") or item["name"])
    return names


def layer_sources(playbook: str, root: Path = PROJECT) -> list[Path]:
    """Every file the layer's playbook runs, sorted (paths under ``root``)."""
    files: set[Path] = set()
    roles: list[str] = []
    seen_roles: set[str] = set()
    pending = [root / playbook]
    while pending:
        book = pending.pop()
        if book in files or not book.is_file():
            continue
        files.add(book)
        text = book.read_text()
        roles.extend(_INCLUDE.findall(text))
        for play in yaml.safe_load(text) or ():
            if not isinstance(play, dict):
                continue
            imported = play.get("import_playbook") or play.get("ansible.builtin.import_playbook")
            if isinstance(imported, str):
                pending.append(book.parent / imported)
            roles.extend(_role_names(play.get("roles")))
    role_dir = root / Path(playbook).parent / "roles"
    while roles:
        name = roles.pop()
        if name in seen_roles or not (role_dir / name).is_dir():
            continue
        seen_roles.add(name)
        for path in sorted(p for p in (role_dir / name).rglob("*") if p.is_file()):
            files.add(path)
            if path.suffix in (".yml", ".yaml"):
                text = path.read_text(errors="replace")
                roles.extend(_INCLUDE.findall(text))
                if path.parent.name == "meta":
                    meta = yaml.safe_load(text) or {}
                    roles.extend(_role_names(meta.get("dependencies") if isinstance(meta, dict) else ()))
    return sorted(files)


@lru_cache(maxsize=64)
def _digest(playbook: str, root: Path) -> str:
    h = hashlib.sha256()
    for path in layer_sources(playbook, root):
        data = path.read_bytes()
        h.update(f"{path.relative_to(root).as_posix()}\0{len(data)}\0".encode())
        h.update(data)
    return h.hexdigest()


def digest(playbook: str, root: Path = PROJECT) -> str:
    """The sha256 of the layer's sources (see the module docstring)."""
    return _digest(playbook, root)
