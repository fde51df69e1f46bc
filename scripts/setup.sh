#!/usr/bin/env bash
# Create .venv with gpucloud installed (editable). `--deploy` adds the deploy extra (the Pulumi SDK, Ansible,
# paramiko: what `gpucloud plan` needs to check the Pulumi graph under mocks, and converge/apply/verify need);
# `--test` adds that, the test extras and the Debian packages the integration tests run for real (Slurm, MariaDB,
# OpenSM + ibsim, sshd, ...) and two Debian roots, 13 with Slurm 24.11 for the block-topology tests and testing with
# 25.05 or later for topology.yaml
# (scripts/build-slurm-root.sh; GPUCLOUD_BUILD_SLURM_ROOT=0 skips it). Both also build the Pulumi engine from pinned
# Go modules (scripts/build-pulumi.sh), which `gpucloud apply` drives; GPUCLOUD_BUILD_ENGINE=0 skips that where only
# plans are made (scripts/quickstart.sh).
set -euo pipefail
cd "$(dirname "$0")/.."

with_tests=0
with_deploy=0
case "${1:-}" in
  --test) with_tests=1 ;;
  --deploy) with_deploy=1 ;;
  "") ;;
  *) echo "usage: scripts/setup.sh [--deploy|--test]" >&2; exit 2 ;;
esac

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

python3 - <<'PY' || { echo "gpucloud needs Python 3.11 or newer (python3 --version)" >&2; exit 2; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

apt_packages=()
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv)
if [ "$with_tests" = 1 ]; then
  # One package list for developers and CI, kept in .ci/packages.txt.
  mapfile -t listed < <(grep -v '^\s*#' .ci/packages.txt | tr -s ' \t' '\n' | grep -v '^$')
  apt_packages+=("${listed[@]}")
fi
if [ "${#apt_packages[@]}" -gt 0 ] && command -v apt-get >/dev/null; then
  missing=()
  for p in "${apt_packages[@]}"; do dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p"); done
  if [ "${#missing[@]}" -gt 0 ]; then
    export DEBIAN_FRONTEND=noninteractive
    as_root apt-get update -qq
    as_root apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
fi

# A venv left half-made by an interrupted run has no pip: make it again.
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  rm -rf .venv
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ "$with_tests" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[test]'
elif [ "$with_deploy" = 1 ]; then
  .venv/bin/python -m pip install -q -e '.[deploy]'
else
  .venv/bin/python -m pip install -q -e .
fi
if { [ "$with_tests" = 1 ] || [ "$with_deploy" = 1 ]; } && [ "${GPUCLOUD_BUILD_ENGINE:-1}" != 0 ]; then
  # The Pulumi engine `gpucloud apply` drives, built from pinned Go modules (reused once built).
  scripts/build-pulumi.sh >/dev/null
fi
if [ "$with_tests" = 1 ] && [ "${GPUCLOUD_BUILD_SLURM_ROOT:-1}" != 0 ]; then
  # Slurm 24.11 (topology/block, --segment, switch/nvidia_imex) and Debian testing's 25.05 or later (topology.yaml),
  # chrooted by the tests; reused once built.
  as_root scripts/build-slurm-root.sh trixie >/dev/null
  as_root scripts/build-slurm-root.sh forky >/dev/null
fi
