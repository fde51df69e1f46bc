"""The Slurm prolog and epilog that tell dcgm-exporter which job holds which GPU (--hpc-job-mapping-dir files: one per
GPU index, holding the job id), run by sh with the environment slurmd gives them."""

from __future__ import annotations

import shlex
import subprocess

import jinja2

from conftest import ROOT

TEMPLATES = ROOT / "playbooks" / "roles" / "monitoring" / "templates"


def _script(tmp_path, name, folder):
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.filters["quote"] = shlex.quote
    text = env.from_string((TEMPLATES / f"dcgm-job-map-{name}.sh.j2").read_text()).render(monitoring_job_map_dir=str(folder))
    path = tmp_path / name
    path.write_text(text)
    return path


def _run(script, **env):
    return subprocess.run(["sh", str(script)], env={"PATH": "/usr/bin:/bin", **env}, capture_output=True, text=True,
                          timeout=30)


def test_prolog_names_the_job_on_each_of_its_gpus_and_epilog_forgets_them(tmp_path):
    folder = tmp_path / "job map"  # a space: the folder is quoted
    prolog, epilog = _script(tmp_path, "prolog", folder), _script(tmp_path, "epilog", folder)
    assert _run(prolog, SLURM_JOB_ID="4242", SLURM_JOB_GPUS="0,3").returncode == 0
    assert sorted(p.name for p in folder.iterdir()) == ["0", "3"]
    assert (folder / "3").read_text() == "4242\n"
    # GPU 3 is taken by the next job before 4242's epilog runs: the epilog leaves the newer entry alone.
    assert _run(prolog, SLURM_JOB_ID="4243", SLURM_JOB_GPUS="3").returncode == 0
    assert _run(epilog, SLURM_JOB_ID="4242", SLURM_JOB_GPUS="0,3").returncode == 0
    assert sorted(p.name for p in folder.iterdir()) == ["3"]
    assert (folder / "3").read_text() == "4243\n"


def test_a_job_without_gpus_or_an_odd_value_writes_nothing_and_never_fails(tmp_path):
    folder = tmp_path / "map"
    prolog = _script(tmp_path, "prolog", folder)
    assert _run(prolog, SLURM_JOB_ID="7").returncode == 0
    assert not folder.exists()
    assert _run(prolog, SLURM_JOB_ID="7", SLURM_JOB_GPUS="../x,1").returncode == 0
    assert [p.name for p in folder.iterdir()] == ["1"]
