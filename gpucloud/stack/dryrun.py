"""The offline dry-run: run the real program of each stack under ``pulumi.runtime.set_mocks`` and record what it
declares (type, name, parent, inputs, dependencies, protect), normalised and sorted. No CLI, no network.

Cost and how it is kept down (figures in docs/pulumi.md): the Pulumi SDK under mocks spends 1-2.5 ms per resource
and grows faster than linearly within one process, so

* every stack runs in its own forked child (fresh SDK state, linear), as many at once as there are CPUs;
* a stack's result is a pure function of its input, this code and the SDK versions, so it is kept in a
  content-addressed cache (``GPUCLOUD_CACHE_DIR``, default ``~/.cache/gpucloud``; ``off`` disables it) and only
  stacks whose input changed run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from gpucloud import jsonout

SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
DRY_RUN_PASSWORD = "dry-run-placeholder"  # the stand-in secret; it only ever appears as [secret]
_CODE = ("components.py", "program.py", "provider.py", "dryrun.py")


def normalise(value: Any) -> Any:
    """Protobuf Struct values -> plain JSON: secrets as [secret], floats that are ints as ints."""
    if isinstance(value, float):
        return int(value) if value.is_integer() else value
    if isinstance(value, dict):
        if value.get(SIG_KEY) == SECRET_SIG:
            return "[secret]"
        if SIG_KEY in value:  # a resource reference or asset: show what it is, not its payload
            return f"[{value.get('urn') or value.get(SIG_KEY)}]"
        return {k: normalise(v) for k, v in sorted(value.items()) if v is not None and k != "__provider"}
    if isinstance(value, list):
        return [normalise(v) for v in value]
    if value == UNKNOWN:
        return "[unknown]"
    return value


def _record_program(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Run one stack's program under mocks in this process; returns its resources, sorted."""
    import pulumi
    from google.protobuf.json_format import MessageToDict
    from pulumi.runtime import mocks, settings

    from gpucloud.stack import program

    class EchoMocks(pulumi.runtime.Mocks):
        def new_resource(self, args):
            return [f"{args.name}-id", args.inputs]

        def call(self, args):
            return {}

    raw: list[tuple] = []

    class RecordingMonitor(mocks.MockMonitor):
        def RegisterResource(self, request):
            response = super().RegisterResource(request)
            if request.type != "pulumi:pulumi:Stack":
                options = {}
                if request.deleteBeforeReplace:
                    options["delete_before_replace"] = True
                for key, field in (("ignore_changes", "ignoreChanges"), ("replace_on_changes", "replaceOnChanges"),
                                   ("additional_secret_outputs", "additionalSecretOutputs")):
                    if getattr(request, field):
                        options[key] = sorted(getattr(request, field))
                raw.append((response.urn, request.type, request.name, request.parent, list(request.dependencies),
                            bool(request.protect), MessageToDict(request.object), options))
            return response

    settings.ROOT.set(None)  # a fresh root Stack resource for this program
    monitor = RecordingMonitor(EchoMocks())
    pulumi.runtime.set_mocks(monitor.mocks, project=data["project"], stack=data["stack"], preview=True,
                             monitor=monitor)

    @pulumi.runtime.test
    def run():
        return program.build(data, pulumi.Output.secret(DRY_RUN_PASSWORD)).urn

    run()
    names = {urn: name for urn, _, name, *_ in raw}
    if len(names) != len(raw):
        raise RuntimeError(f"stack {data['stack']}: two resources share a URN")
    by_name: dict[str, str] = {}
    out = []
    for urn, typ, name, parent, deps, protect, inputs, options in raw:
        if by_name.setdefault(name, typ) != typ:
            raise RuntimeError(f"stack {data['stack']}: resource name {name} is used by two types")
        rec = {"name": name, "type": typ, "parent": names.get(parent), "protect": protect,
               "dependencies": sorted(names.get(d, d) for d in deps), "inputs": normalise(inputs)}
        if options:
            rec["options"] = options
        out.append(rec)
    out.sort(key=lambda r: (r["name"], r["type"]))
    return out


def stack_document(data: dict[str, Any], resources: list[dict[str, Any]]) -> dict[str, Any]:
    types: dict[str, int] = {}
    for r in resources:
        types[r["type"]] = types.get(r["type"], 0) + 1
    return {"project": data["project"], "stack": data["stack"], "resource_count": len(resources),
            "resource_types": types, "protected": sum(r["protect"] for r in resources), "resources": resources}


def dump_document(doc: dict[str, Any]) -> bytes:
    """Canonical JSON with one resource per line, so a pull-request diff shows one line per changed resource."""
    head = {k: v for k, v in doc.items() if k != "resources"}
    lines = jsonout.dumps(head).rstrip().rstrip("}").rstrip()
    rows = ",\n".join("    " + json.dumps(r, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
                      for r in doc["resources"])
    return f"{lines},\n  \"resources\": [\n{rows}\n  ]\n}}\n".encode("utf-8")


def _render_one(data: dict[str, Any]) -> bytes:
    return dump_document(stack_document(data, _record_program(data)))


def code_fingerprint() -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in _CODE:
        h.update((here / name).read_bytes())
    for dist in ("pulumi", "pulumi_command"):
        try:
            h.update(f"{dist}={metadata.version(dist)}".encode())
        except metadata.PackageNotFoundError:
            h.update(f"{dist}=none".encode())
    return h.hexdigest()


def input_key(data: dict[str, Any], fingerprint: str) -> str:
    blob = json.dumps(data, sort_keys=True, separators=(",", ":")).encode()
    return hashlib.sha256(fingerprint.encode() + b"\n" + blob).hexdigest()


def cache_dir() -> Path | None:
    value = os.environ.get("GPUCLOUD_CACHE_DIR")
    if value == "off":
        return None
    if value:
        return Path(value) / "pulumi-dryrun"
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpucloud" / "pulumi-dryrun"


def _cache_get(folder: Path | None, key: str) -> bytes | None:
    if folder is None:
        return None
    try:
        return (folder / f"{key}.json").read_bytes()
    except OSError:
        return None


def _cache_put(folder: Path | None, key: str, data: bytes) -> None:
    if folder is None:
        return
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=folder, prefix=".tmp-")
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, folder / f"{key}.json")
    except OSError:
        pass  # a read-only or full cache only costs time


def render_stacks(inputs: list[dict[str, Any]], workers: int | None = None) -> tuple[list[bytes], int]:
    """The dry-run document of every stack (same order as ``inputs``) and how many ran (the rest were cached)."""
    folder = cache_dir()
    fingerprint = code_fingerprint()
    keys = [input_key(d, fingerprint) for d in inputs]
    results: list[bytes | None] = [_cache_get(folder, k) for k in keys]
    missing = [i for i, r in enumerate(results) if r is None]
    if missing:
        import multiprocessing

        import pulumi  # noqa: F401  imported once here so that every forked child starts with the SDK loaded

        n = max(1, min(len(missing), workers or os.cpu_count() or 1))
        # One child per stack: the SDK's per-process state grows with every resource, a fresh fork does not.
        with multiprocessing.get_context("fork").Pool(n, maxtasksperchild=1) as pool:
            fresh = pool.map(_render_one, [inputs[i] for i in missing], chunksize=1)
        for i, data in zip(missing, fresh):
            results[i] = data
            _cache_put(folder, keys[i], data)
    return [r for r in results if r is not None], len(missing)
