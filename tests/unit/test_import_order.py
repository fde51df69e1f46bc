"""The stages import one way: a module never imports (at the top, lazily, or by a module-name string) a stage that
comes after its own. The order is DESIGN's data flow; leaf helpers come first and the command glue last."""

from __future__ import annotations

import ast
import subprocess
import sys
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
# Command glue (argument handling, printing, exit codes) lives in cli.py and gpucloud/commands/; a run_cli (or any
# *_cli function, or a module called command.py) anywhere else is glue that crept back into the library.
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


def test_the_diff_reads_figures_from_the_plan_not_from_plan_md():
    """The diff, the pull-request comment included, reads what it shows from the Plan and gpucloud.markdown; of the
    renderers it uses plan.json's document alone (the thing it compares), never plan.md's code."""
    found = []
    for path in sorted((PACKAGE / "diff").rglob("*.py")):
        for line, target in _imports(ast.parse(path.read_text(encoding="utf-8"))):
            if target.startswith("gpucloud.render") and not target.startswith("gpucloud.render.plan_json"):
                found.append(f"{path.relative_to(ROOT)}:{line}: {target}")
    assert found == []


def _glue_outside_commands(root: Path = ROOT) -> list[str]:
    """Command glue by its names: a run_cli or another *_cli function, or a module called command.py."""
    out = []
    for path in sorted((root / "gpucloud").rglob("*.py")):
        rel = path.relative_to(root).as_posix()
        if rel == "gpucloud/cli.py" or rel.startswith("gpucloud/commands/"):
            continue
        if path.name == "command.py":
            out.append(f"{rel}:1")
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name.endswith("_cli"):
                out.append(f"{rel}:{node.lineno}")
    return out


def test_command_glue_lives_in_commands():
    found = _glue_outside_commands()
    assert found == [], f"move this command glue to gpucloud/commands/: {found}"


def test_glue_in_a_library_module_is_caught(tmp_path):
    pkg = tmp_path / "gpucloud"
    for rel in ("cli.py", "commands/render.py", "verify/fabric.py"):
        (pkg / rel).parent.mkdir(parents=True, exist_ok=True)
        (pkg / rel).write_text("def run_cli(spec):\n    return 0\n")
    (pkg / "diff" / "command.py").parent.mkdir(parents=True)
    (pkg / "diff" / "command.py").write_text("X = 1\n")
    (pkg / "phonehome.py").write_text("def make_server():\n    pass\n\n\ndef serve_cli(spec):\n    return 0\n")
    assert _glue_outside_commands(tmp_path) == ["gpucloud/diff/command.py:1", "gpucloud/phonehome.py:5",
                                                "gpucloud/verify/fabric.py:1"]


def test_a_library_module_importing_a_command_is_caught(tmp_path):
    (tmp_path / "gpucloud" / "commands").mkdir(parents=True)
    (tmp_path / "gpucloud" / "commands" / "converge.py").write_text("from gpucloud import converge\n")
    (tmp_path / "gpucloud" / "converge.py").write_text("def f():\n    from gpucloud.commands import converge\n")
    assert backward_imports(tmp_path) == [
        "gpucloud/converge.py:2: gpucloud.converge imports gpucloud.commands.converge"]


def test_validate_loads_no_command_glue_and_no_deploy_library():
    """`gpucloud validate` imports the commands of the plan stages lazily, and none of Pulumi, Ansible or paramiko."""
    code = ("import sys\nfrom gpucloud.cli import app\n"
            "try:\n    app(['validate', 'clusters/lab.yaml'])\nexcept SystemExit as e:\n    assert not e.code, e.code\n"
            "print(sorted(m for m in sys.modules if m.startswith('gpucloud.commands') or m.split('.')[0] in "
            "('pulumi', 'pulumi_command', 'grpc', 'ansible', 'ansible_runner', 'paramiko', 'jinja2', 'requests')))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
