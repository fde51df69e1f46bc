"""The stages import one way: a module never imports (at the top, lazily, or by a module-name string) a stage that
comes after its own. The order is DESIGN's data flow; leaf helpers come first and the command glue last."""

from __future__ import annotations

import ast
from pathlib import Path

from conftest import ROOT

PACKAGE = ROOT / "gpucloud"
# spec < plan < checks (they may ask the pure planners) < render < pipeline < the stages that act on a plan < CLI.
STAGES = {
    "catalog": 0, "findings": 0, "impact": 0, "jsonout": 0, "markdown": 0,
    "spec": 1, "hostlist": 1,
    "plan": 2,
    "checks": 3,
    "render": 4, "report": 4, "write": 4,
    "pipeline": 5,
    "diff": 6, "stack": 6, "verify": 6, "converge": 6, "accept": 6, "discover": 6, "phonehome": 6,
    "commands": 7, "cli": 7, "__main__": 7,
}
# The one sanctioned exception: the Pulumi renderer runs the real program (stack.program) under Pulumi's mocks to
# prove that the graph it writes is what `pulumi up` would declare (DESIGN: the dry run runs the real program).
ALLOWED = {("gpucloud.render.pulumi", "gpucloud.stack.dryrun")}


def _stage(module: str) -> int | None:
    parts = module.split(".")
    if parts[0] != "gpucloud":
        return None
    return STAGES.get(parts[1]) if len(parts) > 1 else 0


def _module_of(path: Path, root: Path) -> str:
    parts = path.relative_to(root).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(tree: ast.AST):
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # "from gpucloud.stack import dryrun" names the module gpucloud.stack.dryrun
                yield node.lineno, f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith("gpucloud."):
            yield node.lineno, node.value  # importlib.import_module("gpucloud....") and registries of names


def backward_imports(root: Path = ROOT) -> list[str]:
    out = []
    for path in sorted((root / "gpucloud").rglob("*.py")):
        me = _module_of(path, root)
        mine = _stage(me)
        for line, target in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            theirs = _stage(target)
            if mine is not None and theirs is not None and theirs > mine and (me, target) not in ALLOWED:
                out.append(f"{path.relative_to(root)}:{line}: {me} imports {target}")
    return out


def test_every_package_has_a_stage():
    names = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
             if (p.is_dir() and (p / "__init__.py").exists()) or (p.suffix == ".py" and p.stem != "__init__")}
    assert names <= set(STAGES), f"give these a place in STAGES: {sorted(names - set(STAGES))}"


def test_imports_run_one_way():
    assert backward_imports() == []


def test_a_backward_import_is_caught(tmp_path):
    pkg = tmp_path / "gpucloud"
    (pkg / "plan").mkdir(parents=True)
    (pkg / "plan" / "x.py").write_text("def f():\n    from gpucloud.render.inventory import group_name\n")
    (pkg / "render").mkdir()
    (pkg / "render" / "y.py").write_text('RENDERERS = (("gpucloud.diff.thing", "f"),)\n')
    found = backward_imports(tmp_path)
    assert found == ["gpucloud/plan/x.py:2: gpucloud.plan.x imports gpucloud.render.inventory.group_name",
                     "gpucloud/render/y.py:1: gpucloud.render.y imports gpucloud.diff.thing"]
