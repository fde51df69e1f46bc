"""Run `gpucloud ARGS` in this process and print its peak resident memory in MB as the last line of stdout.

VmHWM of this process's own address space, not getrusage's ru_maxrss: Linux carries ru_maxrss across execve, so a
child of a large benchmark process would report its parent's peak.
"""

import sys

from gpucloud.cli import app


def _vmhwm_mb() -> float:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
finally:
    sys.stdout.flush()
print(f"{_vmhwm_mb():.1f}")
