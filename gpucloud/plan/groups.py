"""Names several stages share for the plan's hosts: Ansible group names and the Vault variables of spec secrets.

The inventory renderer writes them, the stack split limits layers to them and the roles read them, so they are
planned once here rather than by any one renderer.
"""

from __future__ import annotations

import re

_UNSAFE = re.compile(r"[^A-Za-z0-9_]")


def group_name(kind: str, name: str) -> str:
    """Ansible group names must be identifiers: 'slurm-controller' -> 'role_slurm_controller'."""
    return f"{kind}_{_UNSAFE.sub('_', name)}".lower()


def secret_var(secret: str) -> str:
    """The Ansible Vault variable that holds a secret named in the spec ('bmc-password' -> 'vault_bmc_password')."""
    return "vault_" + _UNSAFE.sub("_", secret).lower()
