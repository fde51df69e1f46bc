"""Run `gpucloud ARGS` in this process and print its peak resident memory in MB as the last line of stdout."""

import resource
import sys

from gpucloud.cli import app

try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
finally:
    sys.stdout.flush()
print(f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.1f}")
