"""Checks: names."""

from __future__ import annotations
