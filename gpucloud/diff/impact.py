"""Impact classes of a change, from harmless to destructive, and the order in which to carry changes out.

The class answers a reviewer's question "what does this cost the users of the cluster?"; the step answers "in what
order does the operator do it?". They differ: hardware comes first for additions (a node must be cabled before it
is imaged) but last for removals (drain and take it out of Slurm before unplugging it).
"""

from __future__ import annotations

from gpucloud.impact import Impact

# (step, title, what the operator does). Additions and changes follow steps 1-7; removals wait for step 8.
STEPS: tuple[tuple[int, str, str], ...] = (
    (1, "back up", "snapshot or copy every dataset a later step destroys, before touching anything"),
    (2, "hardware and cabling", "rack, power and cable new or changed hardware; check links with the cabling plan"),
    (3, "provision and reimage", "install the OS on the new hosts and reimage the listed ones (pulumi up), run the "
                                 "playbooks on them and their acceptance tests; a node takes jobs only after they "
                                 "pass"),
    (4, "drain and reboot", "drain the listed nodes in Slurm, apply the change, reboot, resume; rolling, a rack or "
                            "scalable unit at a time"),
    (5, "restart daemons", "restart in dependency order: slurmdbd, slurmctld, then slurmd; opensm on its hosts"),
    (6, "reconfigure", "install the new configuration files on every host with Slurm (nodes, controllers, login "
                       "nodes: slurm.conf must match everywhere), then one `scontrol reconfigure`"),
    (7, "no disruption", "apply at any time (accounting, quotas, user-space packages, plan-only records)"),
    (8, "removals", "drain, remove from Slurm and the fabric, then decommission; destroy data last, after step 1's "
                    "backup is verified"),
)

_STEP_OF = {
    Impact.HARDWARE: 2, Impact.REIMAGE: 3, Impact.DRAIN_REBOOT: 4, Impact.RESTART: 5, Impact.RECONFIGURE: 6,
    Impact.NONE: 7, Impact.DESTROYS_DATA: 8,
}


def step_for(impact: Impact, action: str) -> int:
    """The step in which to carry out a change: removals last, everything else by impact."""
    if action == "remove":
        return 8
    return _STEP_OF[impact]


def worst(impacts) -> Impact:
    return max(impacts, key=lambda i: i.rank, default=Impact.NONE)
