"""Checks: tenants."""

from __future__ import annotations
