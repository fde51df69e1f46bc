"""The LayerCommand provider (a configuration layer as a resource): runs its command where told, fails loudly,
replaces on a trigger change only. The real engine runs it in tests/integration/test_pulumi_engine.py."""

from __future__ import annotations

import pytest

pytest.importorskip("pulumi")

from gpucloud.stack.layer import LayerCommandError, LayerCommandProvider  # noqa: E402


def props(tmp_path, **over):
    base = {"create": "pwd > ran.txt; echo \"$LAYER_X\" >> ran.txt", "update": "echo updated > ran.txt",
            "triggers": ["abc"], "dir": str(tmp_path), "environment": {"LAYER_X": "from-env"}}
    return {**base, **over}


def test_create_runs_the_command_in_dir_with_the_environment(tmp_path):
    result = LayerCommandProvider().create(props(tmp_path))
    assert (tmp_path / "ran.txt").read_text().split() == [str(tmp_path), "from-env"]
    assert set(result.outs) == {"create", "update", "triggers", "dir", "environment"}
    assert result.id


def test_a_failing_command_fails_the_resource_with_its_output(tmp_path):
    bad = props(tmp_path, create="echo 'fatal: [gpu01]: UNREACHABLE' ; exit 4")
    with pytest.raises(LayerCommandError) as err:
        LayerCommandProvider().create(bad)
    assert "exited 4" in str(err.value) and "UNREACHABLE" in str(err.value)


def test_a_new_trigger_replaces_and_other_changes_update(tmp_path):
    p = LayerCommandProvider()
    old = props(tmp_path)
    assert not p.diff("id", old, dict(old)).changes
    moved = p.diff("id", old, props(tmp_path, triggers=["def"]))
    assert moved.changes and moved.replaces == ["triggers"]
    edited = p.diff("id", old, props(tmp_path, update="echo other"))
    assert edited.changes and not edited.replaces
    p.update("id", old, props(tmp_path))
    assert (tmp_path / "ran.txt").read_text() == "updated\n"
