"""The LayerCommand dynamic provider: one configuration layer (an ansible-playbook run) as a Pulumi resource.

It does the job of pulumi_command's ``local.Command`` with the same inputs (create, update, triggers, dir,
environment). The command provider is a Go plugin whose module the Go module proxy does not serve, and nothing may be
downloaded when the engine runs, so the layers use a Python dynamic provider that the engine starts through the
same launcher as the Redfish nodes.

create   run ``create`` in ``dir`` (relative to the provider's working directory, the program's folder)
diff     a change of ``triggers`` (the hash of the layer's inputs: rendered files, playbooks, roles, versions)
         replaces the resource, which runs ``create`` again; another input change is an update
update   run ``update``
delete   nothing: a playbook that ran cannot be undone

A failed command fails the resource with its exit status and the end of its output.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from typing import Any

import pulumi
from pulumi.dynamic import CheckFailure, CheckResult, CreateResult, DiffResult, Resource, ResourceProvider
from pulumi.dynamic import UpdateResult

INPUT_KEYS = ("create", "update", "triggers", "dir", "environment")
OUTPUT_TAIL = 4000  # characters of output quoted in an error


class LayerCommandError(Exception):
    """The command of a configuration layer failed."""


def run_command(command: str, props: dict[str, Any]) -> None:
    env = {**os.environ, **{str(k): str(v) for k, v in (props.get("environment") or {}).items()}}
    proc = subprocess.run(command, shell=True, cwd=props.get("dir") or None, env=env, stdin=subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, errors="replace")
    if proc.returncode != 0:
        raise LayerCommandError(f"`{command}` (in {os.path.abspath(props.get('dir') or '.')}) exited "
                                f"{proc.returncode}:\n{proc.stdout[-OUTPUT_TAIL:]}")


def _inputs(props: dict[str, Any]) -> dict[str, Any]:
    return {k: props[k] for k in INPUT_KEYS if k in props}


class LayerCommandProvider(ResourceProvider):
    def check(self, _olds: dict[str, Any], news: dict[str, Any]) -> CheckResult:
        failures = [CheckFailure(k, f"{k} is required") for k in ("create",) if not news.get(k)]
        return CheckResult(news, failures)

    def create(self, props: dict[str, Any]) -> CreateResult:
        run_command(props["create"], props)
        digest = hashlib.sha256(json.dumps(_inputs(props), sort_keys=True).encode()).hexdigest()[:16]
        return CreateResult(id_=digest, outs=_inputs(props))

    def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> DiffResult:
        changed = sorted(k for k in INPUT_KEYS if olds.get(k) != news.get(k))
        replaces = ["triggers"] if "triggers" in changed else []
        return DiffResult(changes=bool(changed), replaces=replaces, delete_before_replace=False)

    def update(self, _id: str, _olds: dict[str, Any], news: dict[str, Any]) -> UpdateResult:
        run_command(news.get("update") or news["create"], news)
        return UpdateResult(outs=_inputs(news))


class LayerCommand(Resource, module="gpucloud", name="LayerCommand"):
    """One configuration layer: runs its playbook on create, and again when its trigger moves."""

    def __init__(self, name: str, props: dict[str, Any], opts: pulumi.ResourceOptions | None = None):
        super().__init__(LayerCommandProvider(), name, props, opts)
