"""Package pins and apt repositories: what the spec's ``software`` section means on a Debian-family node.

- A spec version is the upstream part of a Debian version: ``550.127.08`` is installed as whatever
  ``[epoch:]550.127.08-revision`` the repository carries (``550.127.08-0ubuntu1``, ``1:3.3.7``). The roles ask apt
  for ``name=<version>-*`` (a role variable per component overrides the pattern where a vendor uses an epoch), and
  ``verify`` strips the epoch and the revision before it compares (``upstream``).
- A package named after its version (``cuda-toolkit-12-4``) is pinned by its name.
- The repositories a spec lists become deb822 sources with ``Signed-By``; ``software.mirror`` replaces every
  repository's URL by ``<mirror>/<name>/`` (apt's own format: sources.list(5)).

Pure functions of the Spec (and a pool's hardware model); the inventory renderer and verify read the same ones.
"""

from __future__ import annotations

from gpucloud.spec.model import Repository, Spec

# Package names per pinned component, as the roles' defaults name them (playbooks/roles/*/defaults/main.yml).
SLURM_ROLE_PACKAGES = {"compute": ("slurmd", "slurm-client"), "slurm-controller": ("slurmctld", "slurm-client"),
                       "slurmdbd": ("slurmdbd",), "login": ("slurm-client",)}
# The lustre_client role's packages (its defaults' lustre_client_packages), installed where the pool mounts Lustre.
LUSTRE_CLIENT_PACKAGES = ("lustre-client-utils", "lustre-client-modules-dkms")


def upstream(debian_version: str) -> str:
    """The upstream part of a Debian version: no epoch (``1:``), no revision (after the last ``-``)."""
    v = debian_version.split(":", 1)[1] if ":" in debian_version.split("-", 1)[0] else debian_version
    return v.rsplit("-", 1)[0] if "-" in v else v


def driver_packages(version: str) -> tuple[str, ...]:
    branch = version.split(".")[0]
    return (f"nvidia-driver-{branch}-server", f"nvidia-utils-{branch}-server")


def imex_package(version: str) -> str:
    """NVIDIA's CUDA repository names IMEX after the driver branch up to 575 (nvidia-imex-570) and nvidia-imex from
    the 580 branch on; the imex role's default names it the same way."""
    branch = version.split(".")[0]
    return "nvidia-imex" if int(branch) >= 580 else f"nvidia-imex-{branch}"


def pool_pins(spec: Spec, gpus: int, nvswitch: bool, hcas: int, roles: tuple[str, ...],
              lustre: bool = False, nvlink: bool = False) -> dict[str, str]:
    """Package -> pinned (upstream) version for a pool's hosts: what the roles install (each on the hosts its
    playbook targets: slurmd on compute, slurmctld on controllers, ...) and what verify reads back. ``lustre``: the
    pool mounts a Lustre filesystem of the plan (the Lustre client is installed only there). ``nvlink``: the pool's
    trays are in rack-scale NVLink domains (the compute layer's imex role installs IMEX at the driver's version)."""
    sw = spec.software
    out: dict[str, str] = {}
    if gpus and sw.nvidia_driver:
        out.update(dict.fromkeys(driver_packages(sw.nvidia_driver), sw.nvidia_driver))
        if nvlink and "compute" in roles:
            out[imex_package(sw.nvidia_driver)] = sw.nvidia_driver
        if nvswitch and sw.fabric_manager:
            out[f"nvidia-fabricmanager-{sw.fabric_manager.split('.')[0]}"] = sw.fabric_manager
        if sw.dcgm:
            out["datacenter-gpu-manager"] = sw.dcgm
    if hcas and sw.doca_ofed:
        out["doca-ofed"] = sw.doca_ofed
    if sw.slurm:
        for role, packages in SLURM_ROLE_PACKAGES.items():
            if role in roles:
                out.update(dict.fromkeys(packages, sw.slurm))
    if "compute" in roles and (spec.slurm.enroot or spec.slurm.pyxis):
        if sw.enroot:
            out.update(dict.fromkeys(("enroot", "enroot+caps"), sw.enroot))
        if sw.pyxis:
            out["nvslurm-plugin-pyxis"] = sw.pyxis
    if lustre and sw.lustre_client:
        out.update(dict.fromkeys(LUSTRE_CLIENT_PACKAGES, sw.lustre_client))
    return dict(sorted(out.items()))


def repository_url(spec: Spec, repo: Repository) -> str:
    """The URL a node fetches the repository from: the site mirror's folder for it, or its own."""
    if spec.software.mirror:
        return f"{spec.software.mirror}/{repo.name}/"
    return repo.url


def repositories(spec: Spec) -> list[dict]:
    """The repositories as the ``repositories`` role takes them (``repositories_list``), in spec order."""
    out = []
    for r in spec.software.repositories:
        signed_by = " ".join(x for x in (r.key, r.fingerprint) if x)
        entry = {"name": r.name, "uris": repository_url(spec, r), "suites": r.suite, "signed_by": signed_by,
                 "packages": list(r.packages)}
        if r.components:
            entry["components"] = " ".join(r.components)
        out.append(entry)
    return out
