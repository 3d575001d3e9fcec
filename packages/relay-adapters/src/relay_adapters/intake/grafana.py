"""Grafana Alerting webhook contact point intake source (SPEC S2.7).

The envelope is Alertmanager's (see :func:`relay_adapters.intake.alertmanager.read_envelope`)
plus Grafana's ``orgId``, ``title``, ``state`` and ``message``; every item stands alone.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from typing import Any, ClassVar

from relay_adapters.intake.alertmanager import EnvelopeItem, read_envelope
from relay_core.domain import constants as c
from relay_core.domain.errors import Unauthorized
from relay_core.domain.intake import (
    ParsedItem,
    ValidationDetails,
    clamp_dedup_key,
    decode_json_body,
    first_text,
    flatten_labels,
    generated_dedup_key,
    get_header,
    merge_labels,
    team_hint,
    to_text,
)
from relay_core.domain.model import NormalizedAlert, Route
from relay_core.domain.severity import normalize_severity, unrecognized_original

SIGNATURE_HEADER = "X-Grafana-Alerting-Signature"


class GrafanaSource:
    """``/api/integrations/grafana`` (POST or PUT), with optional HMAC signature checking."""

    name: ClassVar[str] = "grafana"
    path_aliases: ClassVar[tuple[str, ...]] = ()
    content_types: ClassVar[tuple[str, ...]] = ("application/json",)
    default_group_by: ClassVar[tuple[str, ...]] = ("alertname",)

    def verify(self, headers: Mapping[str, str], body: bytes, route: Route | None) -> None:
        """Check ``X-Grafana-Alerting-Signature`` when the route sets ``grafana.hmac_secret``.

        The signature is the lower-case hex HMAC-SHA256 of the body, or of ``"<ts>:<body>"``
        when ``grafana.timestamp_header`` names the header carrying ``<ts>``. A route may
        rename the signature header with ``grafana.signature_header``.

        Raises:
            Unauthorized: code ``invalid_signature`` on a missing or wrong signature.
        """
        config = route.integration_config.get("grafana") if route is not None else None
        if not isinstance(config, Mapping) or not config.get("hmac_secret"):
            return
        secret = to_text(config["hmac_secret"]).encode("utf-8")
        signed = body
        timestamp_header = first_text(config.get("timestamp_header"))
        if timestamp_header:
            timestamp = get_header(headers, timestamp_header)
            if not timestamp:
                raise Unauthorized(
                    f"Grafana signature timestamp header {timestamp_header} is missing",
                    code="invalid_signature",
                )
            signed = timestamp.strip().encode("utf-8") + b":" + body
        signature = get_header(headers, first_text(config.get("signature_header")) or SIGNATURE_HEADER)
        expected = hmac.new(secret, signed, hashlib.sha256).hexdigest().encode("ascii")
        if not signature or not hmac.compare_digest(expected, signature.strip().lower().encode("utf-8")):
            raise Unauthorized("Grafana signature is invalid", code="invalid_signature")

    def parse(self, body: bytes, headers: Mapping[str, str], query: Mapping[str, str]) -> list[ParsedItem]:
        envelope = decode_json_body(body, allow_array=False)
        problems = ValidationDetails()
        common_labels = flatten_labels(problems.mapping(envelope.get("commonLabels"), "$.commonLabels"))
        items = read_envelope(envelope, problems)
        problems.raise_if_any("Grafana payload is invalid")
        return [self._alert(envelope, common_labels, entry) for entry in items]

    def _alert(
        self, envelope: Mapping[str, Any], common_labels: dict[str, str], entry: EnvelopeItem
    ) -> NormalizedAlert:
        item, annotations = entry.item, entry.annotations
        labels = {**common_labels, **entry.labels}
        dashboard_url = first_text(item.get("dashboardURL"))
        panel_url = first_text(item.get("panelURL"))
        generator_url = first_text(item.get("generatorURL"))
        silence_url = first_text(item.get("silenceURL"))
        external_url = first_text(envelope.get("externalURL"))
        org_id = envelope.get("orgId")
        title = (
            first_text(annotations.get("summary"), labels.get("alertname"), envelope.get("title"))
            or "Grafana alert"
        )
        severity, original = normalize_severity(
            first_text(labels.get("severity"), labels.get("priority"), labels.get("level")),
            default=c.SEV_WARNING,
        )
        fingerprint = first_text(item.get("fingerprint"))
        if fingerprint:
            dedup_key = clamp_dedup_key(fingerprint)
        else:
            dedup_key = generated_dedup_key(
                {
                    "source": self.name,
                    "rule_uid": first_text(entry.labels.get("__alert_rule_uid__"), item.get("ruleUID")),
                    "title": title,
                    "labels": {k: v for k, v in entry.labels.items() if not k.startswith("__")},
                    "org_id": org_id,
                }
            )
        derived = {
            "dashboard_url": dashboard_url,
            "panel_url": panel_url,
            "generator_url": generator_url,
            "silence_url": silence_url,
            "grafana_url": external_url,
            "grafana_org_id": first_text(org_id),
            "grafana_receiver": first_text(envelope.get("receiver")),
            "grafana_group_key": first_text(envelope.get("groupKey")),
            "grafana_state": first_text(envelope.get("state")),
            "event_link": first_text(dashboard_url, panel_url, generator_url, silence_url, external_url),
            "severity_original": unrecognized_original(original),
        }
        message = first_text(
            annotations.get("description"),
            annotations.get("message"),
            envelope.get("message"),
            item.get("valueString"),
        )
        return NormalizedAlert(
            source=self.name,
            dedup_key=dedup_key,
            external_id=dedup_key,
            status=entry.status,
            title=title,
            message=message or "",
            severity=severity,
            original_severity=original,
            labels=merge_labels(labels, derived),
            annotations=annotations,
            starts_at=entry.starts_at,
            ends_at=entry.ends_at,
            team_slug=team_hint(item, labels),
            payload={**envelope, "alerts": [dict(item)]},
        )
