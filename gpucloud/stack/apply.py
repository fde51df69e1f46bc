"""`gpucloud apply SPEC --stack NAME`: `pulumi up` of one stack through the Automation API.

The state goes to a local file backend under the project (``.pulumi-state/``) unless --backend or PULUMI_BACKEND_URL
names another; a file backend encrypts the stack's secrets with PULUMI_CONFIG_PASSPHRASE. The Automation API drives
the Pulumi CLI, so without the CLI this stops before touching anything and says what to install.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from gpucloud.findings import choices_hint

PROJECT_DIR = Path(__file__).resolve().parents[2]
DEFAULT_BACKEND_DIR = ".pulumi-state"
INSTALL_HINT = ("install the Pulumi CLI (https://www.pulumi.com/docs/install/, e.g. "
                "`curl -fsSL https://get.pulumi.com | sh`) and put `pulumi` on PATH")


class ApplyError(Exception):
    """A usage problem found before anything changed (exit code 2)."""


@dataclass(frozen=True)
class Request:
    spec: Path
    stack: str
    backend: str | None = None
    preview: bool = False


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


def require_cli() -> str:
    path = shutil.which("pulumi")
    if path is None:
        raise ApplyError(f"the Pulumi CLI is not installed: {INSTALL_HINT}")
    try:
        import pulumi.automation  # noqa: F401
        import pulumi_command  # noqa: F401
    except ImportError as exc:
        raise ApplyError(f"the Pulumi SDK is missing ({exc.name}): pip install 'gpucloud[deploy]'") from None
    return path


def run(request: Request, plan, echo=print) -> int:
    """Preview or update one stack. Raises ApplyError for usage problems; returns 0, or 1 if Pulumi failed."""
    check_stack(plan, request.stack)
    require_cli()
    from pulumi import automation as auto

    backend = backend_url(request.backend)
    if backend.startswith("file://"):
        Path(backend[len("file://"):]).mkdir(parents=True, exist_ok=True)
    spec = os.path.relpath(request.spec.resolve(), PROJECT_DIR)
    workspace = auto.LocalWorkspaceOptions(work_dir=str(PROJECT_DIR), env_vars={"PULUMI_BACKEND_URL": backend})
    try:
        stack = auto.create_or_select_stack(stack_name=request.stack, work_dir=str(PROJECT_DIR), opts=workspace)
        stack.set_config("gpucloud:spec", auto.ConfigValue(value=spec))
        if request.preview:
            stack.preview(on_output=echo)
        else:
            # up() shows secret values unless told not to; the BMC password must never reach a terminal or CI log.
            stack.up(on_output=echo, show_secrets=False)
    except auto.errors.CommandError as exc:
        echo(f"error: pulumi failed for stack {request.stack}: {str(exc).strip()[-2000:]}")
        return 1
    return 0


def run_cli(spec: Path, stack: str, backend: str | None, preview: bool, checked_or_exit, echo) -> int:
    """The `apply` command: exit 2 for usage problems (bad spec, unknown stack, no CLI) before anything changes."""
    checked = checked_or_exit(spec)
    from gpucloud.plan import build_plan

    plan = build_plan(checked.spec, tuple(checked.findings))
    try:
        return run(Request(spec=spec, stack=stack, backend=backend, preview=preview), plan, echo)
    except ApplyError as exc:
        echo(f"error: {exc}")
        return 2
