"""Voice and SMS provider callbacks and the simulator API (SPEC S7)."""

from __future__ import annotations

from typing import Any

CONTROLLERS: list[Any] = []
