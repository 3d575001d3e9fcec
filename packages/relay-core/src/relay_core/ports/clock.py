"""The clock port: the only way the core learns the time (ARCHITECTURE §1)."""

from __future__ import annotations

import datetime as dt
from typing import Protocol


class Clock(Protocol):
    """Returns aware UTC datetimes."""

    def now(self) -> dt.datetime: ...


class SystemClock:
    """The wall clock. Adapters and shells pass it in; the domain never calls it directly."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)
