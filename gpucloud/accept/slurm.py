"""The Slurm commands acceptance needs, as one small client (sinfo, scontrol, srun), so tests and the runner share
one place that knows their arguments and outputs. Every call has a timeout; none raises for a failed command."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass


@dataclass(frozen=True)
class NodeState:
    name: str
    state: str  # sinfo's long state: idle, drained, draining, down*, allocated, maint, ...
    reason: str

    @property
    def held(self) -> bool:
        """Out of service and running nothing: drained (not draining), or down."""
        return self.state.rstrip("*~#!%$@^-").split("+")[0] in ("drained", "down")


class SlurmError(RuntimeError):
    pass


class Slurm:
    def __init__(self, env: dict | None = None, timeout: float = 60):
        self.env = env
        self.timeout = timeout

    def _run(self, argv: list[str], timeout: float | None = None) -> subprocess.CompletedProcess:
        try:
            return subprocess.run(argv, capture_output=True, text=True, env=self.env,
                                  timeout=timeout or self.timeout)
        except FileNotFoundError:
            raise SlurmError(f"{argv[0]} is not installed here: run gpucloud accept where the Slurm client "
                             "commands reach the controller (a login or controller node)") from None
        except subprocess.TimeoutExpired:
            return subprocess.CompletedProcess(argv, 124, "", f"{argv[0]}: no answer after {timeout or self.timeout}s")

    def _checked(self, argv: list[str]) -> str:
        p = self._run(argv)
        if p.returncode != 0:
            raise SlurmError(f"{' '.join(argv[:3])} failed: {(p.stderr or p.stdout).strip()}")
        return p.stdout

    def nodes(self) -> dict[str, NodeState]:
        out = self._checked(["sinfo", "-h", "-N", "-o", "%N|%T|%E"])
        states = {}
        for line in out.splitlines():
            name, _, rest = line.partition("|")
            state, _, reason = rest.partition("|")
            states[name] = NodeState(name, state.strip(), "" if reason.strip() == "none" else reason.strip())
        return states

    def drain(self, nodes: str, reason: str) -> None:
        self._checked(["scontrol", "update", f"NodeName={nodes}", "State=DRAIN", f"Reason={reason}"])

    def resume(self, nodes: str) -> None:
        self._checked(["scontrol", "update", f"NodeName={nodes}", "State=RESUME"])

    def reserve(self, name: str, nodes: str, user: str) -> None:
        self._checked(["scontrol", "create", "reservation", f"ReservationName={name}", f"Nodes={nodes}",
                       f"Users={user}", "StartTime=now", "Duration=UNLIMITED", "Flags=MAINT,IGNORE_JOBS"])

    def unreserve(self, name: str) -> None:
        self._checked(["scontrol", "delete", f"ReservationName={name}"])

    def reservation_exists(self, name: str) -> bool:
        p = self._run(["scontrol", "show", "reservation", name])
        return p.returncode == 0 and f"ReservationName={name}" in p.stdout

    def srun(self, args: list[str], timeout: float) -> tuple[int, str, str]:
        p = self._run(["srun", *args], timeout)
        return p.returncode, p.stdout, p.stderr
