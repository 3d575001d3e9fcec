"""A short-lived, process-wide cache of configuration reads (intake performance, SPEC S12).

Intake reads the same configuration rows on every request: the route of the intake token, its
team and group, categories and category rules, rotation and members, channels, silences,
subscriptions. :class:`ReadCache` keeps the results of ``get``/``find`` on those tables for
``ttl`` seconds, shared by the units of work of one factory:

* any write to a table through the factory drops that table's entries at once, and again when
  the writing transaction ends (commit or rollback), so a reader never keeps rows a concurrent
  transaction has since changed;
* a unit of work that has written to a table reads it from the database, never from the cache
  (it must see its own uncommitted rows), and never fills the cache from it;
* a fill is dropped if the table was invalidated while the query ran (generation check);
* ``get``/``first`` misses are not cached, so a row created by another process is seen at once;
  changes made by *other processes* to cached rows are seen after at most ``ttl`` seconds.

Only the tables in :data:`CACHEABLE` are cached; alerts, groups of alerts, intents, traces and
everything else that intake writes always go to the database.
"""

from __future__ import annotations

import time
from collections.abc import Hashable
from typing import Any, Final

__all__ = ["CACHEABLE", "ReadCache"]

#: Configuration tables intake reads on every request and rarely writes.
CACHEABLE: Final = frozenset(
    {
        "routes",
        "teams",
        "groups",
        "categories",
        "category_rules",
        "rotations",
        "rotation_members",
        "overrides",
        "channels",
        "silences",
        "subscriptions",
        "subscription_preferences",
        "role_groups",
        "role_group_members",
        "users",
    }
)
_MAX_ENTRIES_PER_TABLE: Final = 2048


class ReadCache:
    """Results of configuration reads, per table, each valid for ``ttl`` seconds."""

    def __init__(self, ttl: float) -> None:
        self.ttl = ttl
        self._entries: dict[str, dict[Hashable, tuple[float, Any]]] = {}
        self._generation: dict[str, int] = {}
        self.hits = 0
        self.misses = 0

    def generation(self, table: str) -> int:
        return self._generation.get(table, 0)

    def get(self, table: str, key: Hashable) -> tuple[bool, Any]:
        entries = self._entries.get(table)
        if entries is not None:
            found = entries.get(key)
            if found is not None:
                if found[0] > time.monotonic():
                    self.hits += 1
                    return True, found[1]
                entries.pop(key, None)
        self.misses += 1
        return False, None

    def put(self, table: str, key: Hashable, value: Any, generation: int) -> None:
        if self._generation.get(table, 0) != generation:
            return  # invalidated while the query ran: the value may be stale
        entries = self._entries.setdefault(table, {})
        if len(entries) >= _MAX_ENTRIES_PER_TABLE:
            entries.clear()
        entries[key] = (time.monotonic() + self.ttl, value)

    def invalidate(self, table: str) -> None:
        self._generation[table] = self._generation.get(table, 0) + 1
        self._entries.pop(table, None)

    def clear(self) -> None:
        for table in list(self._entries):
            self.invalidate(table)
