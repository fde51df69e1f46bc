#!/usr/bin/env bash
# Build a Debian root holding a newer Slurm than Debian 12's 22.05, for the integration tests of what 22.05 does
# not know: Debian 13 (trixie, the default) has Slurm 24.11 (topology/block, --segment, switch/nvidia_imex),
# Debian's testing suite (forky) a 25.05 or later one (topology.yaml: several named topologies). The tests run its
# slurmctld and slurmd chrooted in a private mount namespace (tests/integration/slurm24_harness.py). The root goes
# into a cache folder that later runs reuse:
#
#   scripts/build-slurm-root.sh [SUITE]     SUITE: trixie (default) or forky
#
#   ${XDG_CACHE_HOME:-~/.cache}/gpucloud/slurm-root/<suite>-<hash of this script and suite>
#   ($GPUCLOUD_SLURM_ROOT instead, for trixie only)
#     usr/sbin/slurmctld, usr/sbin/slurmd, usr/bin/scontrol, ...   Debian's slurm-wlm packages of the suite
#     usr/sbin/munged                                              munge, the authentication the tests use
#     gpucloud/                                                    empty: the harness mounts its test folder here
#     .stamp                                                       the hash; a root without it is unfinished
#
# The packages come from the Debian mirror apt uses on this machine (the first .../debian URI of
# /etc/apt/sources.list*; GPUCLOUD_DEBIAN_MIRROR overrides it). Needs root and debootstrap. Changing this script
# changes the hash, so the next run builds a fresh root beside the old one. Prints the root on stdout; exit 2
# when it cannot be built, with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "build-slurm-root: $*" >&2; exit 2; }

suite=${1:-trixie}
case "$suite" in
  trixie|forky) ;;
  *) fail "unknown suite '$suite': trixie (Slurm 24.11) or forky (Debian testing, Slurm 25.05 or later)" ;;
esac
packages=(slurmctld slurmd slurm-client munge)
stamp=$( (cat "$0"; echo "$suite") | sha256sum | cut -d' ' -f1)
root=${XDG_CACHE_HOME:-$HOME/.cache}/gpucloud/slurm-root/$suite-${stamp:0:16}
# GPUCLOUD_SLURM_ROOT names the trixie root only (the forky one always lives in the cache).
[ "$suite" = trixie ] && root=${GPUCLOUD_SLURM_ROOT:-$root}

if [ -x "$root/usr/sbin/slurmctld" ] && [ "$(cat "$root/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$root"
  exit 0
fi
[ "$(id -u)" = 0 ] || fail "debootstrap and chroot need root (run as root or through sudo)"
command -v debootstrap >/dev/null || fail "debootstrap is not installed (apt-get install debootstrap; .ci/packages.txt lists it)"
command -v unshare >/dev/null || fail "unshare (util-linux) is not installed"

mirror_from_apt() {
  # deb822 files ("URIs: a b") and one-line lists ("deb [opts] URI suite ..."); the archive, not -security.
  cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null |
    awk '$1 == "URIs:" { for (i = 2; i <= NF; i++) print $i }
         $1 == "deb" { for (i = 2; i <= NF; i++) if ($i !~ /^\[/ && $i !~ /\]$/) { print $i; break } }' |
    grep -E '^https?://[^ ]*/debian/?$' | head -n 1
}
mirror=${GPUCLOUD_DEBIAN_MIRROR:-$(mirror_from_apt || true)}
mirror=${mirror:-http://deb.debian.org/debian}

mkdir -p "$(dirname "$root")"
work=$(mktemp -d "$root.tmp.XXXXXX")
# mktemp makes it 0700: the root's / must let the system users of the root (munge, _apt) in.
chmod 0755 "$work"
trap 'rm -rf --one-file-system "$work" "$work.log"' EXIT
start=$(date +%s)
echo "build-slurm-root: debootstrap $suite from $mirror into $root (first time: a few minutes)" >&2
# Debian 12's debootstrap has no script for forky; testing is built the way sid is.
script=/usr/share/debootstrap/scripts/$suite
[ -e "$script" ] || script=/usr/share/debootstrap/scripts/sid
nice -n 10 debootstrap --variant=minbase "$suite" "$work" "$mirror" "$script" >"$work.log" 2>&1 ||
  { tail -n 20 "$work.log" >&2; rm -f "$work.log"; fail "debootstrap $suite from $mirror failed (log above)"; }
rm -f "$work.log"

# No daemon may start inside the root while packages are installed (policy-rc.d 101: "action forbidden").
printf '#!/bin/sh\nexit 101\n' >"$work/usr/sbin/policy-rc.d"
chmod 0755 "$work/usr/sbin/policy-rc.d"
# Maintainer scripts want /proc; mount it in a private mount namespace so nothing outlives the install.
unshare --mount --propagation private sh -c '
  set -e
  root=$1; shift
  mount -t proc proc "$root/proc"
  export DEBIAN_FRONTEND=noninteractive
  nice -n 10 chroot "$root" apt-get install -y -q --no-install-recommends "$@"
' sh "$work" "${packages[@]}" >"$work.log" 2>&1 ||
  { tail -n 20 "$work.log" >&2; rm -f "$work.log"; fail "installing ${packages[*]} into the $suite root failed (log above)"; }
for f in usr/sbin/slurmctld usr/sbin/slurmd usr/bin/scontrol usr/sbin/munged; do
  [ -x "$work/$f" ] || { rm -f "$work.log"; fail "the $suite root has no /$f after installing ${packages[*]}"; }
done
rm -f "$work.log"
chroot "$work" apt-get clean
rm -rf "$work/var/lib/apt/lists/"*
# Mount points for the tests: their folder, and /etc/hosts (debootstrap writes none) for their host names.
mkdir -p "$work/gpucloud"
touch "$work/etc/hosts"
version=$(chroot "$work" dpkg-query -W -f='${Version}' slurmctld)
echo "$stamp" >"$work/.stamp"
rm -rf --one-file-system "$root"
mv "$work" "$root"
trap - EXIT
if [ "$suite" != trixie ] || [ -z "${GPUCLOUD_SLURM_ROOT:-}" ]; then
  # Roots of this suite made by earlier versions of this script, and those named without a suite, are never used
  # again; the other suite's root stays.
  find "$(dirname "$root")" -mindepth 1 -maxdepth 1 ! -name "$(basename "$root")*" \
    \( -name "$suite-*" -o -regex '.*/[0-9a-f]+\(\.tmp\..*\)?' \) -exec rm -rf --one-file-system {} +
fi
echo "build-slurm-root: Slurm $version in $(( $(date +%s) - start )) s, $(du -sh "$root" | cut -f1): $root" >&2
echo "$root"
