"""Playbooks and roles: syntax, ansible-lint at the production profile, role conventions, golden templates."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from conftest import CLUSTERS, ROOT, run_cli
from gpucloud.plan.layers import INVENTORY, inventory_variables

PLAYBOOKS = ROOT / "playbooks"
ROLES = sorted(p for p in (PLAYBOOKS / "roles").iterdir() if p.is_dir())
GOLDEN = ROOT / "tests" / "golden" / "inventory" / "templates"
needs_ansible = pytest.mark.skipif(shutil.which("ansible-playbook") is None, reason="ansible-core is not installed")


def _env(tmp_path: Path) -> dict:
    return {**os.environ, "ANSIBLE_CONFIG": str(ROOT / "ansible.cfg"), "ANSIBLE_HOME": str(tmp_path / "ah"),
            "ANSIBLE_LOCAL_TEMP": str(tmp_path / "lt")}


@needs_ansible
def test_syntax_check(tmp_path):
    res = subprocess.run(["ansible-playbook", "--syntax-check", "-i", str(ROOT / "inventory" / "lab"),
                          str(PLAYBOOKS / "site.yml")], cwd=ROOT, env=_env(tmp_path), capture_output=True, text=True)
    assert res.returncode == 0, res.stdout + res.stderr


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("ansible-lint") is None, reason="ansible-lint is not installed")
def test_ansible_lint_production_profile(tmp_path):
    # .ansible-lint sets the production profile; exit 0 means no violation at all.
    res = subprocess.run(["ansible-lint", "--offline", "-q", "playbooks/"], cwd=ROOT, env=_env(tmp_path),
                         capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stdout[-8000:] + res.stderr[-4000:]


@pytest.mark.parametrize("role", ROLES, ids=lambda p: p.name)
def test_role_conventions(role):
    """defaults prefixed and commented, argument specs for every default, validate.yml imported first."""
    defaults = (role / "defaults" / "main.yml").read_text()
    names = list(yaml.safe_load(defaults) or {})
    assert all(n.startswith(role.name + "_") for n in names), f"{role.name}: unprefixed defaults"
    lines = defaults.splitlines()
    for name in names:
        i = next(i for i, line in enumerate(lines) if line.startswith(name + ":"))
        j = i - 1
        while j >= 0 and not lines[j].startswith("#") and lines[j] and lines[j][0] not in " -" \
                and not lines[j].startswith("---"):
            j -= 1  # a group of related variables shares the comment above it
        assert j >= 0 and lines[j].startswith("#"), f"{role.name}: {name} has no comment above it"
    specs = yaml.safe_load((role / "meta" / "argument_specs.yml").read_text())["argument_specs"]
    assert set(names) <= set(specs["main"]["options"]), f"{role.name}: defaults missing from argument_specs"
    first = yaml.safe_load((role / "tasks" / "main.yml").read_text())[0]
    assert first.get("ansible.builtin.import_tasks") == "validate.yml", f"{role.name}: validate.yml must come first"
    checks = yaml.safe_load((role / "tasks" / "validate.yml").read_text())
    assert all("fail_msg" in t.get("ansible.builtin.assert", {}) for t in checks if "ansible.builtin.assert" in t)


def test_no_task_loops_over_all_hosts():
    """Cluster-wide files come from the plan: no role reads hostvars or loops over groups."""
    for path in PLAYBOOKS.rglob("*.yml"):
        text = path.read_text()
        for word in ("hostvars", "groups['all']", "groups.all", "play_hosts", "ansible_play_hosts"):
            assert word not in text, f"{path.relative_to(ROOT)} uses {word}"
    for path in PLAYBOOKS.rglob("*.j2"):
        assert "hostvars" not in path.read_text(), path


@needs_ansible
def test_roles_read_facts_under_ansible_facts(tmp_path):
    """ansible.cfg turns off the top-level copies of facts (they cost every host a copy on each variable lookup),
    so a role that says `ansible_os_family` instead of `ansible_facts['os_family']` would fail on an undefined
    variable. The fact names are the ones the real setup module gathers here."""
    env = _env(tmp_path)
    config = subprocess.run(["ansible-config", "dump", "--only-changed"], cwd=ROOT, env=env, capture_output=True,
                            text=True, timeout=120)
    assert re.search(r"^INJECT_FACTS_AS_VARS\(.*\) = False$", config.stdout, re.M), config.stdout + config.stderr
    setup = subprocess.run(["ansible", "localhost", "-c", "local", "-m", "ansible.builtin.setup",
                            "-e", f"ansible_python_interpreter={sys.executable}", "-o"],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    facts = json.loads(setup.stdout.split("=>", 1)[1])["ansible_facts"]
    names = {k for k in facts if k.startswith("ansible_")} - {"ansible_facts"}
    assert {"ansible_os_family", "ansible_kernel", "ansible_distribution"} <= names, sorted(names)[:20]
    used = re.compile(r"\b(" + "|".join(sorted(map(re.escape, names), key=len, reverse=True)) + r")\b")
    for path in sorted([*PLAYBOOKS.rglob("*.yml"), *PLAYBOOKS.rglob("*.j2")]):
        hits = sorted(set(used.findall(path.read_text())))
        assert not hits, f"{path.relative_to(ROOT)} reads {', '.join(hits)}: use ansible_facts['<name>']"


TEMPLATES = [  # (role, template, host, extra vars)
    ("slurm_config", "slurm.conf.j2", "gpu01", {}),
    ("slurmdbd", "slurmdbd.conf.j2", "ctl01", {"slurmdbd_storage_password": "example-not-a-secret"}),
    ("node_health", "nhc.conf.j2", "gpu01", {}),
    ("node_health", "nhc.conf.j2", "login01", {}),
    ("rdma", "ipoib-netplan.yaml.j2", "gpu02", {}),
    ("rdma", "ipoib-netplan.yaml.j2", "ctl01", {}),
    ("common", "sysctl.conf.j2", "gpu01", {}),
    ("common", "limits.conf.j2", "gpu01", {}),
    # One entry of repositories_list as plan/software.py writes it (a spec with repositories: test_software_pins).
    ("repositories", "repository.sources.j2", "gpu01", {"item": {
        "name": "slurm", "uris": "http://mirror.site.example/apt/slurm/", "suites": "jammy", "components": "main",
        "signed_by": "/usr/share/keyrings/site.gpg 0123456789ABCDEF0123456789ABCDEF01234567",
        "packages": ["slurmctld", "slurmd"]}}),
    ("repositories", "repository.sources.j2", "ctl01", {"item": {
        "name": "cuda", "uris": "https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2204/x86_64/",
        "suites": "/", "signed_by": "/usr/share/keyrings/cuda-archive-keyring.gpg",
        "packages": ["datacenter-gpu-manager"]}}),
]

# A DGX H100 names its eight rails mlx5_0,3,4,5,6,9,10,11 (tests/specs/valid/own-hardware.yaml): the roles must use the
# plan's names, never mlx5_<rail>.
OWN_HARDWARE = ROOT / "tests" / "specs" / "valid" / "own-hardware.yaml"
DGX_TEMPLATES = [
    ("node_health", "nhc.conf.j2", "dgx01", {}),
    ("rdma", "ipoib-netplan.yaml.j2", "dgx02", {}),
]


@pytest.fixture(scope="module")
def rendered_templates(tmp_path_factory):
    """Every role template rendered by Ansible itself for lab hosts, offline (local connection)."""
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-core is not installed")
    return render_templates(tmp_path_factory.mktemp("templates"), CLUSTERS / "lab.yaml", TEMPLATES)


def render_templates(tmp: Path, spec: Path, templates) -> tuple[Path, Path]:
    """The plan of ``spec`` in tmp/plan and the role templates rendered from it by Ansible in tmp/out."""
    plan = tmp / "plan"
    res = run_cli("plan", str(spec), "--out", str(plan))
    assert res.returncode == 0, res.stderr
    plays = []
    groups, own = inventory_variables((plan / INVENTORY).read_bytes())
    for role, template, host, extra in templates:
        # Role defaults rank below inventory vars: load only those the inventory does not set.
        pool = "pool_" + host.rstrip("0123456789")
        inventory_keys = set(groups["all"]) | set(groups[pool]) | set(own[host])
        for group in (g for g in groups if g.startswith("role_")):
            inventory_keys |= set(groups[group])
        defaults = yaml.safe_load((PLAYBOOKS / "roles" / role / "defaults" / "main.yml").read_text())
        defaults_file = tmp / f"{role}-{host}-defaults.yml"
        defaults_file.write_text(yaml.safe_dump({k: v for k, v in defaults.items() if k not in inventory_keys}))
        plays.append({
            "name": f"{role} {template} {host}", "hosts": host, "gather_facts": False,
            "connection": "local", "vars_files": [str(defaults_file)],
            "vars": {"gpucloud_plan_dir": str(plan)},
            # Task vars: above the role defaults loaded as vars_files.
            "tasks": [{"name": "Render", "delegate_to": "localhost", "vars": extra, "ansible.builtin.template": {
                "src": str(PLAYBOOKS / "roles" / role / "templates" / template),
                "dest": str(tmp / "out" / f"{host}-{template[:-3]}"), "mode": "0644"}}],
        })
    (tmp / "out").mkdir()
    (tmp / "render.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    res = subprocess.run(["ansible-playbook", "-i", str(plan / "inventory"), str(tmp / "render.yml")], cwd=ROOT,
                         env=_env(tmp), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-6000:]
    return plan, tmp / "out"


@pytest.fixture(scope="module")
def rendered_dgx_templates(tmp_path_factory):
    if shutil.which("ansible-playbook") is None:
        pytest.skip("ansible-core is not installed")
    return render_templates(tmp_path_factory.mktemp("dgx"), OWN_HARDWARE, DGX_TEMPLATES)


@pytest.mark.parametrize("case", TEMPLATES, ids=lambda c: f"{c[0]}-{c[2]}-{c[1]}")
def test_template_golden(rendered_templates, case, golden):
    role, template, host, _extra = case
    _plan, out = rendered_templates
    name = f"{host}-{template[:-3]}"
    golden(GOLDEN / name, (out / name).read_bytes())


@pytest.mark.parametrize("case", DGX_TEMPLATES, ids=lambda c: f"{c[0]}-{c[2]}-{c[1]}")
def test_dgx_template_golden(rendered_dgx_templates, case, golden):
    _role, template, host, _extra = case
    _plan, out = rendered_dgx_templates
    name = f"{host}-{template[:-3]}"
    golden(GOLDEN / name, (out / name).read_bytes())


def test_rail_devices_are_the_models_not_numbered(rendered_dgx_templates):
    """NHC checks port 1 of each rail's HCA by the model's own device name, and the IPoIB comments name the same."""
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan

    plan = build_plan(check_spec(OWN_HARDWARE).spec)
    dgx = next(pp for pp in plan.pools if pp.pool.name == "dgx")
    devices = list(dgx.model.devices("compute"))
    assert devices != [f"mlx5_{r}" for r in range(len(devices))]  # the case this test is about
    _plan, out = rendered_dgx_templates
    checked = [line.split()[-1] for line in (out / "dgx01-nhc.conf").read_text().splitlines() if "check_hw_ib" in line]
    assert checked == sorted(f"{d}:1" for d in devices)
    netplan = (out / "dgx02-ipoib-netplan.yaml").read_text()
    assert [line.split()[-1] for line in netplan.splitlines() if "# rail " in line] == devices
    planned = next(h for h in dgx.hosts if h.name == "dgx02")
    ethernets = yaml.safe_load(netplan)["network"]["ethernets"]
    assert [ethernets[f"ib{r}"]["addresses"][0].split("/")[0] for r in range(len(ethernets))] == list(planned.ipoib)


def test_slurm_conf_is_the_plans(rendered_templates):
    plan, out = rendered_templates
    assert (out / "gpu01-slurm.conf").read_bytes() == (plan / "slurm" / "slurm.conf").read_bytes()


@needs_ansible
def test_the_roles_install_the_plans_files_with_the_spec_settings(tmp_path):
    """Site settings live in the spec: the roles print the plan's slurm.conf and slurmdbd.conf line for line (the
    password placeholder aside), so what the planner merged and the diff classified is what the hosts get."""
    data = yaml.safe_load((CLUSTERS / "lab.yaml").read_text())
    data["slurm"]["settings"] = {"maxjobcount": 50000, "KillWait": 45, "DisableRootJobs": True}
    data["slurm"]["dbd_settings"] = {"DbdPort": 7031, "CommitDelay": 1}
    spec = tmp_path / "lab.yaml"
    spec.write_text(yaml.safe_dump(data, sort_keys=False))
    plan, out = render_templates(tmp_path, spec, [t for t in TEMPLATES if t[0] in ("slurm_config", "slurmdbd")])
    conf = (plan / "slurm" / "slurm.conf").read_bytes()
    assert b"\nMaxJobCount=50000\n" in conf and conf.endswith(b"DisableRootJobs=YES\nKillWait=45\n")
    assert (out / "gpu01-slurm.conf").read_bytes() == conf
    dbd = (plan / "slurm" / "slurmdbd.conf").read_text()
    assert "DbdPort=7031\n" in dbd and "CommitDelay=1\n" in dbd
    placeholder = next(line.split("=", 1)[1] for line in dbd.splitlines() if line.startswith("StoragePass="))
    assert (out / "ctl01-slurmdbd.conf").read_text() == dbd.replace(placeholder, "example-not-a-secret")


def test_no_role_merges_site_settings_of_its_own():
    """The override variables are gone from every role (a leftover one is refused by the roles' validate step)."""
    for path in PLAYBOOKS.rglob("*"):
        if path.is_file() and path.suffix in (".yml", ".j2"):
            for line in path.read_text().splitlines():
                if "is not defined" in line or "is no longer read" in line:
                    continue  # the refusal itself
                assert "slurm_config_overrides" not in line and "slurmdbd_conf_overrides" not in line, (path, line)


def test_slurmdbd_conf_gets_the_vault_password(rendered_templates):
    _plan, out = rendered_templates
    text = (out / "ctl01-slurmdbd.conf").read_text()
    assert "StoragePass=example-not-a-secret\n" in text and "@@secret" not in text


def test_ipoib_addresses_are_the_plans(rendered_templates):
    """The rdma role's per-rail rule, as Ansible renders it, gives every rail the address the host planner chose."""
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan

    plan = build_plan(check_spec(CLUSTERS / "lab.yaml").spec)
    planned = {h.name: h for h in plan.hosts()}
    _plan_dir, out = rendered_templates
    for host in ("gpu02", "ctl01"):
        netplan = yaml.safe_load((out / f"{host}-ipoib-netplan.yaml").read_text())["network"]["ethernets"]
        got = [netplan[f"ib{r}"]["addresses"][0].split("/")[0] for r in range(len(netplan))]
        assert got == list(planned[host].ipoib) and got, host


@needs_ansible
def test_rdma_checks_each_address_of_the_inventorys_string(tmp_path):
    """The inventory gives a host its IPoIB addresses as one comma-separated string (a list is taken too): the role's
    checks count and match the addresses in it, one per rail, not the string's characters."""
    cases = {"string": ("10.0.0.1/22,10.0.4.1/22", "ok"), "list": (["10.0.0.1/22", "10.0.4.1/22"], "ok"),
             "none": ("", "ok"), "one-short": ("10.0.0.1/22", "refused"),
             "no-prefix": ("10.0.0.1/22,10.0.4.1", "refused"), "list-one-short": (["10.0.0.1/22"], "refused")}
    record = tmp_path / "record"
    tasks = [{"name": f"Case {name}", "vars": {"rdma_ipoib_addresses": addresses}, "block": [
        {"name": "Check", "ansible.builtin.include_role": {"name": "rdma", "tasks_from": "validate.yml"}},
        {"name": "Passed", "ansible.builtin.lineinfile": {"path": str(record), "line": f"{name} ok", "create": True,
                                                           "mode": "0644"}}],
        "rescue": [{"name": "Refused", "ansible.builtin.lineinfile": {
            "path": str(record), "line": f"{name} refused {{{{ ansible_failed_result.msg | default('') }}}}",
            "create": True, "mode": "0644"}}]} for name, (addresses, _) in cases.items()]
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local", "tasks": tasks,
             "vars": {"gpucloud_ib_rails": 2, "gpucloud_ib_devices": ["mlx5_0", "mlx5_3"],
                      "ansible_python_interpreter": sys.executable}}]
    (tmp_path / "play.yml").write_text(yaml.safe_dump(play, sort_keys=False))
    res = subprocess.run(["ansible-playbook", "-i", "localhost,", str(tmp_path / "play.yml")], cwd=ROOT,
                         env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-4000:]
    lines = record.read_text().splitlines()
    assert [line.split(" ")[:2] for line in lines] == [[name, want] for name, (_, want) in cases.items()], lines
    assert all("one rdma_ipoib_addresses entry (address/prefix) per rail" in line for line in lines if " refused " in line)


# Roles that install a component the spec pins, the inventory variable that carries the pin, and the example whose
# plan pins it on a pool with that role.
PINNED_ROLES = [  # (role, version variable, example, pool)
    ("slurm_controller", "slurm_version", "lab", "ctl"),
    ("slurmdbd", "slurm_version", "lab", "ctl"),
    ("slurmd", "slurm_version", "lab", "gpu"),
    ("login", "slurm_version", "lab", "login"),
    ("lustre_client", "lustre_client_version", "abci3", "h200"),
]


@needs_ansible
def test_pinned_packages_are_installed_at_the_pin(tmp_path):
    """Each role's install task, as Ansible evaluates it with the inventory's pin, asks apt for `name=<pin>-*` for
    every package the plan pins on the pool (plan/software.py's pool_pins, also what verify reads back)."""
    from gpucloud.pipeline import check_spec
    from gpucloud.plan import build_plan
    from gpucloud.plan.software import pool_pins
    from gpucloud.render.inventory import all_vars, pool_vars

    plays, expected = [], {}
    for role, variable, example, pool_name in PINNED_ROLES:
        plan = build_plan(check_spec(CLUSTERS / f"{example}.yaml").spec)
        pp = next(p for p in plan.pools if p.pool.name == pool_name)
        inventory = all_vars(plan) | pool_vars(plan, pp)
        version = inventory[variable]
        defaults = yaml.safe_load((PLAYBOOKS / "roles" / role / "defaults" / "main.yml").read_text())
        installs = [t["ansible.builtin.apt"] for t in yaml.safe_load((PLAYBOOKS / "roles" / role / "tasks" /
                                                                     "main.yml").read_text())
                    if "ansible.builtin.apt" in t and f"{role}_packages" in str(t["ansible.builtin.apt"]["name"])]
        assert len(installs) == 1, f"{role}: no apt task installs {role}_packages"
        assert "allow_downgrade" in installs[0], f"{role}: a lower pin must be refused unless asked for"
        packages = defaults[f"{role}_packages"]
        if variable == "slurm_version":
            hcas = len(pp.model.compute_hcas) if pp.pool.fabric == "compute" else 0
            pinned = pool_pins(plan.spec, pp.model.gpus, pp.model.nvswitch, hcas, pp.pool.roles)
            assert all(pinned[p] == version for p in packages), (role, pinned)
        expected[role] = sorted(f"{p}={version}-*" for p in packages)
        # Role defaults rank below inventory vars; as vars_files they would rank above: leave out the pin's own.
        defaults_file = tmp_path / f"{role}-defaults.yml"
        defaults_file.write_text(yaml.safe_dump({k: v for k, v in defaults.items() if k != variable}))
        plays.append({"name": role, "hosts": "localhost", "gather_facts": False, "connection": "local",
                      "vars_files": [str(defaults_file)], "vars": {variable: version},
                      "tasks": [{"name": "Evaluate", "ansible.builtin.copy": {
                          "content": "{{ (" + installs[0]["name"].strip()[2:-2] + ") | to_json }}",
                          "dest": str(tmp_path / f"{role}.json"), "mode": "0644"}}]})
    (tmp_path / "pins.yml").write_text(yaml.safe_dump(plays, sort_keys=False))
    res = subprocess.run(["ansible-playbook", "-i", "localhost,", str(tmp_path / "pins.yml")], cwd=ROOT,
                         env=_env(tmp_path), capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-6000:]
    for role, want in expected.items():
        asked = json.loads((tmp_path / f"{role}.json").read_text())
        assert sorted(a for a in asked if "=" in a) == want, (role, asked)
