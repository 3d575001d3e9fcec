"""Interactive chat callbacks and signed action links (SPEC S6.3-S6.8, S9.6 ``POST actions/{token}``).

Thin HTTP shells: the provider checks live in :mod:`relay_adapters.channels.inbound`, the rules
(user mapping, responder rights, one-time links, the action itself) in
:mod:`relay_core.services.interactive`. These paths are public (S9.2): chat callbacks
authenticate by signature or secret token, action links by their signed token plus (with
``action_links.require_login``) the browser session.

The confirmation page ``GET /actions/{token}`` never acts (link scanners prefetch links); its
button POSTs ``/api/actions/{token}``. That POST needs no CSRF header: the unguessable signed
token in its path is what a cross-site request cannot forge.
"""

from __future__ import annotations

import html
import logging
import urllib.parse
from typing import Any, Final

from litestar import Controller, Request, Response, get, post
from litestar.params import FromPath

from relay_adapters.channels._common import InboundCallbackError
from relay_adapters.channels.inbound import (
    handle_mattermost_action,
    handle_slack_interaction,
    handle_telegram_webhook,
)
from relay_core.domain.errors import RelayError
from relay_core.domain.model import User
from relay_core.services.interactive import (
    ActionLinkView,
    ActionOutcome,
    inspect_action_link,
    use_action_link,
)
from relay_server.auth import bearer_token
from relay_server.controllers._support import _jwt_principal, server_state
from relay_server.errors import error_response, unauthorized

__all__ = ["CONTROLLERS", "ActionLinksController", "ActionPageController", "ChatCallbacksController"]

log = logging.getLogger("relay.server.interactive")

_ACTION_LABELS: Final = {"acknowledge": "Acknowledge", "resolve": "Resolve"}


def _inbound_error(exc: InboundCallbackError) -> Response[dict[str, Any]]:
    log.info("relay.callback.rejected code=%s", exc.code)
    return error_response(exc.status, exc.code, exc.message)


def _count_ack(request: Request[Any, Any, Any], outcome: ActionOutcome, via: str) -> None:
    if outcome.action == "acknowledge" and outcome.result == "applied":
        server_state(request).metrics.acknowledgements.labels(via=via).inc()


class ChatCallbacksController(Controller):
    """Callbacks of chat buttons (S6.4-S6.6); self-authenticating."""

    path = "/api/integrations"
    tags = ("integrations",)

    @post("/mattermost/actions", operation_id="MattermostAction", status_code=200)
    async def mattermost_action(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """A Mattermost button click: acknowledge or resolve as the linked user."""
        st = server_state(request)
        try:
            outcome = await handle_mattermost_action(st.relay, await request.body())
        except InboundCallbackError as exc:
            return _inbound_error(exc)
        _count_ack(request, outcome, "mattermost")
        return Response({"ephemeral_text": outcome.message, "skip_slack_parsing": True}, status_code=200)

    @post("/slack/actions", operation_id="SlackInteraction", status_code=200)
    async def slack_interaction(self, request: Request[Any, Any, Any]) -> Response[dict[str, Any]]:
        """Slack interactivity (form field ``payload``, ``block_actions``), signed with v0."""
        st = server_state(request)
        try:
            outcome = await handle_slack_interaction(st.relay, request.headers, await request.body())
        except InboundCallbackError as exc:
            return _inbound_error(exc)
        _count_ack(request, outcome, "slack")
        return Response(
            {"ok": True, "result": outcome.result, "alert_id": outcome.group_id, "message": outcome.message},
            status_code=200,
        )

    @post("/telegram/webhook/{channel_id:int}", operation_id="TelegramWebhook", status_code=200)
    async def telegram_webhook(
        self, request: Request[Any, Any, Any], channel_id: FromPath[int]
    ) -> Response[dict[str, Any]]:
        """A Telegram update for a channel; needs ``X-Telegram-Bot-Api-Secret-Token``."""
        st = server_state(request)
        try:
            answer = await handle_telegram_webhook(
                st.relay, channel_id, request.headers, await request.body(), http=st.relay.ctx.http
            )
        except InboundCallbackError as exc:
            return _inbound_error(exc)
        return Response(answer, status_code=200)


# --- signed action links (S6.3) ---------------------------------------------------------------


async def _session_user(request: Request[Any, Any, Any]) -> User | None:
    """The user of a valid session (cookie or Bearer JWT), else None; never raises."""
    st = server_state(request)
    token = bearer_token(request.headers) or request.cookies.get(st.settings.auth.jwt_cookie_name)
    if not token or token.count(".") != 2:
        return None
    async with st.uow() as uow:
        principal = await _jwt_principal(uow, st, token, st.now(), via="cookie")
    return principal.user if principal is not None else None


def _page(title: str, body: str, *, status: int = 200) -> Response[str]:
    document = (
        '<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        '<meta name="robots" content="noindex">\n'
        f"<title>{html.escape(title)} · Relay</title>\n</head>\n"
        f"<body>\n<main>\n{body}\n</main>\n</body>\n</html>\n"
    )
    return Response(
        document,
        status_code=status,
        media_type="text/html",
        headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"},
    )


def _error_page(exc: RelayError) -> Response[str]:
    body = (
        "<h1>This link cannot be used</h1>\n"
        f'<p role="alert">{html.escape(exc.message)}.</p>\n'
        '<p><a href="/">Open Relay</a></p>'
    )
    return _page("Action link", body, status=int(exc.status))


def _confirmation(view: ActionLinkView, token: str, user: User | None) -> Response[str]:
    label = _ACTION_LABELS[view.claims.action]
    alert = f"alert #{view.group_id}"
    who = f"<p>You act as {html.escape(user.label)}.</p>\n" if user is not None else ""
    body = (
        f"<h1>{label} {alert}?</h1>\n"
        f"<p><strong>{html.escape(view.title or 'Untitled alert')}</strong></p>\n"
        f"<p>Current status: {html.escape(view.status)}</p>\n"
        f"{who}"
        f'<form method="post" action="/api/actions/{urllib.parse.quote(token, safe="")}">\n'
        f'<button type="submit">{label}</button>\n</form>\n'
        f'<p><a href="/alerts/{view.group_id}">Open {alert} without acting</a></p>'
    )
    return _page(f"{label} {alert}", body)


def _wants_html(request: Request[Any, Any, Any]) -> bool:
    accept = (request.headers.get("accept") or "").lower()
    return "text/html" in accept and "application/json" not in accept


def _login_redirect(token: str) -> Response[Any]:
    target = "/actions/" + urllib.parse.quote(token, safe="")
    return Response(
        None,
        status_code=303,
        headers={
            "Location": "/login?" + urllib.parse.urlencode({"next": target}),
            "Cache-Control": "no-store",
        },
    )


class ActionPageController(Controller):
    """The confirmation page of a signed action link (HTML, not part of the API schema)."""

    path = "/actions"
    include_in_schema = False

    @get("/{token:str}", operation_id="ActionLinkPage", media_type="text/html")
    async def confirm(self, request: Request[Any, Any, Any], token: FromPath[str]) -> Response[Any]:
        """Show what the link would do, with a button; never acts."""
        st = server_state(request)
        user = await _session_user(request)
        if st.settings.action_links.require_login and user is None:
            return _login_redirect(token)
        try:
            view = await inspect_action_link(st.relay.ctx, token)
        except RelayError as exc:
            return _error_page(exc)
        return _confirmation(view, token, user)


class ActionLinksController(Controller):
    """``POST /api/actions/{token}``: use a signed action link once (S6.3)."""

    path = "/api/actions"
    tags = ("alerts",)

    @post("/{token:str}", operation_id="UseActionLink", status_code=200)
    async def use(self, request: Request[Any, Any, Any], token: FromPath[str]) -> Response[Any]:
        """Acknowledge or resolve through a signed link; 400/409/410/403 change nothing."""
        st = server_state(request)
        html_answer = _wants_html(request)
        user = await _session_user(request)
        require_login = st.settings.action_links.require_login
        if require_login and user is None:
            if html_answer:
                return _login_redirect(token)
            raise unauthorized("Log in to use this action link")
        try:
            outcome = await use_action_link(
                st.relay.ctx,
                token,
                user_id=user.id if user is not None else None,
                require_login=require_login,
            )
        except RelayError as exc:
            if html_answer:
                return _error_page(exc)
            raise
        _count_ack(request, outcome, "link")
        if html_answer:
            body = (
                f"<h1>{html.escape(outcome.message)}</h1>\n"
                f'<p><a href="/alerts/{outcome.group_id}">Open alert #{outcome.group_id}</a></p>'
            )
            return _page(outcome.message, body)
        return Response(
            {
                "result": outcome.result,
                "action": outcome.action,
                "alert_id": outcome.group_id,
                "status": outcome.status,
                "message": outcome.message,
            },
            status_code=200,
        )


CONTROLLERS: list[Any] = [ChatCallbacksController, ActionPageController, ActionLinksController]
"""Registered by ``relay_server.controllers.api_controllers``."""
