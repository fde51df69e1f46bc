"""The offline dry-run: what every stack would declare (type, name, parent, inputs, dependencies, protect),
normalised and sorted, with no CLI and no network.

Two producers of the same document:

* ``mock_document`` runs the real program under ``pulumi.runtime.set_mocks`` and records what the SDK registers;
* ``graph_document`` walks ``gpucloud.stack.graph`` (the names and inputs the components themselves use).

The SDK under mocks costs 1-4 ms per resource and grows faster than linearly in one process: about 80 s of CPU for
the ~25,900 resources of the 12,500-node example, 50 s on two cores. So the plan writes the graph documents and
checks them against the real program under mocks, each check in its own forked child: the shared stack and the first
and last pod of each pool, every pool cut to its first and last two hosts (the same code paths at a fixed cost). Any
difference fails the plan; GPUCLOUD_DRYRUN_FULL=1 checks every host of every stack. A passed check is remembered in
a content-addressed cache (``GPUCLOUD_CACHE_DIR``, default ``~/.cache/gpucloud``; ``off`` disables it) keyed by the
checked input, this code and the SDK versions, so unchanged stacks are not run again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

from gpucloud.stack import graph

SECRET_SIG = "1b47061264138c4ac30d75fd1eb44270"
SIG_KEY = "4dabf18193072939515e22adb298388d"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
DRY_RUN_PASSWORD = "dry-run-placeholder"  # the stand-in secret; it only ever appears as [secret]
_CODE = ("components.py", "graph.py", "program.py", "provider.py", "layer.py", "sources.py", "dryrun.py")
SAMPLE_HOSTS = 4  # hosts per pool in the mock check (first two, last two)


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
                options: dict[str, Any] = {}
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
    """Canonical JSON: summary fields first, one per line, then one resource per line, so a pull-request diff shows
    one line per changed resource."""
    def one(value: Any) -> str:
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))

    lines = ["{"] + [f"  {one(k)}: {one(v)}," for k, v in sorted(doc.items()) if k != "resources"]
    rows = [f"    {one(r)}," for r in doc["resources"]]
    if rows:
        rows[-1] = rows[-1][:-1]
    return "\n".join([*lines, '  "resources": [', *rows, "  ]", "}", ""]).encode("utf-8")


def document_head(doc: bytes) -> dict[str, Any]:
    """The summary fields of a document (everything before its resources), without parsing the resources."""
    head = doc[: doc.index(b'\n  "resources": [')].decode().rstrip().rstrip(",")
    return json.loads(head + "\n}")


def graph_document(data: dict[str, Any]) -> bytes:
    resources = []
    for rec in graph.stack_graph(data):
        resources.append({**rec, "inputs": normalise(rec["inputs"])})
    resources.sort(key=lambda r: (r["name"], r["type"]))
    return dump_document(stack_document(data, resources))


def mock_document(data: dict[str, Any]) -> bytes:
    return dump_document(stack_document(data, _record_program(data)))


def _first_difference(a: bytes, b: bytes) -> str:
    for x, y in zip(a.decode().splitlines(), b.decode().splitlines()):
        if x != y:
            return f"graph: {x.strip()[:300]}\n  mocks: {y.strip()[:300]}"
    return "the documents differ in length"


def to_verify(inputs: list[dict[str, Any]]) -> list[int]:
    """Stacks checked under mocks: the shared stack and the first and last pod of each pool (the others are the
    same code over other hosts)."""
    firsts: dict[tuple, int] = {}
    lasts: dict[tuple, int] = {}
    for i, data in enumerate(inputs):
        shape = ("shared",) if data["shared"] else tuple(p["name"] for p in data["pools"])
        firsts.setdefault(shape, i)
        lasts[shape] = i
    return sorted(set(firsts.values()) | set(lasts.values()))


def sample(data: dict[str, Any], keep: int) -> dict[str, Any]:
    """The stack input with each pool cut to its first and last ``keep // 2`` hosts: the same program paths at
    a cost that does not grow with the pool (0 keeps everything)."""
    if not keep:
        return data
    half = max(1, keep // 2)
    pools = [{**p, "hosts": p["hosts"] if len(p["hosts"]) <= 2 * half else p["hosts"][:half] + p["hosts"][-half:]}
             for p in data["pools"]]
    return {**data, "pools": pools}


def code_fingerprint() -> str:
    h = hashlib.sha256()
    here = Path(__file__).resolve().parent
    for name in _CODE:
        h.update((here / name).read_bytes())
    for dist in ("pulumi",):
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
        return (folder / f"{key}.ok").read_bytes()
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
        os.replace(tmp, folder / f"{key}.ok")
    except OSError:
        pass  # a read-only or full cache only costs time


def render_stacks(inputs: list[dict[str, Any]], workers: int | None = None, verify: bool = True,
                  full: bool | None = None) -> tuple[list[bytes], list[str]]:
    """The document of every stack (same order as ``inputs``) and the stacks checked under mocks.

    The check runs the real program under mocks and compares its document with the graph's: on a sample of each
    pool's hosts by default, on every host of every stack when ``full`` (or GPUCLOUD_DRYRUN_FULL=1).
    """
    documents = [graph_document(d) for d in inputs]
    if not verify:
        return documents, []
    if full is None:
        full = os.environ.get("GPUCLOUD_DRYRUN_FULL") == "1"
    chosen = list(range(len(inputs))) if full else to_verify(inputs)
    checks = {i: sample(inputs[i], 0 if full else SAMPLE_HOSTS) for i in chosen}
    folder = cache_dir()
    fingerprint = code_fingerprint()
    keys = {i: input_key(checks[i], fingerprint) for i in chosen}
    expected = {i: documents[i] if checks[i] is inputs[i] else graph_document(checks[i]) for i in chosen}
    digests = {i: hashlib.sha256(expected[i]).hexdigest() for i in chosen}
    missing = [i for i in chosen if _cache_get(folder, keys[i]) != digests[i].encode()]
    if missing:
        import multiprocessing

        import pulumi  # noqa: F401  imported once here so that every forked child starts with the SDK loaded

        n = max(1, min(len(missing), workers or os.cpu_count() or 1))
        # One child per stack: the SDK's per-process state grows with every resource, a fresh fork does not.
        with multiprocessing.get_context("fork").Pool(n, maxtasksperchild=1) as pool:
            mocked = pool.map(mock_document, [checks[i] for i in missing], chunksize=1)
        for i, doc in zip(missing, mocked):
            if doc != expected[i]:
                raise RuntimeError(f"stack {inputs[i]['stack']}: the program under mocks declares something else "
                                   f"than the resource graph:\n  {_first_difference(expected[i], doc)}")
            _cache_put(folder, keys[i], digests[i].encode())
    return documents, [inputs[i]["stack"] for i in chosen]
