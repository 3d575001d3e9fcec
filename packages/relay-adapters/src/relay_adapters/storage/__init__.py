"""Storage adapters for the ``relay_core.ports.storage`` port.

The in-memory reference adapter lives in :mod:`relay_core.memory`; the SQL adapter for
SQLite and PostgreSQL in :mod:`relay_adapters.storage.sqlalchemy`.
"""
