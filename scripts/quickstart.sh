#!/usr/bin/env bash
# Set up gpucloud with everything the full offline dry-run uses (the deploy extra: the Pulumi SDK checks every
# stack's resource graph under mocks; without it pulumi/stacks.json says the graph was checked by nothing) and
# write the plan of the Ishikari-class example into plans/ishikari. Planning needs no Pulumi engine: the build of
# the engine from Go modules (minutes, for `gpucloud apply`) is left to `scripts/setup.sh --deploy` without it.
set -euo pipefail
cd "$(dirname "$0")/.."
GPUCLOUD_BUILD_ENGINE=0 scripts/setup.sh --deploy
# The same import the Pulumi renderer needs for its check under mocks (gpucloud/render/pulumi.py).
.venv/bin/python -c 'import pulumi' || {
  echo "error: the Pulumi SDK is missing from .venv, so the plan's Pulumi graph would be checked by nothing" >&2
  echo "  hint: .venv/bin/python -m pip install -e '.[deploy]', then run scripts/quickstart.sh again" >&2
  exit 1
}
.venv/bin/gpucloud validate clusters/ishikari.yaml
.venv/bin/gpucloud plan clusters/ishikari.yaml --out plans/ishikari
echo "read the plan: plans/ishikari/plan.md (every file it describes is next to it in plans/ishikari/)"
