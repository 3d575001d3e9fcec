"""Interactive chat callbacks and signed action links (SPEC S6.3-S6.8)."""

from __future__ import annotations

from typing import Any

CONTROLLERS: list[Any] = []
