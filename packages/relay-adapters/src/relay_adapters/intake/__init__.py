"""Built-in intake sources (SPEC S2.6-S2.9): request bodies -> ``NormalizedAlert``.

Each class implements :class:`relay_core.ports.intake.IntakeSource`; the built-in plugin
registers :data:`BUILTIN_SOURCES` through ``relay_register_intake_sources``.
"""

from __future__ import annotations

from relay_adapters.intake.alertmanager import AlertmanagerSource
from relay_adapters.intake.grafana import GrafanaSource
from relay_adapters.intake.webhook import WebhookSource
from relay_adapters.intake.zabbix import ZabbixSource

BUILTIN_SOURCES = (AlertmanagerSource, GrafanaSource, ZabbixSource, WebhookSource)

__all__ = ["BUILTIN_SOURCES", "AlertmanagerSource", "GrafanaSource", "WebhookSource", "ZabbixSource"]
