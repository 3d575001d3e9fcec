"""The email channel against a real local SMTP server (aiosmtpd), parsing what arrives (SPEC S6.9)."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import ipaddress
import ssl
import threading
from collections.abc import Iterator, Mapping
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import attrs
import pytest
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from relay_adapters.channels import ChannelEnvironment, EmailChannel, SmtpOptions
from relay_core.ports.channels import (
    DeliveryResult,
    OutboundMessage,
    PermanentDeliveryError,
    Recipient,
    RetryableDeliveryError,
)
from relay_core.testing.contracts import ChannelContract

ALICE = Recipient(user_id=7, username="alice", display_name="Alice", email="alice@example.test")


class Recorder:
    """aiosmtpd handler keeping every message; RCPT/DATA answers can be scripted."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []
        self.rcpt_answers: dict[str, str] = {}
        self.default_rcpt_answer: str | None = None
        self.logins: list[tuple[str, str]] = []

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str, options: Any) -> str:
        answer = self.rcpt_answers.get(address, self.default_rcpt_answer)
        if answer is not None:
            return answer
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 Message accepted"

    def authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, auth_data: Any
    ) -> AuthResult:
        assert isinstance(auth_data, LoginPassword)
        login, password = auth_data.login.decode(), auth_data.password.decode()
        self.logins.append((login, password))
        return AuthResult(success=(login, password) == ("relay", "s3cret"), handled=False)


class SmtpServer:
    """An aiosmtpd server on 127.0.0.1 and an ephemeral port, served by its own thread and loop."""

    def __init__(self, *, tls_context: ssl.SSLContext | None = None, with_auth: bool = False) -> None:
        self.handler = Recorder()
        self._tls = tls_context
        self._auth = with_auth
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="relay-test-smtp", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self.port = 0

    def _factory(self) -> SMTP:
        return SMTP(
            self.handler,
            hostname="smtp.test",
            tls_context=self._tls,
            require_starttls=self._tls is not None,
            auth_required=self._auth,
            authenticator=self.handler.authenticate if self._auth else None,
            loop=self._loop,
        )

    def start(self) -> SmtpServer:
        self._thread.start()
        future = asyncio.run_coroutine_threadsafe(
            self._loop.create_server(self._factory, "127.0.0.1", 0), self._loop
        )
        self._server = future.result(10)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(close(), self._loop).result(10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    @property
    def messages(self) -> list[tuple[str, list[str], EmailMessage]]:
        return self.handler.messages


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A plain (no TLS) local SMTP server."""
    server = SmtpServer().start()
    try:
        yield server
    finally:
        server.stop()


def _env(server: SmtpServer, **smtp: Any) -> ChannelEnvironment:
    options: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "from_address": "relay@example.test",
        "use_tls": False,
        "timeout_seconds": 5.0,
    }
    options.update(smtp)
    return ChannelEnvironment(public_base_url="https://relay.example.test", smtp=SmtpOptions(**options))


def _parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(preferencelist=("plain",))
    body_html = message.get_body(preferencelist=("html",))
    assert text is not None
    assert body_html is not None
    # SMTP carries CRLF line ends; compare with the LF the channel renders.
    return text.get_content().replace("\r\n", "\n"), body_html.get_content().replace("\r\n", "\n")


class TestEmailContract(ChannelContract):
    """EmailChannel passes ChannelContract against a local SMTP server."""

    channel_class = EmailChannel
    entry_point_name = "builtin"

    @pytest.fixture
    def receiver(self, smtp_server: SmtpServer) -> SmtpServer:
        """The local SMTP server."""
        return smtp_server

    def make_channel(self, receiver: Any) -> EmailChannel:
        return EmailChannel(env=_env(receiver))

    def make_config(self, receiver: Any) -> Mapping[str, Any]:
        return {"to_assignee": True}

    def check_delivery(self, receiver: Any, message: OutboundMessage, result: DeliveryResult) -> None:
        mail_from, rcpt_tos, mail = receiver.messages[-1]
        assert mail_from == "relay@example.test"
        assert rcpt_tos == ["alice@example.test"]
        assert mail["Subject"] == "[notification] [critical] Disk is full (#42)"
        assert mail["From"] == "Relay <relay@example.test>"
        assert mail["To"] == "alice@example.test"
        assert mail["Message-ID"] == "<relay.42.5@example.test>"
        assert mail["In-Reply-To"] is None
        assert mail["Auto-Submitted"] == "auto-generated"
        assert mail["X-Relay-Alert-Id"] == "42"
        assert mail.get_content_type() == "multipart/alternative"
        text, body_html = _parts(mail)
        assert text == (
            f"{message.text}\n\n"
            "Acknowledge: https://relay.example.test/actions/ack.token\n"
            "Resolve: https://relay.example.test/actions/resolve.token\n"
        )
        assert "Disk is full" in body_html
        assert 'href="https://relay.example.test/actions/ack.token"' in body_html
        assert result.external_message_id == "<relay.42.5@example.test>"
        assert result.provider_status == "sent"
        assert result.provider_payload == {"recipients": ["a***@example.test"], "failed": {}}

    def arrange_failure(self, receiver: Any, kind: str) -> bool:
        receiver.handler.default_rcpt_answer = (
            "451 4.3.0 Try again later" if kind == "retryable" else "550 5.1.1 No such user"
        )
        return True


async def test_reminder_threads_under_the_first_message(smtp_server: SmtpServer, make_message: Any) -> None:
    """A reminder has its own Message-ID and names the first message in In-Reply-To and References."""
    message = make_message("email", {}, event_type="reminder", recipient=ALICE)
    await EmailChannel(env=_env(smtp_server)).send(message)
    _, _, mail = smtp_server.messages[-1]
    assert mail["In-Reply-To"] == "<relay.42.5@example.test>"
    assert mail["References"] == "<relay.42.5@example.test>"
    assert mail["Message-ID"] != "<relay.42.5@example.test>"
    assert mail["Subject"] == "[reminder] [critical] Disk is full (#42)"


async def test_message_id_is_stable_across_retries(smtp_server: SmtpServer, make_message: Any) -> None:
    """Resending one intent produces the same Message-ID (receivers can drop the duplicate)."""
    message = make_message("email", {}, event_type="escalation", recipient=ALICE)
    channel = EmailChannel(env=_env(smtp_server))
    await channel.send(message)
    await channel.send(message)
    assert smtp_server.messages[0][2]["Message-ID"] == smtp_server.messages[1][2]["Message-ID"]


async def test_assignee_without_email_is_permanent(smtp_server: SmtpServer, make_message: Any) -> None:
    """An addressed person without an e-mail fails permanently with the documented message."""
    message = make_message("email", {}, recipient=attrs.evolve(ALICE, email=None))
    with pytest.raises(PermanentDeliveryError) as raised:
        await EmailChannel(env=_env(smtp_server)).send(message)
    assert raised.value.message == "email recipient is missing: set email on the assigned user"
    assert smtp_server.messages == []


async def test_one_message_per_recipient(smtp_server: SmtpServer, make_message: Any) -> None:
    """The assignee and each configured recipient get their own message."""
    config = {"recipients": ["oncall@example.test", "alice@example.test"], "to": "boss@example.test"}
    await EmailChannel(env=_env(smtp_server)).send(make_message("email", config, recipient=ALICE))
    assert [rcpt for _, rcpt, _ in smtp_server.messages] == [
        ["alice@example.test"],
        ["oncall@example.test"],
        ["boss@example.test"],
    ]
    assert [mail["To"] for _, _, mail in smtp_server.messages] == [
        "alice@example.test",
        "oncall@example.test",
        "boss@example.test",
    ]


async def test_room_style_channel_without_assignee(smtp_server: SmtpServer, make_message: Any) -> None:
    """With to_assignee false only the configured recipients are written to."""
    config = {"to_assignee": False, "recipients": ["ops@example.test"]}
    await EmailChannel(env=_env(smtp_server)).send(make_message("email", config, recipient=ALICE))
    assert [rcpt for _, rcpt, _ in smtp_server.messages] == [["ops@example.test"]]


async def test_partial_refusal_keeps_the_delivery(smtp_server: SmtpServer, make_message: Any) -> None:
    """When one of several recipients is refused the others are delivered and the result says partial."""
    smtp_server.handler.rcpt_answers["gone@example.test"] = "550 5.1.1 No such user"
    config = {"recipients": ["gone@example.test"]}
    result = await EmailChannel(env=_env(smtp_server)).send(make_message("email", config, recipient=ALICE))
    assert [rcpt for _, rcpt, _ in smtp_server.messages] == [["alice@example.test"]]
    assert result.provider_status == "partial"
    assert result.provider_payload["failed"] == {
        "g***@example.test": "SMTP RCPT answered 550 5.1.1 No such user"
    }


@pytest.mark.parametrize(
    ("answer", "error"),
    [("451 4.7.1 Greylisted", RetryableDeliveryError), ("554 5.7.1 Rejected", PermanentDeliveryError)],
)
async def test_smtp_reply_classes(
    smtp_server: SmtpServer, make_message: Any, answer: str, error: type[Exception]
) -> None:
    """SMTP 4yz is retryable and 5yz permanent; the reply is in the message."""
    smtp_server.handler.default_rcpt_answer = answer
    with pytest.raises(error, match=answer.split(" ", 1)[0]):
        await EmailChannel(env=_env(smtp_server)).send(make_message("email", {}, recipient=ALICE))


async def test_custom_templates_escape_html_and_keep_unknown_placeholders(
    smtp_server: SmtpServer, make_message: Any, make_group: Any
) -> None:
    """Placeholders are filled, HTML values escaped, unknown placeholders left literally."""
    config = {
        "subject_template": "{severity} alert {alert_id}: {title} {nope}",
        "text_template": "Ack: {ack_url}\n{message}\n{team.__class__}",
        "html_template": "<p>{title}</p><a href='{resolve_url}'>Resolve</a>",
    }
    group = make_group(title="<b>Disk</b> & more")
    await EmailChannel(env=_env(smtp_server)).send(
        make_message("email", config, group=group, recipient=ALICE)
    )
    _, _, mail = smtp_server.messages[-1]
    assert mail["Subject"] == "critical alert 42: <b>Disk</b> & more {nope}"
    text, body_html = _parts(mail)
    assert text == "Ack: https://relay.example.test/actions/ack.tok\n/var is 97% full\n{team.__class__}\n"
    assert body_html == (
        "<p>&lt;b&gt;Disk&lt;/b&gt; &amp; more</p><a href='https://relay.example.test/actions/res.tok'>Resolve</a>\n"
    )


async def test_test_event_goes_to_the_caller(smtp_server: SmtpServer, make_message: Any) -> None:
    """A test delivery uses the test title and is not threaded."""
    await EmailChannel(env=_env(smtp_server)).send(
        make_message("email", {}, event_type="test", recipient=ALICE)
    )
    _, _, mail = smtp_server.messages[-1]
    assert mail["Subject"] == "[test] [critical] Test notification from Relay (#test)"
    assert mail["In-Reply-To"] is None


async def test_starttls_required_but_not_offered_is_refused(
    smtp_server: SmtpServer, make_message: Any
) -> None:
    """With use_tls the channel refuses a server without STARTTLS and sends nothing."""
    with pytest.raises(PermanentDeliveryError, match="does not offer STARTTLS"):
        await EmailChannel(env=_env(smtp_server, use_tls=True)).send(
            make_message("email", {}, recipient=ALICE)
        )
    assert smtp_server.messages == []


async def test_unreachable_server_is_retryable(make_message: Any) -> None:
    """A refused SMTP connection is retryable."""
    server = SmtpServer().start()
    server.stop()
    with pytest.raises(RetryableDeliveryError, match="SMTP connection failed"):
        await EmailChannel(env=_env(server)).send(make_message("email", {}, recipient=ALICE))


async def test_missing_smtp_host_is_permanent(make_message: Any) -> None:
    """Without [smtp] host the channel cannot send: permanent."""
    with pytest.raises(PermanentDeliveryError, match=r"smtp\.host"):
        await EmailChannel().send(make_message("email", {}, recipient=ALICE))


# --- STARTTLS and AUTH ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    folder = tmp_path_factory.mktemp("tls")
    cert_file, key_file = folder / "cert.pem", folder / "key.pem"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_file, key_file


@pytest.fixture
def tls_smtp_server(certificate: tuple[Path, Path]) -> Iterator[SmtpServer]:
    """A local SMTP server offering STARTTLS and requiring AUTH after it."""
    cert_file, key_file = certificate
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert_file, key_file)
    server = SmtpServer(tls_context=context, with_auth=True).start()
    try:
        yield server
    finally:
        server.stop()


def _client_context(certificate: tuple[Path, Path]) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(certificate[0]))


async def test_starttls_and_auth(
    tls_smtp_server: SmtpServer, certificate: tuple[Path, Path], make_message: Any
) -> None:
    """STARTTLS is negotiated with certificate checks, then AUTH, then the message is accepted."""
    env = _env(
        tls_smtp_server,
        use_tls=True,
        user="relay",
        password="s3cret",
        ssl_context=_client_context(certificate),
    )
    await EmailChannel(env=env).send(make_message("email", {}, recipient=ALICE))
    assert tls_smtp_server.handler.logins == [("relay", "s3cret")]
    assert [rcpt for _, rcpt, _ in tls_smtp_server.messages] == [["alice@example.test"]]


async def test_wrong_password_is_permanent(
    tls_smtp_server: SmtpServer, certificate: tuple[Path, Path], make_message: Any
) -> None:
    """A rejected login (535) fails permanently and nothing is sent."""
    env = _env(
        tls_smtp_server,
        use_tls=True,
        user="relay",
        password="wrong",
        ssl_context=_client_context(certificate),
    )
    with pytest.raises(PermanentDeliveryError, match="authentication failed"):
        await EmailChannel(env=env).send(make_message("email", {}, recipient=ALICE))
    assert tls_smtp_server.messages == []


async def test_untrusted_certificate_is_permanent(tls_smtp_server: SmtpServer, make_message: Any) -> None:
    """A certificate the client does not trust stops the session before any data is sent."""
    env = _env(tls_smtp_server, use_tls=True, user="relay", password="s3cret")
    with pytest.raises(PermanentDeliveryError, match="certificate is not trusted"):
        await EmailChannel(env=env).send(make_message("email", {}, recipient=ALICE))
    assert tls_smtp_server.messages == []
