"""Checks: software."""

from __future__ import annotations
