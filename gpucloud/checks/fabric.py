"""Checks: fabric."""

from __future__ import annotations
