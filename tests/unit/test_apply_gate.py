"""The apply gate reads a preview's steps: which of them take a node away. The real engine's preview is exercised in
tests/integration/test_pulumi_engine.py; here the decision itself, step by step."""

from __future__ import annotations

from types import SimpleNamespace

from gpucloud.stack import apply, graph

URN = "urn:pulumi:lab::gpucloud::"


def step(op: str, typ: str, name: str):
    meta = SimpleNamespace(op=op, type=typ, urn=f"{URN}{typ}::{name}")
    return SimpleNamespace(resource_pre_event=SimpleNamespace(metadata=meta))


def test_replaced_and_deleted_nodes_are_named_once_each():
    events = [
        SimpleNamespace(resource_pre_event=None),
        step("replace", graph.REDFISH, "gpu01-bmc"),
        step("create-replacement", graph.REDFISH, "gpu01-bmc"),
        step("delete-replaced", graph.REDFISH, "gpu01-bmc"),
        step("delete", graph.NODE, "gpu03"),
        step("delete", graph.REDFISH, "gpu03-bmc"),
    ]
    assert apply.destructive_nodes(events) == ["gpu01", "gpu03"]


def test_updates_creates_and_layer_replacements_pass_the_gate():
    events = [
        step("update", graph.REDFISH, "gpu02-bmc"),  # powering a node back on
        step("create", graph.NODE, "gpu05"),  # a pool that grows
        step("create", graph.REDFISH, "gpu05-bmc"),
        step("replace", graph.COMMAND, "lab-layers-slurm"),  # a layer runs again
        step("same", graph.NODE, "gpu01"),
    ]
    assert apply.destructive_nodes(events) == []


def test_the_pinned_version_is_read_from_the_go_module():
    assert apply.pinned_version().startswith("v3.")
    assert apply.engine_root().name == apply.pinned_version() or "GPUCLOUD_PULUMI_ROOT" in __import__("os").environ


def test_apply_needs_exactly_one_of_stack_and_all():
    from conftest import run_cli

    for args in ([], ["--stack", "lab", "--all"]):
        result = run_cli("apply", "clusters/lab.yaml", *args)
        assert result.returncode == 2, result.stderr
        assert "--stack NAME, or every stack of the cluster with --all" in result.stderr
        assert "Traceback" not in result.stderr


def test_a_missing_plugin_launcher_is_a_clear_error_before_the_engine_starts(tmp_path):
    from conftest import run_cli

    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "pulumi").write_text("#!/bin/sh\necho started >&2\nexit 99\n")
    (tmp_path / "bin" / "pulumi").chmod(0o755)
    result = run_cli("apply", "clusters/lab.yaml", "--stack", "lab",
                     env={"GPUCLOUD_PULUMI_ROOT": str(tmp_path), "PULUMI_CONFIG_PASSPHRASE": "x"})
    assert result.returncode == 2
    assert "pulumi-resource-pulumi-python is missing" in result.stderr and "scripts/build-pulumi.sh" in result.stderr
    assert "started" not in result.stderr and "Traceback" not in result.stderr
