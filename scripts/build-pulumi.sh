#!/usr/bin/env bash
# Build the Pulumi engine that `gpucloud apply` drives, from Go modules pinned in tools/pulumi/go.mod (the one place
# its version is set), into a cache folder that later runs reuse:
#
#   $GPUCLOUD_PULUMI_ROOT (default ${XDG_CACHE_HOME:-~/.cache}/gpucloud/pulumi/<version>)
#     bin/pulumi                          the CLI and engine (github.com/pulumi/pulumi/pkg/v3/cmd/pulumi)
#     bin/pulumi-resource-pulumi-python   the launcher of Python dynamic providers (the Redfish nodes and the
#                                         configuration layers), shipped in the pinned sdk/v3 module
#     home/                               PULUMI_HOME: no plugin is ever downloaded into it
#
# `go install module@version` refuses Pulumi's modules (their go.mod has replace directives), so tools/pulumi is a
# module of our own that requires them, with the replace directive they need copied in, and go.sum pins every
# dependency. Prints the root on stdout; exit 2 when Go is missing or the build fails.
set -euo pipefail
cd "$(dirname "$0")/.."

mod=tools/pulumi
version=$(awk '$1 == "github.com/pulumi/pulumi/pkg/v3" {print $2}' "$mod/go.mod")
[ -n "$version" ] || { echo "build-pulumi: $mod/go.mod requires no github.com/pulumi/pulumi/pkg/v3" >&2; exit 2; }
root=${GPUCLOUD_PULUMI_ROOT:-${XDG_CACHE_HOME:-$HOME/.cache}/gpucloud/pulumi/$version}
stamp=$(cat "$mod/go.mod" "$mod/go.sum" "$0" | sha256sum | cut -d' ' -f1)

if [ -x "$root/bin/pulumi" ] && [ "$(cat "$root/.stamp" 2>/dev/null)" = "$stamp" ]; then
  echo "$root"
  exit 0
fi
command -v go >/dev/null || { echo "build-pulumi: Go is not installed (Go 1.26 or newer builds Pulumi $version)" >&2; exit 2; }

mkdir -p "$(dirname "$root")"
work=$(mktemp -d "$root.tmp.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/bin" "$work/home/plugins"
start=$(date +%s)
echo "build-pulumi: building Pulumi $version into $root (first time: several minutes)" >&2
(
  cd "$mod"
  # -mod=readonly: exactly the versions go.sum pins. The version stamp is what `pulumi version` prints and what the
  # Automation API checks.
  export GOFLAGS="-mod=readonly -buildvcs=false"
  nice -n 10 go build -trimpath -ldflags "-s -w -X github.com/pulumi/pulumi/sdk/v3/go/common/version.Version=$version" \
    -o "$work/bin/pulumi" github.com/pulumi/pulumi/pkg/v3/cmd/pulumi
  # The dynamic-provider launcher is a shell script in the sdk module; the engine finds it next to `pulumi`.
  sdk=$(go list -m -f '{{.Dir}}' github.com/pulumi/pulumi/sdk/v3)
  install -m 0755 "$sdk/python/dist/pulumi-resource-pulumi-python" "$work/bin/pulumi-resource-pulumi-python"
) || { echo "build-pulumi: the build failed (see above); nothing was installed" >&2; exit 2; }
echo "$stamp" >"$work/.stamp"
rm -rf "$root"
mv "$work" "$root"
trap - EXIT
echo "build-pulumi: done in $(( $(date +%s) - start )) s: $(du -sh "$root/bin/pulumi" | cut -f1) $root/bin/pulumi" >&2
echo "$root"
