"""`gpucloud apply SPEC --stack NAME`: `pulumi up` of one stack through the Automation API, gated.

The engine is the Pulumi CLI that ``scripts/build-pulumi.sh`` builds from the Go modules pinned in
``tools/pulumi/go.mod`` into a cache folder (see ``engine_root``); nothing is downloaded when it runs: plugin
auto-installation is off, and the plugins the program needs (the Python dynamic-provider launcher, for the Redfish
nodes and the configuration layers) lie next to the CLI. The program runs inline, in this process (the same
``program.declare`` that ``infra/__main__.py`` calls), so no Python language-host plugin is needed.

The state goes to a local file backend under the project (``.pulumi-state/``) unless --backend or PULUMI_BACKEND_URL
names another; a file backend encrypts the stack's secrets with PULUMI_CONFIG_PASSPHRASE (or
PULUMI_CONFIG_PASSPHRASE_FILE), which must be set.

The gate: before `up`, a preview lists every step; if any would replace or delete a node (a new image, BMC address
or pool id, a pool that shrinks, a node removed), apply refuses before touching anything, names the nodes and exits
3, unless --allow-replace. With it, those nodes roll in batches within each pool's budget (gpucloud.plan.rollout
plans them, gpucloud.stack.rollout drains, replaces, converges, health-checks and resumes each batch), then the rest
of the update runs.

Exit codes: 0 done; 1 Pulumi failed or the rollout stopped; 2 a usage problem found before anything changed (bad spec, unknown stack, no
engine, no passphrase); 3 refused: the update would replace or delete nodes.
"""

from __future__ import annotations

import os
import re
import shutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from gpucloud.findings import choices_hint
from gpucloud.plan import rollout as rollout_plan
from gpucloud.stack import graph, rollout

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_BACKEND_DIR = ".pulumi-state"
GO_MOD = PROJECT_DIR / "tools" / "pulumi" / "go.mod"
BUILD_SCRIPT = "scripts/build-pulumi.sh"
BUILD_HINT = f"run {BUILD_SCRIPT} (Go 1.26; `scripts/setup.sh --deploy` runs it) to build it from the pinned Go modules"
LAUNCHER = "pulumi-resource-pulumi-python"
EXIT_FAILED, EXIT_USAGE, EXIT_REFUSED = 1, 2, 3
# Steps that take a node away: the machine is powered off and installed again, or powered off for good.
DESTRUCTIVE_OPS = ("replace", "create-replacement", "delete-replaced", "delete", "discard", "discard-replaced")
NODE_TYPES = (graph.REDFISH, graph.NODE)


class ApplyError(Exception):
    """A usage problem found before anything changed (exit code 2)."""


@dataclass(frozen=True)
class Request:
    spec: Path
    stack: str
    backend: str | None = None
    preview: bool = False
    allow_replace: bool = False
    refresh: bool = False
    # Where Pulumi.yaml and the stack's Pulumi.<stack>.yaml (its config and encrypted secrets) live.
    work_dir: Path = field(default_factory=lambda: Path(os.environ.get("GPUCLOUD_PULUMI_WORK_DIR") or PROJECT_DIR))


@dataclass
class Outcome:
    code: int
    changes: dict[str, int] = field(default_factory=dict)  # operation -> count, from the engine's summary
    refused: list[str] = field(default_factory=list)  # nodes the gate refused to replace or delete


def stack_names(plan) -> list[str]:
    from gpucloud.plan import stacks as layout

    return [part.stack_name for part in layout.split(plan)]


def check_stack(plan, stack: str) -> None:
    names = stack_names(plan)
    if stack not in names:
        raise ApplyError(f"stack {stack!r} is not one of {plan.spec.name}'s {len(names)} stack(s); "
                         f"{choices_hint(stack, names, 'stacks')} (pulumi/stacks.json of `gpucloud plan` lists them)")


def backend_url(backend: str | None) -> str:
    if backend:
        return backend
    return os.environ.get("PULUMI_BACKEND_URL") or f"file://{PROJECT_DIR / DEFAULT_BACKEND_DIR}"


def pinned_version(go_mod: Path = GO_MOD) -> str:
    """The Pulumi version tools/pulumi/go.mod pins (the one place it is set)."""
    m = re.search(r"^\s*github\.com/pulumi/pulumi/pkg/v3 (v\S+)", go_mod.read_text(), re.M)
    if not m:
        raise ApplyError(f"{go_mod} requires no github.com/pulumi/pulumi/pkg/v3")
    return m.group(1)


def engine_root() -> Path:
    """Where scripts/build-pulumi.sh puts the engine: $GPUCLOUD_PULUMI_ROOT, else the user's cache folder."""
    if os.environ.get("GPUCLOUD_PULUMI_ROOT"):
        return Path(os.environ["GPUCLOUD_PULUMI_ROOT"])
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "gpucloud" / "pulumi" / pinned_version()


def require_engine() -> Path:
    root = engine_root()
    for name in ("pulumi", LAUNCHER):
        if not os.access(root / "bin" / name, os.X_OK):
            raise ApplyError(f"the Pulumi engine is not built ({root / 'bin' / name} is missing): {BUILD_HINT}")
    try:
        import pulumi.automation  # noqa: F401
    except ImportError as exc:
        raise ApplyError(f"the Pulumi SDK is missing ({exc.name}): pip install 'gpucloud[deploy]'") from None
    return root


def require_passphrase(backend: str) -> None:
    if backend.startswith("file://") and not (os.environ.get("PULUMI_CONFIG_PASSPHRASE")
                                              or os.environ.get("PULUMI_CONFIG_PASSPHRASE_FILE")):
        raise ApplyError("PULUMI_CONFIG_PASSPHRASE is not set: the file backend encrypts the stack's secrets (the BMC "
                         "password) with it; export it (or PULUMI_CONFIG_PASSPHRASE_FILE naming a file that holds it)")


def engine_env(root: Path, backend: str) -> dict[str, str]:
    """The environment of every engine run: no update check, no plugin download, our launcher and Python first."""
    path = os.environ.get("PATH", "")
    # The dynamic providers run `python3 -m pulumi.dynamic`: it must be this interpreter (with the Pulumi SDK and
    # gpucloud). Put its folder first only when PATH finds another python3, so the rest of PATH keeps its order
    # (the layers run the ansible-playbook PATH finds).
    found = shutil.which("python3", path=path)
    if found is None or os.path.dirname(found) != os.path.dirname(sys.executable):
        path = os.pathsep.join([os.path.dirname(sys.executable), path])
    path = os.pathsep.join([str(root / "bin"), path])
    pythonpath = os.pathsep.join(p for p in (str(PROJECT_DIR), os.environ.get("PYTHONPATH", "")) if p)
    return {
        "PULUMI_BACKEND_URL": backend,
        "PULUMI_HOME": str(root / "home"),
        "PULUMI_SKIP_UPDATE_CHECK": "true",
        "PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION": "true",
        "PATH": path,
        "PYTHONPATH": pythonpath,
    }


def open_stack(request: Request, root: Path, backend: str):
    from pulumi import automation as auto

    from gpucloud.stack import program

    if backend.startswith("file://"):
        Path(backend[len("file://"):]).mkdir(parents=True, exist_ok=True)
    env = engine_env(root, backend)
    # The engine's plugins see the environment of this process, not only the CLI's.
    os.environ.update({k: env[k] for k in ("PATH", "PYTHONPATH")})
    command = auto.PulumiCommand(root=str(root))
    workspace = auto.LocalWorkspaceOptions(work_dir=str(request.work_dir), env_vars=env, pulumi_command=command)
    def declare() -> None:
        program.declare(PROJECT_DIR)

    stack = auto.create_or_select_stack(stack_name=request.stack, project_name="gpucloud", program=declare,
                                        opts=workspace)
    spec = os.path.relpath(request.spec.resolve(), PROJECT_DIR)
    stack.set_config("gpucloud:spec", auto.ConfigValue(value=spec))
    return stack


def node_name(urn: str) -> str:
    name = urn.rsplit("::", 1)[-1]
    return name[: -len("-bmc")] if name.endswith("-bmc") else name


def destructive_nodes(events) -> list[str]:
    """The nodes a preview's steps would replace or delete, from its engine events."""
    nodes = set()
    for event in events:
        pre = event.resource_pre_event
        if pre is None:
            continue
        meta = pre.metadata
        op = getattr(meta.op, "value", meta.op)
        if meta.type in NODE_TYPES and op in DESTRUCTIVE_OPS:
            nodes.add(node_name(meta.urn))
    return sorted(nodes)


def node_steps(events) -> dict:
    """Node -> its resources' URNs in a preview that replaces or deletes it, whether it goes away, and its pool."""
    urns: dict[str, list[str]] = {}
    deleted: set[str] = set()
    pools: dict[str, str] = {}
    for event in events:
        pre = event.resource_pre_event
        if pre is None or pre.metadata.type not in NODE_TYPES:
            continue
        meta = pre.metadata
        op = getattr(meta.op, "value", meta.op)
        if op == "same":
            continue
        node = node_name(meta.urn)
        urns.setdefault(node, []).append(meta.urn)
        if op in ("delete", "discard"):
            deleted.add(node)
        if meta.type == graph.NODE:
            state = meta.old if meta.old is not None else meta.new
            parent = node_name(state.parent or "") if state is not None else ""
            pools[node] = parent[len("pool-"):] if parent.startswith("pool-") else ""
    # Only the nodes taken away: a node powered on again after drift, or a new one, is not rolled.
    taken = set(destructive_nodes(events))
    return {n: rollout.NodeSteps(tuple(sorted(set(u))), n in deleted, pools.get(n, ""))
            for n, u in urns.items() if n in taken}


def _summary(changes) -> dict[str, int]:
    return {getattr(k, "value", k): int(v) for k, v in (changes or {}).items()}


def run(request: Request, plan, echo: Callable[[str], None] = print) -> Outcome:
    """Preview or update one stack. Raises ApplyError for usage problems."""
    return run_stacks([request], plan, echo)


def run_stacks(requests: list[Request], plan, echo: Callable[[str], None] = print,
               hooks: rollout.Hooks | None = None) -> Outcome:
    """Preview every stack first, then update them in order (for a split cluster: the shared stack, then each pod),
    stopping at the first failure. The gate sees every stack's preview before any stack changes. With
    --allow-replace, the nodes a stack's update replaces or deletes roll in batches first (gpucloud.stack.rollout;
    ``hooks``: its Slurm client, converge and health check, default the real ones), then the rest of the update."""
    for request in requests:
        check_stack(plan, request.stack)
    root = require_engine()
    backend = backend_url(requests[0].backend)
    require_passphrase(backend)
    from pulumi import automation as auto

    first = requests[0]
    stacks: list = []
    steps: list[dict] = []
    changes: dict[str, int] = {}
    refused: list = []
    name = first.stack
    try:
        for request in requests:
            name = request.stack
            stack = open_stack(request, root, backend)
            if request.refresh:
                stack.refresh(on_output=echo, show_secrets=False, diff=True)
            events: list = []
            preview = stack.preview(on_output=echo, on_event=events.append, diff=True)
            for op, count in _summary(preview.change_summary).items():
                changes[op] = changes.get(op, 0) + count
            nodes = destructive_nodes(events)
            steps.append(node_steps(events))
            refused.extend(nodes if len(requests) == 1 else [f"{request.stack}/{n}" for n in nodes])
            stacks.append(stack)
        if first.preview:
            return Outcome(0, changes, [])
        if refused and not first.allow_replace:
            where = f"stack {first.stack}" if len(requests) == 1 else f"{len(requests)} stacks"
            echo(f"refused: this update would replace or delete {len(refused)} node(s) of {where}: "
                 f"{', '.join(refused)}. Nothing was changed. Review the preview above; to go ahead, run again with "
                 "--allow-replace")
            for request, rolled in zip(requests, steps):
                if rolled:
                    batches = plan_batches(rolled, plan)
                    echo(f"with --allow-replace, stack {request.stack} would roll them in {len(batches)} batch(es), "
                         "each drained in Slurm first:")
                    for line in rollout.describe(batches, budget_notes(plan)):
                        echo(line)
            return Outcome(EXIT_REFUSED, changes, refused)
        done: dict[str, int] = {}

        def tally(result) -> None:
            for op, n in _summary(result.summary.resource_changes).items():
                done[op] = done.get(op, 0) + n

        for request, stack, rolled in zip(requests, stacks, steps):
            name = request.stack
            if rolled:
                if hooks is None:
                    hooks = rollout.default_hooks(first.spec, echo)
                roll_stack(stack, request.stack, rolled, plan, hooks, echo, tally)
            # up() shows secret values unless told not to; the BMC password must never reach a terminal or CI log.
            tally(stack.up(on_output=echo, show_secrets=False))
        return Outcome(0, done, [])
    except auto.errors.CommandError as exc:
        echo(f"error: pulumi failed for stack {name}: {str(exc).strip()[-3000:]}")
        return Outcome(EXIT_FAILED)
    except rollout.RolloutFailed as exc:
        echo(f"error: stack {name}: {exc}")
        return Outcome(EXIT_FAILED)


def plan_batches(nodes: dict, plan) -> list:
    """The batches ``nodes`` (from node_steps) roll in, within each pool's budget."""
    pools = rollout_plan.pools_of(plan)
    planned = {h for _, hosts, _ in pools for h in hosts}
    gone = {n: s.pool for n, s in nodes.items() if s.deleted or n not in planned}
    return rollout_plan.batches(sorted(nodes), pools, gone, rollout_plan.domains_of(plan))


def budget_notes(plan) -> dict[str, str]:
    """Pool -> what its budget became in whole racks, for NVLink pools whose budget is not whole racks."""
    out = {}
    for p in plan.pools:
        nv = p.model.nvlink
        note = rollout_plan.rack_note(p.pool.rollout.max_unavailable, len(p.hosts), nv.trays) if nv else None
        if note:
            out[p.pool.name] = note
    return out


def roll_stack(stack, name: str, nodes: dict, plan, hooks: rollout.Hooks, echo: Callable[[str], None],
               count: Callable[[object], None]) -> None:
    """Replace or delete ``nodes`` (from node_steps) of one stack in batches within each pool's budget."""
    batches = plan_batches(nodes, plan)
    timeouts = {p.pool.name: float(p.pool.rollout.drain_timeout) for p in plan.pools}
    slurm_pools = {p.pool.name for p in plan.pools if "compute" in p.pool.roles}
    echo(f"stack {name}: rolling {len(nodes)} node(s) in {len(batches)} batch(es), each drained in Slurm, "
         "replaced, converged, health-checked and resumed before the next:")
    for line in rollout.describe(batches, budget_notes(plan)):
        echo(line)

    def up(stack, urns: list[str]) -> None:
        count(stack.up(on_output=echo, show_secrets=False, target=urns))

    rollout.roll(stack, batches, nodes, timeouts, slurm_pools, hooks, echo, up)
