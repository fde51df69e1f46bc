"""Expectations from the plan and their comparison with collected sections, without SSH."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpucloud import catalog
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.verify import report
from gpucloud.verify.collect import Collected, Section, collectors
from gpucloud.verify.compare import compare, pool_drift
from gpucloud.verify.expect import expectations

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "verify"
RECORDED = FIXTURES / "recorded"
# section -> recorded file
FILES = {"hostname": "hostname", "kernel": "uname-r", "gpus": "nvidia-smi-query", "nvlink": "nvidia-smi-nvlink",
         "ibstat": "ibstat", "ibstatus": "ibstatus", "addresses": "ip-addr.json", "mounts": "findmnt.json",
         "slurm": "scontrol-node", "packages": "dpkg-query"}
BASE = {"gpu": "h100", "hgpu": "h200", "login": "cpu-2u", "ctl": "cpu-1u"}


@pytest.fixture(scope="module")
def hosts():
    plan = build_plan(check_spec(FIXTURES / "site.yaml").spec)
    return {he.name: he for he in expectations(plan)}


def sections(he, overrides=None, rcs=None):
    """What the collectors of ``he`` would return on a node with the recorded outputs."""
    subst = {"@HOST@": he.name, "@MGMT@": he.host.management, "@HOSTNUM@": f"{he.host.index:04x}",
             **{f"@IPOIB{r}@": a for r, a in enumerate(he.host.ipoib)}}
    running = (RECORDED / BASE[he.pool.pool] / "running").read_text().split()
    out = {}
    for name, _ in collectors(he.pool, he.name):
        if name.startswith("service:"):
            out[name] = Section("", "", 0 if name.split(":")[1] in running else 1)
            continue
        path = RECORDED / (overrides or {}).get(name, f"{BASE[he.pool.pool]}/{FILES[name]}")
        text = path.read_text()
        for k, v in subst.items():
            text = text.replace(k, v)
        out[name] = Section(text, "", (rcs or {}).get(name, 0))
    return Collected(out)


def checks(result):
    return sorted(f.check for f in result.findings)


@pytest.mark.parametrize("name", ["gpu01", "hgpu01", "login01", "ctl01"])
def test_healthy_recorded_nodes_conform(hosts, name):
    result = compare(hosts[name], sections(hosts[name]))
    assert result.findings == [] and result.status == "conforming"
    assert result.kernel == "5.15.0-119-generic"


def test_collectors_follow_the_plan(hosts):
    names = [n for n, _ in collectors(hosts["gpu01"].pool, "gpu01")]
    assert names == ["hostname", "kernel", "gpus", "nvlink", "ibstat", "ibstatus", "addresses", "mounts",
                     "service:munged", "service:slurmd", "slurm", "packages"]
    login = [n for n, _ in collectors(hosts["login01"].pool, "login01")]
    assert "gpus" not in login and "slurm" not in login and "service:munged" in login
    assert [n for n, _ in collectors(hosts["ctl01"].pool, "ctl01")][-2:] == ["service:munged", "service:slurmctld"]


def test_pinned_packages_are_read_back_and_compared(hosts):
    gpu = hosts["gpu01"]
    assert gpu.pool.packages == (("nvidia-driver-550-server", "550.90.07"), ("nvidia-fabricmanager-550", "550.90.07"),
                                 ("nvidia-utils-550-server", "550.90.07"))
    command = dict(collectors(gpu.pool, "gpu01"))["packages"]
    assert command.endswith(" nvidia-driver-550-server nvidia-fabricmanager-550 nvidia-utils-550-server")
    assert hosts["login01"].pool.packages == ()  # the site pins no Slurm version: nothing to compare there
    # An older driver than the pin, and Fabric Manager removed (its configuration left behind, status rc).
    result = compare(gpu, sections(gpu, {"packages": "broken/h100-old-driver-dpkg-query"}))
    assert sorted((f.check, f.message, f.detail) for f in result.findings) == [
        ("package-missing", "nvidia-fabricmanager-550 not installed, pinned 550.90.07", ""),
        ("package-version", "nvidia-driver-550-server 550.54.15, pinned 550.90.07", "installed 550.54.15-0ubuntu1")]
    # dpkg-query exits 1 when it knows none of a name: the names it knows still count; other errors are errors.
    result = compare(gpu, sections(gpu, {"packages": "broken/h100-old-driver-dpkg-query"}, {"packages": 1}))
    assert checks(result) == ["package-missing", "package-version"]
    result = compare(gpu, sections(gpu, rcs={"packages": 2}))
    assert [(f.check, f.message) for f in result.findings] == [("collector", "dpkg-query failed")]


def test_expected_rates_and_mounts(hosts):
    gpu, ctl = hosts["gpu01"].pool, hosts["ctl01"].pool
    assert {p.text for p in gpu.ports} == {"400 Gb/s (4X NDR)"} and len(gpu.ports) == 8
    # an NDR200 adapter on the NDR fabric links at NDR200
    assert [p.text for p in ctl.ports] == ["200 Gb/s (2X NDR)"]
    assert [m.mount for m in gpu.mounts] == ["/home", "/local", "/lustre/scratch"]
    assert gpu.gpu_family == "H100" and hosts["hgpu01"].pool.gpu_family == "H200"
    assert gpu.driver == "550.90.07" and gpu.services == ("munged", "slurmd")


def test_link_rate_is_the_slower_end():
    assert catalog.link_rate("ndr", None) == "ndr"
    assert catalog.link_rate("ndr", "ndr200") == "ndr200"  # split switch ports
    assert catalog.link_rate("ndr200", "ndr") == "ndr200"
    assert catalog.link_rate("hdr", "xdr") == "hdr"


def test_wrong_host_answering_at_the_address(hosts):
    c = sections(hosts["gpu02"])
    c.sections["hostname"] = Section("gpu07\n", "", 0)
    result = compare(hosts["gpu02"], c)
    assert checks(result) == ["hostname"]
    assert result.findings[0].detail == "'gpu07' at 10.200.0.66"


def test_an_h200_in_an_h100_pool(hosts):
    result = compare(hosts["gpu01"], sections(hosts["gpu01"], {"gpus": "h200/nvidia-smi-query"}))
    assert checks(result) == ["gpu-memory", "gpu-model"]
    messages = {f.message for f in result.findings}
    assert "GPU model 'NVIDIA H200', expected H100" in messages
    assert "GPU memory 143771 MiB, expected about 81920 MiB" in messages


def test_missing_tool_and_failing_tool_are_collector_findings(hosts):
    c = sections(hosts["gpu01"], rcs={"gpus": 127, "ibstat": 124})
    c.sections["gpus"] = Section("", "sh: 1: nvidia-smi: not found", 127)
    c.sections["nvlink"] = Section("NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver.",
                                   "", 9)
    result = compare(hosts["gpu01"], c)
    got = {(f.check, f.message, f.detail) for f in result.findings}
    assert got == {("collector", "nvidia-smi not found", "sh: 1: nvidia-smi: not found"),
                   ("collector", "nvidia-smi nvlink failed", "exit 9"),
                   ("collector", "ibstat timed out", "")}


def test_mount_with_wrong_type_and_wrong_source(hosts):
    c = sections(hosts["gpu01"])
    c.sections["mounts"] = Section('{"filesystems": [{"target": "/home", "source": "10.9.9.9:/home", "fstype": '
                                   '"nfs4"}, {"target": "/local", "source": "/dev/nvme2n1", "fstype": "ext4"}, '
                                   '{"target": "/lustre/scratch", "source": "10.202.0.1@o2ib:/other", '
                                   '"fstype": "lustre"}]}', "", 0)
    result = compare(hosts["gpu01"], c)
    assert {(f.check, f.message) for f in result.findings} == {
        ("mount-source", "/home is mounted from another source than planned"),
        ("mount-type", "/local is ext4, expected xfs"),
        ("mount-source", "/lustre/scratch is mounted from another source than planned"),
    }


def test_node_unknown_to_slurm_and_missing_ipoib(hosts):
    c = sections(hosts["gpu01"])
    c.sections["slurm"] = Section("Node gpu01 not found\n", "", 1)
    c.sections["addresses"] = Section(c.sections["addresses"].out.replace(hosts["gpu01"].host.ipoib[2], "10.9.9.9"),
                                      "", 0)
    result = compare(hosts["gpu01"], c)
    assert {(f.check, f.message, f.detail) for f in result.findings} == {
        ("slurm-unknown", "not a node in Slurm", ""),
        ("ipoib-missing", "IPoIB address of rail 2 missing", f"{hosts['gpu01'].host.ipoib[2]}/22"),
    }


def test_inactive_nvlink(hosts):
    c = sections(hosts["gpu01"])
    c.sections["nvlink"] = Section(c.sections["nvlink"].out.replace("Link 4: 26.562 GB/s", "Link 4: <inactive>", 2),
                                   "", 0)
    result = compare(hosts["gpu01"], c)
    assert [(f.check, f.detail) for f in result.findings] == [("nvlink-inactive", "GPU 0 link 4; GPU 1 link 4")]


def test_timed_out_host_reports_what_it_collected(hosts):
    c = sections(hosts["gpu01"])
    for name in ("mounts", "service:munged", "service:slurmd", "slurm"):
        del c.sections[name]
    c.sections["addresses"].rc = None
    c.timed_out = True
    result = compare(hosts["gpu01"], c)
    assert result.status == "timeout"
    assert checks(result) == ["timeout"]  # no "did not run" noise for the sections cut off


def test_drift_warns_the_minority_and_ties_go_to_the_newest(hosts):
    results = [compare(hosts[n], sections(hosts[n])) for n in ("gpu01", "gpu02", "gpu03", "hgpu01", "hgpu02")]
    results[2].kernel = "5.15.0-122-generic"
    results[4].kernel = "5.15.0-113-generic"
    pool_drift(results)
    got = {(r.host, f.check, f.message) for r in results for f in r.findings}
    assert got == {("gpu03", "kernel", "kernel 5.15.0-122-generic, pool gpu mostly runs 5.15.0-119-generic"),
                   ("hgpu02", "kernel", "kernel 5.15.0-113-generic, pool hgpu mostly runs 5.15.0-119-generic")}
    assert results[2].status == "warning" and report.conforms(results)


def test_report_is_the_same_whatever_order_hosts_answer(hosts):
    import io

    def run(order):
        results = []
        for n in order:
            c = sections(hosts[n], {"slurm": "broken/slurmd-down-scontrol-node"} if n != "gpu05" else None)
            results.append(compare(hosts[n], c))
        results.sort(key=lambda r: r.host)  # verify_all returns plan order
        buf = io.StringIO()
        report.as_json("verifylab", "site.yaml", results, buf)
        return buf.getvalue()

    assert run(["gpu01", "gpu05", "gpu03", "gpu02"]) == run(["gpu03", "gpu02", "gpu01", "gpu05"])
    doc = report.document("verifylab", "site.yaml", [compare(hosts[n], sections(
        hosts[n], {"slurm": "broken/slurmd-down-scontrol-node"})) for n in ("gpu01", "gpu02", "gpu03", "gpu05")])
    assert doc["problems"][0]["hosts"] == "gpu[01-03,05]"


def test_progress_counts_hosts_that_do_not_conform(hosts):
    from gpucloud.verify.run import progress_bar

    bar, advance = progress_bar(3)
    advance(compare(hosts["gpu01"], sections(hosts["gpu01"])))
    advance(compare(hosts["gpu03"], sections(hosts["gpu03"], {"gpus": "broken/h100-missing-gpu-query"})))
    (task,) = bar.tasks
    assert task.completed == 2 and task.total == 3 and task.fields["bad"] == 1
