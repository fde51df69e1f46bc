"""The impact classes of a change, from harmless to destructive: one vocabulary for every table that classifies a
change (the diff's own, gpucloud.plan.slurm_impact, gpucloud.plan.storage_impact). A leaf module, so that planners
and the diff import the same type and a misspelt class is a NameError, not a silent fallback."""

from __future__ import annotations

from enum import Enum


class Impact(str, Enum):
    NONE = "none"
    RECONFIGURE = "reconfigure"
    RESTART = "restart"
    DRAIN_REBOOT = "drain-reboot"
    REIMAGE = "reimage"
    HARDWARE = "hardware"
    DESTROYS_DATA = "destroys-data"

    @property
    def rank(self) -> int:
        return _RANK[self]

    @property
    def label(self) -> str:
        return LABELS[self]


_RANK = {impact: i for i, impact in enumerate(Impact)}

LABELS = {
    Impact.NONE: "none",
    Impact.RECONFIGURE: "reconfigure (scontrol reconfigure)",
    Impact.RESTART: "restart a daemon",
    Impact.DRAIN_REBOOT: "drain + reboot",
    Impact.REIMAGE: "reimage",
    Impact.HARDWARE: "hardware / cabling work",
    Impact.DESTROYS_DATA: "destroys data",
}
