"""Stage 4: renderers. Each reads the Plan and returns {relative path: bytes}; ``render_all`` merges them.

Register a renderer by adding it to RENDERERS. Renderers must be deterministic: sorted keys, no timestamps.
"""

from __future__ import annotations

import importlib
from typing import Callable, Mapping

from gpucloud.plan import Plan

Renderer = Callable[[Plan], dict[str, bytes]]
LateRenderer = Callable[[Plan, Mapping[str, bytes]], dict[str, bytes]]  # flagged ``reads_rendered``

# (module, function) pairs, imported lazily so that a command only pays for what it renders.
RENDERERS: tuple[tuple[str, str], ...] = (
    ("gpucloud.render.plan_json", "render"),
    ("gpucloud.render.diagrams", "render"),
    ("gpucloud.render.fabric", "render"),
    ("gpucloud.render.ethernet", "render"),
    ("gpucloud.render.slurm_topology", "render"),
    ("gpucloud.render.slurm_topology_yaml", "render"),
    ("gpucloud.render.pulumi", "render"),
    ("gpucloud.render.storage", "render"),
    ("gpucloud.render.slurm", "render"),
    ("gpucloud.render.slurm_task_prolog", "render"),
    ("gpucloud.render.imex", "render"),
    ("gpucloud.render.inventory", "render"),
    ("gpucloud.render.provision", "render"),
    ("gpucloud.render.monitoring", "render"),
    ("gpucloud.render.plan_md", "render"),  # last: it reads pulumi/stacks.json and lists the folders
)


def render_all(plan: Plan) -> dict[str, bytes]:
    files: dict[str, bytes] = {}
    late: list[LateRenderer] = []  # they get the others' files (Pulumi layer triggers hash them)
    for module, name in RENDERERS:
        found = getattr(importlib.import_module(module), name)
        if getattr(found, "reads_rendered", False):
            late.append(found)
            continue
        fn: Renderer = found
        for path, data in fn(plan).items():
            if path in files:
                raise RuntimeError(f"two renderers wrote {path}")
            files[path] = data
    for late_fn in late:
        for path, data in late_fn(plan, dict(files)).items():
            if path in files:
                raise RuntimeError(f"two renderers wrote {path}")
            files[path] = data
    return dict(sorted(files.items()))


def rendered_files(plan: Plan) -> dict[str, bytes]:
    """What the renderers write before the late ones (plan.md, pulumi/): the files the configuration layers'
    triggers hash, so a real deployment and the dry run hash the same bytes."""
    files: dict[str, bytes] = {}
    for module, name in RENDERERS:
        fn = getattr(importlib.import_module(module), name)
        if not getattr(fn, "reads_rendered", False):
            files.update(fn(plan))
    return files
