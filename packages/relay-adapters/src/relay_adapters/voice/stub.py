"""The built-in ``stub`` voice and SMS providers (SPEC S7.10).

They place nothing: the request is logged with the phone masked and returned in ``raw`` (which
becomes the delivery record's payload), with status ``logged`` and a generated id. Useful for
first runs and for checking routing without a carrier.
"""

from __future__ import annotations

import logging
import uuid
from typing import ClassVar

from relay_core.sms import (
    SMS_STATUS_LOGGED,
    BaseSmsProvider,
    SmsProviderCapabilities,
    SmsSendRequest,
    SmsSendResult,
)
from relay_core.voice import (
    CALL_STATUS_LOGGED,
    BaseVoiceProvider,
    VoiceCallRequest,
    VoiceCallResult,
    VoiceProviderCapabilities,
    mask_phone,
)

__all__ = ["Provider", "SmsProvider", "StubSmsProvider", "StubVoiceProvider"]

logger = logging.getLogger("relay.voice.stub")


class Provider(BaseVoiceProvider):
    """Voice provider ``stub``: logs the call instead of placing it."""

    name: ClassVar[str] = "stub"
    capabilities: ClassVar[VoiceProviderCapabilities] = VoiceProviderCapabilities(tts=True)

    def place_call(self, request: VoiceCallRequest) -> VoiceCallResult:
        """Log the call (phone masked) and return status ``logged``."""
        call_id = f"stub-{uuid.uuid4().hex}"
        phone = mask_phone(request.phone)
        logger.info(
            "voice stub call %s to %s (alert %s, %s): %s",
            call_id,
            phone,
            request.alert_id,
            request.event_type,
            request.text,
        )
        return VoiceCallResult(
            call_id=call_id,
            status=CALL_STATUS_LOGGED,
            raw={
                "provider": self.name,
                "call_id": call_id,
                "phone": phone,
                "text": request.text,
                "alert_id": request.alert_id,
                "event_type": request.event_type,
            },
        )


class SmsProvider(BaseSmsProvider):
    """SMS provider ``stub``: logs the message instead of sending it."""

    name: ClassVar[str] = "stub"
    capabilities: ClassVar[SmsProviderCapabilities] = SmsProviderCapabilities()

    def send_sms(self, request: SmsSendRequest) -> SmsSendResult:
        """Log the message (phone masked) and return status ``logged``."""
        message_id = f"stub-{uuid.uuid4().hex}"
        phone = mask_phone(request.phone)
        logger.info(
            "sms stub message %s to %s (alert %s, %s): %s",
            message_id,
            phone,
            request.alert_id,
            request.event_type,
            request.text,
        )
        return SmsSendResult(
            message_id=message_id,
            status=SMS_STATUS_LOGGED,
            raw={
                "provider": self.name,
                "message_id": message_id,
                "phone": phone,
                "text": request.text,
                "alert_id": request.alert_id,
                "event_type": request.event_type,
            },
        )


StubVoiceProvider = Provider
StubSmsProvider = SmsProvider
