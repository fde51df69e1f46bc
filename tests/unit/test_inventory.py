"""The generated Ansible inventory: groups, ranges, literal host addresses and secrets, checked with Ansible itself."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from conftest import CLUSTERS, EXAMPLES, ROOT
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.plan.groups import group_name
from gpucloud.plan.hosts import plan_pool
from gpucloud.plan.layers import INVENTORY as HOSTS_YML, inventory_variables
from gpucloud.render import inventory as inv
from gpucloud.write import GENERATED_INVENTORY, INVENTORY, write_tree

GOLDEN = ROOT / "tests" / "golden" / "inventory"


def _plan(name: str):
    return build_plan(check_spec(CLUSTERS / f"{name}.yaml").spec)


def _vars(files: dict[str, bytes]) -> tuple[dict[str, dict], dict[str, dict]]:
    """Each group's variables and each host's own, as the rendered hosts.yml holds them."""
    return inventory_variables(files[HOSTS_YML])


def _write(tmp_path: Path, plan) -> Path:
    out = tmp_path / plan.spec.name
    write_tree(out, {k[len("inventory/"):]: v for k, v in inv.render(plan).items()}, INVENTORY)
    return out


@pytest.mark.parametrize("name", ["lab", "ishikari", "abci3"])
def test_golden(name, golden):
    """The one file, hosts.yml; of a pool of more than 4 hosts only the first two and last two host lines (the
    committed inventories under inventory/ hold all of them, checked by test_committed_inventory_is_current)."""
    plan = _plan(name)
    files = inv.render(plan)
    assert sorted(files) == [HOSTS_YML]
    left_out = {h.name for pp in plan.pools for h in pp.hosts[2:-2]}
    lines = [line for line in files[HOSTS_YML].decode().splitlines(keepends=True)
             if not (line.startswith('        "') and line.split('"')[1] in left_out)]
    golden(GOLDEN / name / "hosts.yml", "".join(lines).encode())


# Examples whose inventory is rendered where it is needed (test_every_host_gets_few_variables, bench_inventory.py)
# rather than committed: colossus-100k's is 12,520 host lines, 3.9 MB of generated text that no review reads.
NOT_COMMITTED = {"colossus-100k"}


def test_only_the_largest_examples_inventory_is_left_out_of_the_repository():
    tracked = subprocess.run(["git", "ls-files", "inventory"], cwd=ROOT, capture_output=True, text=True).stdout
    if not tracked:
        pytest.skip("not a git checkout")
    folders = {line.split("/")[1] for line in tracked.splitlines()}
    assert folders == {s.stem for s in EXAMPLES} - NOT_COMMITTED
    assert all(f"/inventory/{name}/" in (ROOT / ".gitignore").read_text() for name in NOT_COMMITTED)


@pytest.mark.parametrize("spec", [s for s in EXAMPLES if s.stem not in NOT_COMMITTED], ids=lambda p: p.stem)
def test_committed_inventory_is_current(spec):
    """inventory/<cluster>/ in the repository is exactly what `gpucloud render` writes (PRs show real diffs)."""
    plan = build_plan(check_spec(spec).spec)
    files = {k[len("inventory/"):]: v for k, v in inv.render(plan).items()}
    folder = ROOT / "inventory" / plan.spec.name
    on_disk = {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}
    assert sorted(on_disk) == sorted(files), f"run: gpucloud render {spec.relative_to(ROOT)}"
    for rel, data in files.items():
        assert on_disk[rel] == data, f"inventory/{plan.spec.name}/{rel} is stale; run: gpucloud render {spec.name}"


def test_every_role_group_declared_even_when_empty():
    data = json.loads(inv.render(_plan("lab"))["inventory/hosts.yml"])
    groups = data["all"]["children"]
    for role in inv.ROLES:
        assert group_name("role", role) in groups
    assert groups["role_storage_server"] is None or groups["role_storage_server"] == {}
    assert groups["role_compute"]["children"] == {"pool_gpu": {}}


def test_host_ranges_split_at_excludes_and_width_changes():
    spec = check_spec(CLUSTERS / "lab.yaml").spec
    pool = replace(spec.pools[0], count=12, start=95, hostname="gpu{index:02}-a", exclude=frozenset({97}))
    pp = plan_pool(spec, pool)
    assert inv.host_ranges(pp, pp.hosts) == ["gpu[95:96]-a", "gpu[98:99]-a", "gpu[100:106]-a"]
    unpadded = plan_pool(spec, replace(pool, hostname="n{index}", start=1, count=3, exclude=frozenset()))
    assert inv.host_ranges(unpadded, unpadded.hosts) == ["n[1:3]"]


def test_secrets_are_vault_references_only():
    groups, hosts = _vars(inv.render(_plan("ishikari")))
    all_vars = groups["all"]
    assert all_vars["munge_key"] == "{{ vault_munge_key }}"
    assert all_vars["gpucloud_bmc_password"] == "{{ vault_bmc_password }}"
    # The database password reference reaches the slurmdbd hosts only.
    dbd = groups["role_slurmdbd"]
    assert dbd["slurmdbd_storage_password"] == "{{ vault_slurmdbd_db_password }}"
    others = json.dumps([v for k, v in groups.items() if k != "role_slurmdbd"] + list(hosts.values()))
    assert "slurmdbd_storage_password" not in others and "vault_slurmdbd" not in others


def test_slurmdbd_role_replaces_the_token_the_plan_carries(tmp_path):
    """Whatever the spec calls the database secret, the role gets the very token slurmdbd.conf holds for it."""
    from gpucloud.render.slurm import render as render_slurm

    text = (CLUSTERS / "ishikari.yaml").read_text()
    assert "slurmdbd-db-password" in text
    spec = tmp_path / "ishikari.yaml"
    spec.write_text(text.replace("slurmdbd-db-password", "acct-db"))
    plan = build_plan(check_spec(spec).spec)
    dbd = _vars(inv.render(plan))[0]["role_slurmdbd"]
    assert dbd["slurmdbd_password_placeholder"] == "@@secret:acct-db@@"
    assert dbd["slurmdbd_storage_password"] == "{{ vault_acct_db }}"
    assert "StoragePass=@@secret:acct-db@@\n" in render_slurm(plan)["slurm/slurmdbd.conf"].decode()


def test_render_is_deterministic():
    assert inv.render(_plan("abci3")) == inv.render(_plan("abci3"))


def _ansible_env(tmp_path: Path) -> dict:
    import os

    return {**os.environ, "ANSIBLE_HOME": str(tmp_path / "ah"), "ANSIBLE_LOCAL_TEMP": str(tmp_path / "lt"),
            "ANSIBLE_INVENTORY_ENABLED": "ansible.builtin.yaml"}


def _listing(tmp_path: Path, plan) -> dict:
    """What `ansible-inventory --list` prints for the plan's inventory: every host's variables as Ansible merged them
    (what AWX and other inventory syncs read)."""
    folder = _write(tmp_path, plan)
    res = subprocess.run(["ansible-inventory", "-i", str(folder / "hosts.yml"), "--list"], env=_ansible_env(tmp_path),
                         check=True, capture_output=True, text=True)
    return json.loads(res.stdout)


needs_ansible = pytest.mark.skipif(shutil.which("ansible") is None, reason="ansible-core is not installed")


@needs_ansible
def test_ansible_reads_groups_and_planned_addresses(tmp_path):
    """Ansible itself expands the ranges, and every host's addresses are the planned ones as literal values."""
    plan = _plan("lab")
    listing = _listing(tmp_path, plan)
    assert listing["rack_lab01"]["hosts"] == ["gpu01", "gpu02"]
    assert listing["su_gpu_000"]["hosts"] == ["gpu01", "gpu02"]
    assert listing["tenant_teaching"]["children"] == ["pool_gpu"]
    prefix = plan.spec.networks["ipoib"].rail_prefix
    hostvars = listing["_meta"]["hostvars"]
    assert sorted(hostvars) == sorted(h.name for h in plan.hosts())
    for h in plan.hosts():
        got = hostvars[h.name]
        assert (got["ansible_host"], got["gpucloud_bmc"]) == (h.management, h.bmc), h.name
        assert got["rdma_ipoib_addresses"] == ",".join(f"{a}/{prefix}" for a in h.ipoib) and h.ipoib, h.name
    # abci3 also has a storage network: its address is the planned one too, and only hosts with IPoIB list rails.
    plan = _plan("abci3")
    hostvars = _listing(tmp_path / "abci3", plan)["_meta"]["hostvars"]
    for h in plan.hosts():
        got = hostvars[h.name]
        assert got["gpucloud_storage_address"] == h.storage and h.storage, h.name
        own = got.get("rdma_ipoib_addresses")
        assert ([a.split("/")[0] for a in own.split(",")] if own else []) == list(h.ipoib), h.name
    # Nothing else is written: no group_vars/ folder an operator's group_vars/all/ could hide (or be hidden by).
    assert sorted(p.name for p in (tmp_path / "abci3" / "abci3").iterdir()) == ["hosts.yml"]


# Values that stay references by design: secrets (Ansible Vault variables, never written) and the plan folder, which
# is wherever the inventory is read from (`gpucloud converge` passes its own).
_REFERENCES = re.compile(r"^\{\{ vault_[a-z0-9_]+ \}\}$")
_LOCATED = {"gpucloud_plan_dir": "{{ inventory_dir }}/.."}


def _templated(hostvars: dict) -> list[str]:
    out = []

    def walk(path: str, value) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(f"{path}.{k}", v)
        elif isinstance(value, list):
            for i, v in enumerate(value):
                walk(f"{path}[{i}]", v)
        elif isinstance(value, str) and ("{{" in value or "{%" in value):
            host, _, key = path.partition(".")
            if not (_REFERENCES.match(value) or _LOCATED.get(key) == value):
                out.append(f"{path} = {value}")

    for host, variables in hostvars.items():
        walk(host, variables)
    return out


@needs_ansible
@pytest.mark.parametrize("name", ["lab", "hokkaido-10k"])
def test_no_host_variable_is_a_template(tmp_path, name):
    """AWX, SSH-config generators and CMDB syncs read the values as they are: every value a host gets is literal,
    except the Vault references of secrets and the plan folder's location."""
    listing = _listing(tmp_path, _plan(name))
    hostvars = listing["_meta"]["hostvars"]
    assert len(hostvars) == _plan(name).host_count
    assert _templated(hostvars) == []
    # The exceptions are really there (the check above looks at the right values).
    some = next(iter(hostvars.values()))
    assert _REFERENCES.match(some["munge_key"]) and some["gpucloud_plan_dir"] == _LOCATED["gpucloud_plan_dir"]


def test_no_inventory_file_holds_a_template_but_references():
    """The same, on the file itself, for every example (colossus-100k included: no Ansible run needed)."""
    for spec in EXAMPLES:
        groups, hosts = _vars(inv.render(build_plan(check_spec(spec).spec)))
        assert _templated(groups) == [] and _templated(hosts) == [], spec.stem
        assert any(_REFERENCES.match(str(v)) for v in groups["all"].values())  # the check sees the references


def test_a_hosts_own_addresses_move_the_triggers_of_its_stack_only():
    """A host's own variables count for the stack that holds it, as its membership does: a changed address re-runs
    that stack's layers (the fabric layer writes the IPoIB addresses), and no other stack's."""
    from gpucloud.plan.stacks import stack_inputs

    plan = _plan("hokkaido-10k")
    files = inv.render(plan)

    def triggers(fs):
        return {s["stack"]: [x["trigger"] for x in s["layers"]] for s in stack_inputs(plan, fs)}

    before = triggers(files)
    host = plan.pools[0].hosts[-1].name
    holders = {s["stack"] for s in stack_inputs(plan, files) for p in s["pools"] if any(h[0] == host for h in p["hosts"])}
    assert len(holders) == 1 and len(before) > 2
    line = next(x for x in files[HOSTS_YML].split(b"\n") if x.startswith(f'        "{host}": '.encode()))
    moved_line = line.replace(b'"ansible_host": "', b'"ansible_host": "1')
    after = triggers({**files, HOSTS_YML: files[HOSTS_YML].replace(line, moved_line)})
    moved = {stack for stack in before if before[stack] != after[stack]}
    assert moved == holders
    (stack,) = holders
    assert all(b != a for b, a in zip(before[stack], after[stack]))  # every layer of it
    # A group variable (a setting every role reads) moves every stack's every layer.
    bumped = triggers({**files, HOSTS_YML: files[HOSTS_YML].replace(b'"cuda_version": "', b'"cuda_version": "9')})
    assert all(b != a for s in before for b, a in zip(before[s], bumped[s]))


def test_ib_rate_is_what_the_port_trains_to():
    """abci3's login nodes have NDR adapters on an NDR200 fabric: NHC must expect 200 Gb/s there, not 400."""
    groups, _ = _vars(inv.render(_plan("abci3")))
    login, gpu = groups["pool_login"], groups["pool_h200"]
    assert (login["gpucloud_ib_rate"], gpu["gpucloud_ib_rate"]) == (200, 200)


def test_role_groups_name_every_planned_controller_and_subnet_manager():
    plan = _plan("abci3")
    groups, _ = _vars(inv.render(plan))
    ctl = groups["role_slurm_controller"]
    assert ctl["slurm_controller_hosts"] == list(plan.slurm.controllers) == ["ctl1", "ctl2", "ctl3"]
    sm = groups["role_subnet_manager"]
    assert sm["opensm_hosts"] == list(plan.fabrics[0].subnets[0].sm_hosts)
    # colossus-100k runs no OpenSM of its own: no host list that would claim otherwise.
    assert "role_subnet_manager" not in _vars(inv.render(_plan("colossus-100k")))[0]


def test_every_host_gets_few_variables():
    """Ansible copies every group variable into every member host and spends its time per value and host; no
    variable may grow with the cluster, and a host's own literals stay few (each costs more than a group value)."""
    plan = build_plan(check_spec(CLUSTERS / "colossus-100k.yaml").spec)
    files = inv.render(plan)
    assert sorted(files) == [HOSTS_YML]  # no file per host (Ansible would search and load each one)
    groups, hosts = _vars(files)
    assert len(hosts) == plan.host_count == 12_520
    own = hosts["gpu00001"]
    assert sorted(own) == ["ansible_host", "gpucloud_bmc", "gpucloud_storage_address", "rdma_ipoib_addresses"]
    assert len(own["rdma_ipoib_addresses"].split(",")) == 8  # one per rail, in one value
    assert not any(isinstance(v, (list, dict)) for h in hosts.values() for v in h.values())
    per_host = groups["all"] | groups["pool_gpu"] | own
    assert len(per_host) <= 28, sorted(per_host)
    assert all(len(v) <= 8 for v in per_host.values() if isinstance(v, (list, dict))), per_host
    values = sum(len(v) if isinstance(v, (list, dict)) else 1 for v in per_host.values())
    assert values <= 36, values


def test_render_command_writes_and_refuses_foreign_folders(cli, tmp_path):
    res = cli("render", str(CLUSTERS / "lab.yaml"), "--out", str(tmp_path))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "lab" / "hosts.yml").read_bytes().startswith(GENERATED_INVENTORY)
    assert cli("render", str(CLUSTERS / "lab.yaml"), "--out", str(tmp_path)).returncode == 0  # replaces its own
    foreign = tmp_path / "x" / "lab"
    foreign.mkdir(parents=True)
    (foreign / "notes.txt").write_text("mine")
    res = cli("render", str(CLUSTERS / "lab.yaml"), "--out", str(tmp_path / "x"))
    assert res.returncode == 2 and "Traceback" not in res.stderr
    assert (foreign / "notes.txt").read_text() == "mine"


def test_container_paths_and_mounts_follow_the_planned_local_scratch():
    """enroot unpacks images on the pool's own local scratch (abci3 mounts it at /local, not /scratch); pools the
    storage planner gives no scratch neither get enroot paths nor expect a scratch mount in NHC."""
    for cluster, pool, mount in (("abci3", "h200", "/local"), ("lab", "gpu", "/scratch")):
        plan = build_plan(check_spec(CLUSTERS / f"{cluster}.yaml").spec)
        pp = next(p for p in plan.pools if p.pool.name == pool)
        v = inv.pool_vars(plan, pp)
        assert v["enroot_pyxis_data_path"] == f"{mount}/enroot/data/user-$(id -u)"
        assert v["enroot_pyxis_cache_path"] == f"{mount}/enroot/cache/group-$(id -g)"
        assert mount in v["gpucloud_mounts"]
    plan = build_plan(check_spec(CLUSTERS / "lab.yaml").spec)
    login = inv.pool_vars(plan, next(p for p in plan.pools if p.pool.name == "login"))
    assert "enroot_pyxis_data_path" not in login and "/scratch" not in login["gpucloud_mounts"]
    assert "/home" in login["gpucloud_mounts"]


def test_plugstack_loads_pyxis_from_the_packaged_path():
    """Not /usr/local (a source build's default): where a Debian-family package installs it, beside Slurm's plugins;
    the enroot_pyxis role reads this line and fails when the package put the plugin elsewhere."""
    from gpucloud.render import slurm as render_slurm
    from gpucloud.render.slurm import PYXIS_PLUGIN

    conf = render_slurm.render(build_plan(check_spec(CLUSTERS / "ishikari.yaml").spec))["slurm/plugstack.conf"]
    assert f"required {PYXIS_PLUGIN} " in conf.decode() and "/usr/local/" not in conf.decode()


@needs_ansible
def test_each_nvl72_tray_names_its_nvlink_domain_through_one_group_per_rack(tmp_path):
    """The imex role reads imex/<domain>/ of the plan: every tray's gpucloud_nvlink_domain is its own rack (one NVLink
    domain), set once per domain group rather than per host; hosts outside NVLink domains have none."""
    data = yaml.safe_load((CLUSTERS / "nvl72.yaml").read_text())
    data["node_pools"][0]["count"] = 36
    data["node_pools"][0]["exclude"] = [20]
    data["node_pools"][0]["rollout"] = {"max_unavailable": 18}
    path = tmp_path / "nvl.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    plan = build_plan(check_spec(path).spec)
    listing = _listing(tmp_path, plan)
    assert listing["nvlink"]["children"] == ["nvlink_nvl01", "nvlink_nvl02"]
    assert len(listing["nvlink_nvl02"]["hosts"]) == 17 and "gb0020" not in listing["nvlink_nvl02"]["hosts"]
    meta = listing["_meta"]["hostvars"]
    assert {h: meta[h]["gpucloud_nvlink_domain"] for h in ("gb0001", "gb0018", "gb0019", "gb0036")} == {
        "gb0001": "nvl01", "gb0018": "nvl01", "gb0019": "nvl02", "gb0036": "nvl02"}
    assert "gpucloud_nvlink_domain" not in meta["ctl01"]
    # The domain groups hold the same trays as the plan's IMEX peer lists.
    from gpucloud.plan.hosts import nvlink_domains
    assert {d.name: list(d.hosts) for d in nvlink_domains(plan.pools)} == {
        r: listing[f"nvlink_{r}"]["hosts"] for r in ("nvl01", "nvl02")}
    # No host's own variables grow: the domain is a group variable.
    assert "gpucloud_nvlink_domain" not in json.dumps(_vars(inv.render(plan))[1])


def test_the_nvlink_group_is_declared_without_nvlink_domains():
    assert json.loads(inv.render(_plan("lab"))[HOSTS_YML])["all"]["children"]["nvlink"] == {}


@needs_ansible
def test_an_operators_group_vars_all_folder_adds_to_the_plans_variables(tmp_path):
    """The docs put Vault secrets in group_vars/all/vault.yml beside hosts.yml. Ansible reads only the first of
    group_vars/all/ and group_vars/all.yml it finds, so a generated all.yml lost every pin and the plan folder to the
    operator's folder; with the plan's variables in hosts.yml both apply, and the operator's file wins a name both set."""
    plan = _plan("lab")
    folder = _write(tmp_path, plan)
    (folder / "group_vars" / "all").mkdir(parents=True)
    (folder / "group_vars" / "all" / "vault.yml").write_text("vault_munge_key: not-a-secret\ndcgm_version: 9.9.9\n")
    res = subprocess.run(["ansible-inventory", "-i", str(folder / "hosts.yml"), "--host", "gpu01"],
                         env=_ansible_env(tmp_path), check=True, capture_output=True, text=True)
    got = json.loads(res.stdout)
    assert got["vault_munge_key"] == "not-a-secret" and got["munge_key"] == "{{ vault_munge_key }}"
    assert got["nvidia_driver_version"] == plan.spec.software.nvidia_driver and got["gpucloud_gpus"] == 8
    assert got["dcgm_version"] == "9.9.9"  # an operator's value of the same name outranks the plan's
