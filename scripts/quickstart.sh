#!/usr/bin/env bash
# Set up gpucloud and write the offline plan of the Ishikari-class example into plans/ishikari.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
.venv/bin/gpucloud validate clusters/ishikari.yaml
.venv/bin/gpucloud plan clusters/ishikari.yaml --out plans/ishikari
echo "open plans/ishikari/ (plan.json and the rendered files)"
