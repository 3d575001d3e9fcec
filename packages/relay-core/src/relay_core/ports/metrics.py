"""Instrumentation port (SPEC S9.9): what the use cases report for metrics.

The core calls these hooks; it never imports a metrics library. :class:`NullInstrumentation`
is the default (embedders and tests that do not scrape anything); shells wire the Prometheus
implementation of ``relay_adapters.metrics``. Labels are low-cardinality names, never ids.
"""

from __future__ import annotations

from typing import Protocol


class Instrumentation(Protocol):
    """Counters and histograms the core produces (names in SPEC S9.9)."""

    def notification(self, *, channel_type: str, event_type: str, outcome: str) -> None:
        """``relay_notifications_total``; outcome ``sent|failed|skipped|cancelled|retried``."""

    def delivery_latency(self, *, channel_type: str, seconds: float) -> None:
        """``relay_delivery_latency_seconds``: intent due -> provider accepted."""

    def time_to_first_notification(self, seconds: float) -> None:
        """``relay_time_to_first_notification_seconds``: group created -> first page accepted."""

    def reminder(self) -> None:
        """``relay_reminders_total``."""

    def escalation(self, *, mode: str) -> None:
        """``relay_escalations_total{mode}`` (``team``; P2 ``policy``)."""

    def callback(self, *, kind: str, result: str) -> None:
        """``relay_callbacks_received_total{kind,result}`` (kind ``voice``/``sms``/``chat``...)."""

    def job_finished(self, *, job: str, seconds: float, success: bool, timestamp: float) -> None:
        """``relay_scheduler_job_duration_seconds{job}`` and, on success,
        ``relay_scheduler_last_success_timestamp_seconds{job}`` (``timestamp``: Unix seconds)."""


class NullInstrumentation:
    """Records nothing."""

    def notification(self, *, channel_type: str, event_type: str, outcome: str) -> None:
        return None

    def delivery_latency(self, *, channel_type: str, seconds: float) -> None:
        return None

    def time_to_first_notification(self, seconds: float) -> None:
        return None

    def reminder(self) -> None:
        return None

    def escalation(self, *, mode: str) -> None:
        return None

    def callback(self, *, kind: str, result: str) -> None:
        return None

    def job_finished(self, *, job: str, seconds: float, success: bool, timestamp: float) -> None:
        return None


class RecordingInstrumentation:
    """Keeps every call as ``(hook, kwargs)`` (tests and embedders that inspect metrics)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, object]]] = []

    def notification(self, *, channel_type: str, event_type: str, outcome: str) -> None:
        self.calls.append(
            ("notification", {"channel_type": channel_type, "event_type": event_type, "outcome": outcome})
        )

    def delivery_latency(self, *, channel_type: str, seconds: float) -> None:
        self.calls.append(("delivery_latency", {"channel_type": channel_type, "seconds": seconds}))

    def time_to_first_notification(self, seconds: float) -> None:
        self.calls.append(("time_to_first_notification", {"seconds": seconds}))

    def reminder(self) -> None:
        self.calls.append(("reminder", {}))

    def escalation(self, *, mode: str) -> None:
        self.calls.append(("escalation", {"mode": mode}))

    def callback(self, *, kind: str, result: str) -> None:
        self.calls.append(("callback", {"kind": kind, "result": result}))

    def job_finished(self, *, job: str, seconds: float, success: bool, timestamp: float) -> None:
        self.calls.append(
            ("job_finished", {"job": job, "seconds": seconds, "success": success, "timestamp": timestamp})
        )


def error_result(exc: BaseException) -> str:
    """The ``result`` label of a refused callback: the domain error's code (a fixed, small set),
    else ``error``."""
    code = getattr(exc, "code", None)
    return code if isinstance(code, str) and code else "error"
