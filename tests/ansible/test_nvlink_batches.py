"""The compute layer's batches over NVL72 trays, as Ansible itself cuts them: compute.yml's own plays (hosts, serial,
vars_files) over the plan's rendered inventory and imex/converge.yml, their tasks swapped for one that records each
batch, on local connections."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest
import yaml

from conftest import CLUSTERS, ROOT
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.render import imex, inventory
from gpucloud.write import INVENTORY, write_tree

needs_ansible = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed")


@needs_ansible
def test_nvl72_trays_converge_whole_racks_and_apart_from_other_gpu_nodes(tmp_path):
    data = yaml.safe_load((CLUSTERS / "nvl72.yaml").read_text())
    gpu = data["node_pools"][0]
    # Four racks, the second one tray short; a budget of 40 trays is two whole racks.
    gpu.update(count=72, exclude=[20], rollout={"max_unavailable": 40})
    # Other GPU nodes in the same cluster converge in the other play, in batches of gpucloud_batch.
    data["node_pools"].append({"name": "hgx", "id": 3, "model": "hgx-h100-8", "count": 3, "hostname": "h{index:02}",
                               "roles": ["compute"], "fabric": "none", "rack": {"name": "h{rack:02}"}})
    # A second NVL72 pool, later in the spec though its names sort first: its rack comes after the first pool's.
    data["node_pools"].append({"name": "a72", "id": 4, "model": "gb200-nvl72", "count": 18, "hostname": "ab{index:04}",
                               "roles": ["compute"], "rack": {"name": "a{rack:02}"},
                               "rollout": {"max_unavailable": 18}})
    spec = tmp_path / "nvl72.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    checked = check_spec(spec)
    assert not checked.fails("error"), [f.message for f in checked.findings if f.level == "error"]
    plan = build_plan(checked.spec, tuple(checked.findings))
    plan_dir = tmp_path / "plan"
    write_tree(plan_dir / "inventory", {k[len("inventory/"):]: v for k, v in inventory.render(plan).items()},
               INVENTORY)
    for rel, body in imex.render(plan).items():
        (plan_dir / rel).parent.mkdir(parents=True, exist_ok=True)
        (plan_dir / rel).write_bytes(body)

    record = tmp_path / "batches"
    record.mkdir()
    plays = [p for p in yaml.safe_load((ROOT / "playbooks" / "compute.yml").read_text()) if "hosts" in p]
    assert [p["hosts"] for p in plays] == ["role_compute:!nvlink", "role_compute:&nvlink"]
    for n, play in enumerate(plays):
        # The NVLink play keeps its first step, the check that its batches are the plan's.
        checks = [t for t in play.pop("pre_tasks", []) if "batches are the plan's" in t["name"]]
        for key in ("roles", "post_tasks"):
            play.pop(key, None)
        play["connection"] = "local"
        # One line per batch, in the order the batches run.
        play["tasks"] = checks + [{"name": "Record the batch", "run_once": True, "ansible.builtin.lineinfile": {
            "path": f"{record}/{n}.log", "line": "{{ ansible_play_batch | to_json }}", "create": True,
            "mode": "0644"}}]
    assert len(plays[1]["tasks"]) == 2
    (tmp_path / "play.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "ah"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "lt"),
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable, "ANSIBLE_NOCOLOR": "1"}

    def run(*extra: str) -> subprocess.CompletedProcess:
        return subprocess.run(["ansible-playbook", "-i", str(plan_dir / "inventory"), str(tmp_path / "play.yml"),
                               "-e", "gpucloud_batch=2", *extra], env=env, capture_output=True, text=True, timeout=600)

    # Without gpucloud_plan_dir on the command line, Ansible cuts the batches before it reads the inventory's
    # plan folder: the play refuses to run rather than cut racks.
    res = run()
    assert res.returncode != 0 and "the NVLink trays' batches are not the plan's whole racks" in res.stdout, \
        res.stdout[-4000:]
    assert not (record / "1.log").exists()
    for p in record.iterdir():
        p.unlink()
    res = run("-e", f"gpucloud_plan_dir={plan_dir}")
    assert res.returncode == 0, res.stdout[-4000:] + res.stderr[-2000:]
    others, trays = ([json.loads(line) for line in (record / f"{n}.log").read_text().splitlines()] for n in (0, 1))
    assert others == [["h01", "h02"], ["h03"]]
    racks: dict[str, list[str]] = {}
    for pp in plan.pools:
        for h in pp.hosts:
            racks.setdefault(h.rack, []).append(h.name)
    assert trays == [racks["nvl01"] + racks["nvl02"], racks["nvl03"] + racks["nvl04"], racks["a01"]]
    assert len(trays[0]) == 35 and "gb0020" not in trays[0]

    # A tray that went unreachable in an earlier layer of the same run is left out of its batch by Ansible, while the
    # batches are still cut from every tray: the check must not take the shorter batch for a split rack (at 12,500
    # hosts some tray is always down, and a failed run_once check would fail every tray of the play).
    for p in record.iterdir():
        p.unlink()
    # A host_vars file outranks the tray's own variables inline in hosts.yml.
    (plan_dir / "inventory" / "host_vars").mkdir()
    (plan_dir / "inventory" / "host_vars" / "gb0005.json").write_text(json.dumps(
        {"ansible_connection": "ssh", "ansible_host": "127.0.0.1", "ansible_port": 9, "ansible_user": "nobody",
         "ansible_ssh_common_args": "-o ConnectTimeout=5 -o BatchMode=yes"}))
    earlier = {"name": "An earlier layer", "hosts": "role_compute", "gather_facts": False, "connection": "local",
               "tasks": [{"name": "Reach the node", "ansible.builtin.ping": {}}]}
    (tmp_path / "play.yml").write_text(yaml.safe_dump([earlier, *plays], sort_keys=False))
    res = run("-e", f"gpucloud_plan_dir={plan_dir}")
    assert "the NVLink trays' batches are not the plan's whole racks" not in res.stdout, res.stdout[-4000:]
    assert res.returncode == 4 and "gb0005" in res.stdout and "UNREACHABLE" in res.stdout, res.stdout[-4000:]
    assert (record / "1.log").exists(), res.stdout[-6000:]
    short = [json.loads(line) for line in (record / "1.log").read_text().splitlines()]
    assert short == [[h for h in trays[0] if h != "gb0005"], trays[1], trays[2]]


@needs_ansible
@pytest.mark.parametrize("driver", ["570.133.20", "580.65.06"])
def test_the_imex_roles_package_is_the_plans_pin(tmp_path, driver):
    """The role's default, as Ansible evaluates it, names the package plan/software.py pins (what verify reads)."""
    from gpucloud.plan.software import imex_package

    defaults = yaml.safe_load((ROOT / "playbooks" / "roles" / "imex" / "defaults" / "main.yml").read_text())
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "vars": {**defaults, "nvidia_driver_version": driver},
             "tasks": [{"name": "Evaluate", "ansible.builtin.copy": {
                 "content": "{{ imex_packages | map('regex_replace', '$', '=' ~ imex_version_pattern) | list | to_json }}",
                 "dest": str(tmp_path / "asked.json"), "mode": "0644"}}]}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    env = {**os.environ, "ANSIBLE_HOME": str(tmp_path / "ah"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "lt"),
           "ANSIBLE_PYTHON_INTERPRETER": sys.executable}
    res = subprocess.run(["ansible-playbook", "-i", "localhost,", str(tmp_path / "play.yml")], env=env,
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:]
    assert json.loads((tmp_path / "asked.json").read_text()) == [f"{imex_package(driver)}={driver}-*"]
