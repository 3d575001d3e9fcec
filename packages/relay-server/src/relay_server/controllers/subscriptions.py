"""Categories rules, role groups, subscriptions, test alerts (SPEC S8, S9.6)."""

from __future__ import annotations

from typing import Any

CONTROLLERS: list[Any] = []
