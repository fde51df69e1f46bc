"""verify details the rest of the fast suite let through: drain flags on an idle or mixed node, and a node whose
``hostname`` answers with its FQDN.

Each test fails under a one-line bug listed in scripts/mutants.py.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.verify.collect import Collected, Section, collectors
from gpucloud.verify.compare import compare
from gpucloud.verify.expect import expectations

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "verify"
RECORDED = FIXTURES / "recorded" / "h100"
FILES = {"hostname": "hostname", "kernel": "uname-r", "gpus": "nvidia-smi-query", "nvlink": "nvidia-smi-nvlink",
         "ibstat": "ibstat", "ibstatus": "ibstatus", "addresses": "ip-addr.json", "mounts": "findmnt.json",
         "slurm": "scontrol-node", "packages": "dpkg-query"}


@pytest.fixture(scope="module")
def gpu01():
    plan = build_plan(check_spec(FIXTURES / "site.yaml").spec)
    return next(he for he in expectations(plan) if he.name == "gpu01")


def recorded(he) -> Collected:
    """What a healthy recorded H100 node answers, as gpu01."""
    subst = {"@HOST@": he.name, "@MGMT@": he.host.management, "@HOSTNUM@": f"{he.host.index:04x}",
             **{f"@IPOIB{r}@": a for r, a in enumerate(he.host.ipoib)}}
    running = (RECORDED / "running").read_text().split()
    out = {}
    for name, _ in collectors(he.pool, he.name):
        if name.startswith("service:"):
            out[name] = Section("", "", 0 if name.split(":")[1] in running else 1)
            continue
        text = (RECORDED / FILES[name]).read_text()
        for k, v in subst.items():
            text = text.replace(k, v)
        out[name] = Section(text, "", 0)
    return Collected(out)


def with_state(he, state: str) -> Collected:
    c = recorded(he)
    text = re.sub(r"State=\S+", f"State={state}", c.sections["slurm"].out)
    c.sections["slurm"] = Section(text + " Reason=maintenance [root@2024-09-03T08:00:00]", "", 0)
    return c


def test_the_recorded_node_conforms(gpu01):
    assert compare(gpu01, recorded(gpu01)).findings == []


@pytest.mark.parametrize("state", ["IDLE+DRAIN", "MIXED+DRAIN", "ALLOCATED+DRAIN", "IDLE+DRAIN+COMPLETING",
                                   "IDLE*", "DOWN", "DRAINED"])
def test_drained_or_unreachable_nodes_do_not_conform(gpu01, state):
    result = compare(gpu01, with_state(gpu01, state))
    assert [(f.check, f.message) for f in result.findings] == [("slurm-state", f"Slurm state {state}")]
    assert result.status != "conforming"


@pytest.mark.parametrize("state", ["IDLE", "MIXED", "ALLOCATED", "IDLE+COMPLETING", "MIXED+PLANNED"])
def test_nodes_that_take_jobs_conform(gpu01, state):
    assert compare(gpu01, with_state(gpu01, state)).findings == []


@pytest.mark.parametrize("answer", ["gpu01\n", "gpu01.cluster.example.org\n", "gpu01.\n"])
def test_a_node_answering_with_its_fqdn_is_itself(gpu01, answer):
    c = recorded(gpu01)
    c.sections["hostname"] = Section(answer, "", 0)
    assert compare(gpu01, c).findings == []


def test_another_node_answering_with_an_fqdn_is_still_another_node(gpu01):
    c = recorded(gpu01)
    c.sections["hostname"] = Section("gpu011.cluster.example.org\n", "", 0)
    (f,) = compare(gpu01, c).findings
    assert f.check == "hostname" and "'gpu011'" in f.detail
