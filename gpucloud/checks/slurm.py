"""Checks: slurm."""

from __future__ import annotations
