#!/usr/bin/env bash
# Set up everything the tests need (Debian packages + .venv with the test extras), type-check the package with mypy,
# and run the whole suite.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --test
# As in an activated environment: the tests run the venv's ansible-playbook, ansible-lint, sushy-emulator, ...
export PATH="$PWD/.venv/bin:$PATH"
# Types first ([tool.mypy] in pyproject.toml): a type error fails the run before the tests start.
.venv/bin/python -m mypy
set +e
.venv/bin/python -m pytest "$@"
rc=$?
set -e
# pytest's 5 means no test ran: that is a failure of the suite, not a pass.
[ "$rc" = 5 ] && { echo "no tests were collected" >&2; exit 1; }
exit "$rc"
