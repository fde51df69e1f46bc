"""``gpucloud converge`` leaves nothing behind: its run folder (plan copy, -e values) is removed however it ends."""

from __future__ import annotations

import pytest

from conftest import CLUSTERS
from gpucloud import converge
from gpucloud.commands import converge as converge_command


def _checked(spec):
    from gpucloud.pipeline import check_spec

    return check_spec(spec)


@pytest.mark.parametrize("outcome", ["ok", "failed", "crash"])
def test_run_folder_is_removed(monkeypatch, capsys, outcome):
    seen = {}

    def fake_run(plan_dir, inventory, *, work, extravars, **_kw):
        seen["work"], seen["plan"], seen["vars"] = work, plan_dir, extravars
        assert work.is_dir() and (plan_dir / "plan.json").is_file()  # the plan copy exists while Ansible runs
        if outcome == "crash":
            raise RuntimeError("ansible-runner died")
        stats = {"ok": {"gpu01": 3}, "failures": {"gpu01": 1} if outcome == "failed" else {}}
        return converge.Result(rc=0 if outcome == "ok" else 2, hosts=converge._stats(stats))

    monkeypatch.setattr(converge, "run", fake_run)
    args = (CLUSTERS / "lab.yaml", None, None, False, None, ["vault_slurmdbd_db_password=s3cret'pw"], _checked)
    if outcome == "crash":
        with pytest.raises(RuntimeError):
            converge_command.run_cli(*args)
    else:
        assert converge_command.run_cli(*args) == (0 if outcome == "ok" else 1)
    assert seen["vars"] == {"vault_slurmdbd_db_password": "s3cret'pw"}
    assert not seen["work"].exists(), "the run folder with the plan copy and the -e values was left behind"
    assert "s3cret" not in capsys.readouterr().err


def test_known_hosts_is_the_file_ansibles_ssh_checks_strictly(monkeypatch, tmp_path):
    """--known-hosts (the phone-home's file) reaches Ansible's ssh as its only known_hosts, and Ansible reads it."""
    import os
    import shutil
    import subprocess

    known = tmp_path / "known_hosts"
    seen = {}

    def fake_run(plan_dir, inventory, *, work, known_hosts=None, **_kw):
        seen["env"] = converge.ssh_known_hosts_env(known_hosts)
        return converge.Result(rc=0)

    monkeypatch.setattr(converge, "run", fake_run)
    args = (CLUSTERS / "lab.yaml", None, None, False, None, [], _checked)
    assert converge_command.run_cli(*args, known_hosts=known) == 2  # no such file: nothing runs
    assert not seen
    known.write_text("")
    assert converge_command.run_cli(*args, known_hosts=known) == 0
    assert seen["env"] == {"ANSIBLE_SSH_EXTRA_ARGS": f"-o UserKnownHostsFile={known} -o StrictHostKeyChecking=yes"}
    assert converge.ssh_known_hosts_env(None) == {}
    tool = shutil.which("ansible-config")
    if tool is None:
        pytest.skip("ansible-config is not installed")
    dump = subprocess.run([tool, "dump", "-t", "connection", "--only-changed", "ssh"], capture_output=True, text=True,
                          env={**os.environ, "ANSIBLE_CONFIG": str(converge.CONFIG), **seen["env"]}, timeout=60)
    assert f"ssh_extra_args(env: ANSIBLE_SSH_EXTRA_ARGS) = -o UserKnownHostsFile={known} " in dump.stdout, dump.stdout
    assert "host_key_checking(" in dump.stdout and "= True" in dump.stdout
