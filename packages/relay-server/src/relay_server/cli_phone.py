"""`relay phone ...` (voice simulator) and `relay voice check` (SPEC S7.10, S7.11)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this module's commands to the `relay` command app."""
