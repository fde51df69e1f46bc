"""scripts/mutants.py plants one-line bugs by replacing an exact line of the code. When a refactor moves or rewrites
that line, the mutant silently stops planting anything (--list calls it stale): this test makes the refactor update
the mutant in the same change, so the mutation score keeps measuring the code as it is."""

from __future__ import annotations

import subprocess
import sys

from conftest import ROOT


def test_every_mutant_names_a_line_the_code_still_has():
    res = subprocess.run([sys.executable, "scripts/mutants.py", "--list"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60)
    stale = [line for line in res.stdout.splitlines() if "STALE" in line]
    assert res.returncode == 0 and stale == [], "edit these entries of scripts/mutants.py:\n" + "\n".join(stale)
    assert len(res.stdout.splitlines()) >= 49  # the sample is listed, not skipped
