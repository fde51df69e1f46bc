"""Shared fixtures: paths, the real CLI as a subprocess, and golden-file comparison."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

# Property tests must not pass or fail by chance: the same examples on every run and machine (derandomize derives the
# seed from the test), no example database carried between runs, and no check that depends on the machine's speed
# (deadline, too_slow). GPUCLOUD_HYPOTHESIS_PROFILE=hunt draws fresh random examples to look for new failures; a
# failure found that way becomes an @example of its test.
settings.register_profile("deterministic", derandomize=True, database=None, deadline=None, max_examples=100,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.register_profile("hunt", derandomize=False, deadline=None, max_examples=2000,
                          suppress_health_check=[HealthCheck.too_slow], print_blob=True)
settings.load_profile(os.environ.get("GPUCLOUD_HYPOTHESIS_PROFILE", "deterministic"))

ROOT = Path(__file__).resolve().parent.parent
CLUSTERS = ROOT / "clusters"
EXAMPLES = sorted(CLUSTERS.glob("*.yaml"))
UPDATE_GOLDEN = os.environ.get("GPUCLOUD_UPDATE_GOLDEN") == "1"


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: int = 120):
    """Run ``python -m gpucloud ARGS`` as a user would and return the CompletedProcess."""
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run([sys.executable, "-m", "gpucloud", *args], cwd=cwd or ROOT, env=full_env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def cli():
    return run_cli


def assert_golden(path: Path, actual: bytes | str) -> None:
    """Compare with a committed golden file; GPUCLOUD_UPDATE_GOLDEN=1 rewrites it (review the diff!)."""
    data = actual.encode("utf-8") if isinstance(actual, str) else actual
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        return
    assert path.exists(), f"golden file {path} is missing; create it with GPUCLOUD_UPDATE_GOLDEN=1 and review it"
    expected = path.read_bytes()
    if expected != data:
        import difflib

        diff = "".join(difflib.unified_diff(expected.decode("utf-8", "replace").splitlines(True),
                                            data.decode("utf-8", "replace").splitlines(True),
                                            str(path), "actual", n=2))
        pytest.fail(f"{path} differs from the rendered output:\n{diff[:6000]}")


@pytest.fixture
def golden():
    return assert_golden


def stop_process(proc: "subprocess.Popen | None", grace: float = 10) -> None:
    """Stop a daemon a test started: SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    if proc is None or proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
