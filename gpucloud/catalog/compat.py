"""Software compatibility facts: which driver each CUDA toolkit, GPU, DCGM and DOCA-OFED release needs.

Every row names the public document it comes from, so a reviewer can check it and a maintainer can extend it when a
new release is pinned. Versions missing from a table are reported as unchecked (info), never guessed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

CUDA_RELEASE_NOTES = ("NVIDIA CUDA Toolkit Release Notes, table 'CUDA Toolkit and Corresponding Driver Versions' "
                      "(docs.nvidia.com/cuda/cuda-toolkit-release-notes)")
CUDA_MINOR_COMPAT = ("NVIDIA CUDA Toolkit Release Notes, 'CUDA Minor Version Compatibility': a 12.x toolkit runs on "
                     ">= 525.60.13 with limited functionality, 11.x on >= 450.80.02")
FABRIC_MANAGER_GUIDE = ("NVIDIA Fabric Manager User Guide (docs.nvidia.com/datacenter/tesla/fabric-manager-user-guide):"
                        " the fabric manager package must be the same version as the driver, or it refuses to start")
DCGM_NOTES = "NVIDIA DCGM release notes (docs.nvidia.com/datacenter/dcgm/<version>/release-notes)"
DOCA_PROFILES = "NVIDIA DOCA-Host installation profiles, doca-ofed (docs.nvidia.com/doca/archive/<version>/)"


@dataclass(frozen=True)
class Requirement:
    """``component`` at ``version`` (a release line such as 12.4 or 3.x) needs a driver >= ``min_driver``."""

    component: str
    version: str
    min_driver: str
    source: str
    note: str = ""


# CUDA toolkit (major.minor, GA release) -> minimum Linux x86_64 driver.
CUDA: dict[str, Requirement] = {r.version: r for r in (
    Requirement("cuda", "11.8", "520.61.05", CUDA_RELEASE_NOTES),
    Requirement("cuda", "12.0", "525.60.13", CUDA_RELEASE_NOTES),
    Requirement("cuda", "12.1", "530.30.02", CUDA_RELEASE_NOTES),
    Requirement("cuda", "12.2", "535.54.03", CUDA_RELEASE_NOTES),
    Requirement("cuda", "12.3", "545.23.06", CUDA_RELEASE_NOTES),
    Requirement("cuda", "12.4", "550.54.14", CUDA_RELEASE_NOTES),
    Requirement("cuda", "12.5", "555.42.02", CUDA_RELEASE_NOTES),
    Requirement("cuda", "12.6", "560.28.03", CUDA_RELEASE_NOTES),
    Requirement("cuda", "12.8", "570.26", CUDA_RELEASE_NOTES),
)}

# Below the toolkit's own minimum but above this, a toolkit of the same major version still runs (minor version
# compatibility), without features that need the newer driver: a warning, not an error.
CUDA_MINOR_COMPAT_DRIVER: dict[str, str] = {"11": "450.80.02", "12": "525.60.13"}

# First driver branch that supports each GPU (data-center driver release notes, 'supported products').
GPU_MIN_DRIVER: dict[str, Requirement] = {r.version: r for r in (
    Requirement("gpu", "NVIDIA H100 SXM5 80GB", "520.61.05", CUDA_RELEASE_NOTES,
                "Hopper support arrived with CUDA 11.8"),
    Requirement("gpu", "NVIDIA H200 SXM 141GB", "550.54.14", "NVIDIA Data Center GPU Driver R550 release notes",
                "H200 is supported from the R550 branch"),
    Requirement("gpu", "NVIDIA B200 180GB", "570.26", CUDA_RELEASE_NOTES, "Blackwell support arrived with CUDA 12.8"),
    Requirement("gpu", "NVIDIA B200 (GB200) 186GB", "570.26", CUDA_RELEASE_NOTES,
                "Blackwell support arrived with CUDA 12.8"),
    Requirement("gpu", "NVIDIA B300 (GB300) 288GB", "570.26", CUDA_RELEASE_NOTES,
                "Blackwell support arrived with CUDA 12.8"),
)}

# DCGM release line -> minimum driver.
DCGM: dict[str, Requirement] = {r.version: r for r in (
    Requirement("dcgm", "2.x", "450.80.02", DCGM_NOTES, "R418 without NVSwitch; R450 (>= 450.80.02) with NVSwitch"),
    Requirement("dcgm", "3.x", "450.80.02", DCGM_NOTES, "DCGM 3.0 and 3.1 require an R450 driver (>= 450.80.02)"),
)}

# DOCA-OFED releases known to support the ConnectX adapters in the catalog.
DOCA_OFED: dict[str, tuple[frozenset[str], str]] = {
    version: (frozenset({"ConnectX-6", "ConnectX-7"}), DOCA_PROFILES)
    for version in ("2.5.0", "2.5.1", "2.5.2", "2.6.0", "2.7.0", "2.8.0", "2.9.0", "2.9.1", "2.9.2", "2.9.3")
}

_NUM = re.compile(r"[0-9]+")


def version_key(text: str) -> tuple[int, ...]:
    """'550.90.07' -> (550, 90, 7); non-numeric parts are ignored so '2.7.0-1' compares like 2.7.0."""
    return tuple(int(n) for n in _NUM.findall(text.split("-", 1)[0]))


def at_least(version: str, minimum: str) -> bool:
    return version_key(version) >= version_key(minimum)


def cuda_requirement(cuda: str) -> Requirement | None:
    key = ".".join(str(n) for n in version_key(cuda)[:2])
    return CUDA.get(key)


def dcgm_requirement(dcgm: str) -> Requirement | None:
    major = version_key(dcgm)[:1]
    return DCGM.get(f"{major[0]}.x") if major else None
