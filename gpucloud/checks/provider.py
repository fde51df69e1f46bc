"""Checks: provider."""

from __future__ import annotations
