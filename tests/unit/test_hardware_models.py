"""Models a spec defines or changes: resolved once, read by every planner, renderer and check."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace

import pytest
import yaml

from conftest import CLUSTERS, ROOT
from gpucloud import catalog
from gpucloud.pipeline import check_spec
from gpucloud.plan import build_plan
from gpucloud.spec import load

OWN = ROOT / "tests" / "specs" / "valid" / "own-hardware.yaml"


@pytest.fixture(scope="module")
def own():
    checked = check_spec(OWN)
    assert not checked.fails(), [f.message for f in checked.findings]
    return build_plan(checked.spec, tuple(checked.findings))


def pools(plan):
    return {pp.pool.name: pp for pp in plan.pools}


def test_base_model_with_fields_changed(own):
    m = pools(own)["nvl"].model
    assert (m.name, m.sockets, m.cores_per_socket, m.threads_per_core, m.memory_gib) == ("epyc-h100nvl-4", 2, 96, 2, 768)
    assert (m.gpus, m.gpu.key, m.gpu.memory_gib, m.gpu_socket) == (4, "h100-nvl-94gb", 94, (0, 0, 1, 1))
    assert m.rails == 4 and m.rack_units == 4 and m.power_kw == 4.2  # the rest from h100-4
    assert m.cpu_model == "AMD EPYC 9654"


def test_pool_override_keeps_the_model_name(own):
    m = pools(own)["big"].model
    assert (m.name, m.memory_gib, m.cores_per_socket) == ("h100-4", 1536, 48)
    assert catalog.SERVERS["h100-4"].memory_gib == 1024  # the catalog itself is untouched


def test_rail_device_names_reach_the_inventory(own):
    from gpucloud.render.inventory import pool_vars

    dgx = pool_vars(own, pools(own)["dgx"])
    assert dgx["gpucloud_ib_devices"] == ["mlx5_0", "mlx5_3", "mlx5_4", "mlx5_5", "mlx5_6", "mlx5_9", "mlx5_10",
                                          "mlx5_11"]
    assert dgx["gpucloud_ib_rails"] == 8
    assert pool_vars(own, pools(own)["nvl"])["gpucloud_ib_devices"] == ["mlx5_0", "mlx5_1", "mlx5_2", "mlx5_3"]
    assert pools(own)["dgx"].model.devices("storage") == ("mlx5_1", "mlx5_2")
    # Without names, storage adapters number after the compute rails, as the fabric plan numbers them.
    assert catalog.SERVERS["hgx-h100-8"].devices("storage") == ("mlx5_8", "mlx5_9")


def test_verify_expects_the_resolved_gpus(own):
    from gpucloud.verify.expect import pool_expect

    pe = pool_expect(own, pools(own)["nvl"])
    assert (pe.gpus, pe.gpu_family, pe.gpu_memory_mib) == (4, "H100", 94 * 1024)


def test_bom_and_power_count_the_resolved_servers(own):
    from gpucloud.render import plan_md

    text = plan_md.render_text(own)
    assert "| server epyc-h100nvl-4 | 4 |" in text
    assert "as planned: 2 x 96 cores, 768 GiB, 4 x NVIDIA H100 NVL 94GB 94 GiB, 4U, 4.2 kW" in text
    assert "| server h100-4 | 2 |" in text and "1536 GiB" in text  # the override shows, the name stays


def _spec_with(tmp_path, hardware=None, override=None, model="h100-4"):
    data = {"name": "t", "networks": {"management": {"cidr": "10.0.0.0/16"}, "bmc": {"cidr": "10.1.0.0/16"}},
            "node_pools": [{"name": "gpu", "model": model, "count": 2}]}
    if hardware is not None:
        data["hardware"] = {"models": hardware}
    if override is not None:
        data["node_pools"][0]["hardware"] = override
    path = tmp_path / "spec.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return {(f.check, f.path): f for f in check_spec(path).findings}


@pytest.mark.parametrize("override, path, words", [
    ({"gpu": {"sockets": [0, 0, 1]}}, ("node_pools", 0, "hardware", "gpu", "sockets"), "3 GPU(s) but 4"),
    ({"gpu": {"sockets": [0, 0, 1, 2]}}, ("node_pools", 0, "hardware", "gpu", "sockets"), "CPU socket 2"),
    ({"compute_hcas": {"devices": ["mlx5_0"]}}, ("node_pools", 0, "hardware", "compute_hcas", "devices"),
     "1 device name(s) for 4"),
    ({"storage_hcas": {"count": 1, "rate": "ndr", "devices": ["mlx5_0"]}}, ("node_pools", 0, "hardware", "storage_hcas", "devices"),
     "compute and a storage"),
    ({"gpu": {"model": "h100"}}, ("node_pools", 0, "hardware", "gpu", "model"), "unknown GPU model"),
    ({"storage_hcas": {"count": 1}}, ("node_pools", 0, "hardware", "storage_hcas"), "without a rate"),
])
def test_bad_override_is_a_located_finding(tmp_path, override, path, words):
    found = _spec_with(tmp_path, override=override)
    f = found[("catalog-hardware", path)]
    assert f.level == "error" and words in f.message and f.hint and f.line is not None


def test_unknown_override_field_is_a_schema_error(tmp_path):
    found = _spec_with(tmp_path, override={"gpu": {"memory_gb": 94}})
    assert [k for k in found if k[0] == "schema"] == [("schema", ("node_pools", 0, "hardware", "gpu", "memory_gb"))]


def test_spec_models_name_their_base_or_describe_everything(tmp_path):
    found = _spec_with(tmp_path, {"mine": {"base": "h100-5"}}, model="mine")
    f = found[("catalog-hardware", ("hardware", "models", "mine", "base"))]
    assert "h100-4" in f.hint
    assert not any(k[0] == "catalog-model" for k in found)  # the model's own finding is enough
    found = _spec_with(tmp_path, {"mine": {"memory_gib": 64}}, model="mine")
    f = found[("catalog-hardware", ("hardware", "models", "mine"))]
    assert "rack_units" in f.message and "cpu.sockets" in f.message
    found = _spec_with(tmp_path, {"h100-4": {"memory_gib": 64}})
    assert ("catalog-hardware", ("hardware", "models", "h100-4")) in found
    full = {"base-less": {"rack_units": 1, "memory_gib": 256, "cpu": {"sockets": 1, "cores_per_socket": 64}}}
    found = _spec_with(tmp_path, full, model="base-less")
    assert not [k for k, f in found.items() if f.level == "error"]
    spec = load(tmp_path / "spec.yaml").spec
    assert spec.pools[0].hardware.cores == 64 and spec.pools[0].hardware.gpus == 0


def test_gpus_without_their_adapters_warn(tmp_path):
    found = _spec_with(tmp_path, override={"gpu": {"count": 8}})
    f = found[("catalog-hardware-rails", ("node_pools", 0, "hardware"))]
    assert f.level == "warning" and "8 GPUs but 4" in f.message


def test_every_catalog_model_round_trips_through_its_fields():
    """What `gpucloud catalog` shows is what hardware.models takes: a model rebuilt from it is the same machine."""
    for name, model in catalog.SERVERS.items():
        fields = catalog.model_fields(model)
        raw = {k: v for k, v in fields.items() if k not in ("name",)}
        for group in ("compute_hcas", "storage_hcas"):
            raw[group] = {k: v for k, v in raw[group].items() if v is not None}
        if not raw["gpu"]["count"]:
            raw["gpu"] = {"count": 0}
        rebuilt = catalog.spec_model(f"{name}-copy", raw, {})
        assert replace(rebuilt, name=name) == replace(model, compute_devices=rebuilt.compute_devices,
                                                      storage_devices=rebuilt.storage_devices), name
        assert rebuilt.devices("compute") == model.devices("compute")


def test_catalog_command_json():
    out = subprocess.run([sys.executable, "-m", "gpucloud", "catalog", "--output", "json"], capture_output=True,
                         text=True, cwd=ROOT, check=True).stdout
    doc = json.loads(out)
    h = doc["servers"]["hgx-h100-8"]
    assert h["cpu"] == {"model": "Intel Xeon Platinum 8480C", "sockets": 2, "cores_per_socket": 56,
                        "threads_per_core": 2, "arch": "x86_64"}
    assert doc["servers"]["gb200-nvl72"]["nvlink"] == {"trays": 18, "switch_trays": 9, "rack_power_kw": 150.0,
                                                       "nmx": True}
    assert doc["servers"]["gb200-nvl72"]["cpu"]["arch"] == "aarch64"
    assert h["compute_hcas"]["devices"][:2] == ["mlx5_0", "mlx5_1"] and h["storage_hcas"]["count"] == 2
    assert "h100-nvl-94gb" in doc["gpus"] and "qm9700" in doc["switches"]
    one = subprocess.run([sys.executable, "-m", "gpucloud", "catalog", "epyc-h100nvl-4", "--spec", str(OWN), "-o",
                          "json"], capture_output=True, text=True, cwd=ROOT, check=True).stdout
    assert json.loads(one)["servers"]["epyc-h100nvl-4"]["memory_gib"] == 768
    bad = subprocess.run([sys.executable, "-m", "gpucloud", "catalog", "hgx-h100"], capture_output=True, text=True,
                         cwd=ROOT)
    assert bad.returncode == 2 and "did you mean" in bad.stderr and "Traceback" not in bad.stderr


def test_examples_unchanged_by_resolution():
    """Catalog models without overrides resolve to the catalog's own objects; a spec's own model to its own."""
    for path in sorted(CLUSTERS.glob("*.yaml")):
        spec = load(path).spec
        for pool in spec.pools:
            assert pool.hardware is (spec.models.get(pool.model) or catalog.SERVERS[pool.model]), pool.name
