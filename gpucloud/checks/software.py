"""Checks: pinned software versions against the compatibility table in gpucloud.catalog.compat."""

from __future__ import annotations

from gpucloud import catalog
from gpucloud.catalog import compat
from gpucloud.checks import check
from gpucloud.findings import Finding

_PATH = ("software",)


def _gpu_pools(spec):
    for pool in spec.pools:
        model = pool.hardware
        if model is not None and model.gpus:
            yield pool, model


@check("software-cuda-driver")
def cuda_driver(spec):
    """The CUDA toolkit needs a newer driver than the one pinned."""
    sw = spec.software
    if not sw.cuda or not sw.nvidia_driver:
        return
    req = compat.cuda_requirement(sw.cuda)
    if req is None:
        return  # software-unchecked says so
    if compat.at_least(sw.nvidia_driver, req.min_driver):
        return
    major = str(compat.version_key(sw.cuda)[0])
    floor = compat.CUDA_MINOR_COMPAT_DRIVER.get(major)
    if floor and compat.at_least(sw.nvidia_driver, floor):
        yield Finding("software-cuda-driver", "warning", (*_PATH, "cuda"),
                      f"CUDA {sw.cuda} needs driver >= {req.min_driver}; {sw.nvidia_driver} runs it only through "
                      "minor version compatibility (no PTX JIT of newer code, some APIs missing)",
                      f"pin nvidia_driver >= {req.min_driver} (source: {req.source})")
        return
    yield Finding("software-cuda-driver", "error", (*_PATH, "cuda"),
                  f"CUDA {sw.cuda} needs driver >= {req.min_driver}; nvidia_driver is {sw.nvidia_driver}",
                  f"pin nvidia_driver >= {req.min_driver} or an older CUDA (source: {req.source})")


@check("software-gpu-driver")
def gpu_driver(spec):
    """The driver is older than the first branch that supports a pool's GPUs."""
    sw = spec.software
    if not sw.nvidia_driver:
        return
    seen = set()
    for pool, model in _gpu_pools(spec):
        req = compat.GPU_MIN_DRIVER.get(model.gpu.name) if model.gpu else None
        if req is None or req.version in seen or compat.at_least(sw.nvidia_driver, req.min_driver):
            continue
        seen.add(req.version)
        yield Finding("software-gpu-driver", "error", (*_PATH, "nvidia_driver"),
                      f"driver {sw.nvidia_driver} does not support the {req.version} GPUs of pool {pool.name}",
                      f"pin nvidia_driver >= {req.min_driver} ({req.note}; source: {req.source})")


@check("software-fabric-manager")
def fabric_manager(spec):
    """NVSwitch systems need the Fabric Manager of exactly the driver's version."""
    sw = spec.software
    if not sw.nvidia_driver or not sw.fabric_manager or sw.fabric_manager == sw.nvidia_driver:
        return
    nvswitch = [pool.name for pool, model in _gpu_pools(spec) if model.nvswitch]
    if nvswitch:
        yield Finding("software-fabric-manager", "error", (*_PATH, "fabric_manager"),
                      f"fabric_manager {sw.fabric_manager} differs from nvidia_driver {sw.nvidia_driver}; on the "
                      f"NVSwitch nodes of pool {nvswitch[0]} it would not start and the GPUs stay unusable",
                      f"remove fabric_manager (it defaults to the driver version) ({compat.FABRIC_MANAGER_GUIDE})")


@check("software-dcgm")
def dcgm(spec):
    """DCGM needs a newer driver than the one pinned."""
    sw = spec.software
    if not sw.dcgm or not sw.nvidia_driver:
        return
    req = compat.dcgm_requirement(sw.dcgm)
    if req is not None and not compat.at_least(sw.nvidia_driver, req.min_driver):
        yield Finding("software-dcgm", "error", (*_PATH, "dcgm"),
                      f"DCGM {sw.dcgm} needs driver >= {req.min_driver}; nvidia_driver is {sw.nvidia_driver}",
                      f"pin a newer driver ({req.note}; source: {req.source})")


@check("software-doca-ofed")
def doca_ofed(spec):
    """DOCA-OFED releases that do not support the nodes' ConnectX adapters."""
    sw = spec.software
    if not sw.doca_ofed:
        return
    row = compat.DOCA_OFED.get(sw.doca_ofed)
    if row is None:
        return  # software-unchecked says so
    devices, source = row
    for pool in spec.pools:
        model = pool.hardware
        if model is None:
            continue
        for hca in (*model.compute_hcas, *model.storage_hcas):
            family = hca.model.split(" ")[0]
            if family not in devices:
                yield Finding("software-doca-ofed", "error", (*_PATH, "doca_ofed"),
                              f"DOCA-OFED {sw.doca_ofed} does not support the {family} adapters of pool {pool.name}",
                              f"supported: {', '.join(sorted(devices))} (source: {source})")
                return


@check("software-unchecked")
def unchecked(spec):
    """Pinned versions the compatibility table does not know, so nothing was checked for them (info)."""
    sw = spec.software
    known = (
        ("cuda", sw.cuda, sw.cuda and compat.cuda_requirement(sw.cuda), "its driver requirement",
         "the CUDA release notes"),
        ("dcgm", sw.dcgm, sw.dcgm and compat.dcgm_requirement(sw.dcgm), "its driver requirement",
         "the DCGM release notes"),
        ("doca_ofed", sw.doca_ofed, sw.doca_ofed and compat.DOCA_OFED.get(sw.doca_ofed), "adapter support",
         "the DOCA-Host profiles page"),
    )
    for field, version, row, what, source in known:
        if version and row is None:
            yield Finding("software-unchecked", "info", (*_PATH, field),
                          f"{field} {version} is not in the compatibility table; {what} is not checked",
                          f"add a row to gpucloud/catalog/compat.py from {source}")
    if sw.nvidia_driver:
        missing = sorted({model.gpu.name for _, model in _gpu_pools(spec)
                          if model.gpu and model.gpu.name not in compat.GPU_MIN_DRIVER})
        for gpu in missing:
            yield Finding("software-unchecked", "info", (*_PATH, "nvidia_driver"),
                          f"the {gpu} is not in the compatibility table; whether driver {sw.nvidia_driver} supports "
                          "it is not checked", "add a row to gpucloud/catalog/compat.py from the driver release notes")
