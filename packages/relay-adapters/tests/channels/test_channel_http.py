"""The outbound HTTP client: SSRF policy, pinning, limits and failure classes (SPEC S6.2, S5.9)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import socket
from collections.abc import Sequence

import httpx
import pytest

from relay_adapters.channels._http import (
    OutboundClient,
    OutboundPolicyError,
    classify_response,
    is_refused_address,
    make_http_client,
    parse_retry_after,
    send_request,
)
from relay_adapters.settings import RelaySettings, SecuritySettings, ServerSettings, SimulatorSettings
from relay_core.ports.channels import PermanentDeliveryError, RetryableDeliveryError
from relay_core.testing.pytest_plugin import LocalHttpServer

LOOPBACK = ("127.0.0.1/32",)


def _resolver(answers: dict[str, Sequence[str]]):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    async def resolve(host: str, port: int) -> Sequence[str]:
        calls.append(host)
        if host not in answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers[host]

    resolve.calls = calls  # type: ignore[attr-defined]
    return resolve


def _response(status: int, headers: dict[str, str] | None = None, body: bytes = b"") -> httpx.Response:
    return httpx.Response(
        status, headers=headers, content=body, request=httpx.Request("POST", "https://x.test/")
    )


# --- the SSRF policy ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://10.0.0.5/hook", "10.0.0.5"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254"),
        ("http://[::1]:8080/hook", "::1"),
        ("http://100.64.1.2/hook", "100.64.1.2"),
        ("http://[::ffff:10.0.0.5]/hook", "::ffff:a00:5"),
        ("http://0.0.0.0/hook", "0.0.0.0"),  # noqa: S104  # a destination, not a bind
        ("http://[fe80::1]/hook", "fe80::1"),
        ("http://[fd00::1]/hook", "fd00::1"),
        ("http://224.0.0.1/hook", "224.0.0.1"),
    ],
)
async def test_private_literal_addresses_are_refused(url: str, address: str) -> None:
    """A URL naming a private, loopback, link-local, CGNAT, mapped or multicast address is refused."""
    async with OutboundClient(allowlist=LOOPBACK) as client:
        with pytest.raises(OutboundPolicyError) as raised:
            await send_request(client, "POST", url, service="webhook", json={})
    assert (
        raised.value.message == f"destination address {address} is not allowed by the outbound network policy"
    )


async def test_refusal_message_is_the_documented_one_and_permanent() -> None:
    """The refusal of 10.0.0.5 is a PermanentDeliveryError with the S6.2 wording."""
    async with OutboundClient() as client:
        with pytest.raises(PermanentDeliveryError) as raised:
            await client.post("http://10.0.0.5/hook", json={})
    assert str(raised.value) == "destination address 10.0.0.5 is not allowed by the outbound network policy"


async def test_hostname_resolving_to_loopback_is_refused(local_http_server: LocalHttpServer) -> None:
    """A host name whose A record is 127.0.0.1 is refused when loopback is not allow-listed."""
    resolver = _resolver({"hooks.example.test": ["127.0.0.1"]})
    async with OutboundClient(resolver=resolver) as client:
        with pytest.raises(OutboundPolicyError, match=r"destination address 127\.0\.0\.1 is not allowed"):
            await client.get(f"http://hooks.example.test:{local_http_server.port}/hook")
    assert local_http_server.requests == []


async def test_localhost_through_the_system_resolver_is_refused(local_http_server: LocalHttpServer) -> None:
    """``localhost`` resolved by the system resolver is refused without an allow-list."""
    async with OutboundClient() as client:
        with pytest.raises(OutboundPolicyError, match="is not allowed by the outbound network policy"):
            await client.get(f"http://localhost:{local_http_server.port}/hook")
    assert local_http_server.requests == []


async def test_every_answer_is_checked(local_http_server: LocalHttpServer) -> None:
    """A public answer next to a private one does not get the request through."""
    resolver = _resolver({"mixed.example.test": ["93.184.216.34", "10.1.2.3"]})
    async with OutboundClient(resolver=resolver) as client:
        with pytest.raises(OutboundPolicyError, match=r"10\.1\.2\.3"):
            await client.get(f"http://mixed.example.test:{local_http_server.port}/")


async def test_allow_listed_loopback_is_reached(local_http_server: LocalHttpServer) -> None:
    """With 127.0.0.1/32 allow-listed the request reaches the local server."""
    local_http_server.respond(200, {"ok": True})
    async with OutboundClient(allowlist=LOOPBACK) as client:
        response = await client.post(f"{local_http_server.url}/hook", json={"a": 1})
    assert response.json() == {"ok": True}
    assert local_http_server.last_request.json() == {"a": 1}


async def test_connection_is_pinned_to_the_checked_address(local_http_server: LocalHttpServer) -> None:
    """A host name is resolved once by the policy and the request goes there with its Host header."""
    resolver = _resolver({"hooks.example.test": ["127.0.0.1"]})
    async with OutboundClient(allowlist=LOOPBACK, resolver=resolver) as client:
        response = await client.get(f"http://hooks.example.test:{local_http_server.port}/pinned")
    assert response.status_code == 200
    assert resolver.calls == ["hooks.example.test"]  # type: ignore[attr-defined]
    assert local_http_server.last_request.header("Host") == f"hooks.example.test:{local_http_server.port}"


async def test_allow_hosts_exempts_a_host_name(local_http_server: LocalHttpServer) -> None:
    """A host named in allow_hosts (the simulator's public host) is reached even on loopback."""
    resolver = _resolver({"relay.local.test": ["127.0.0.1"]})
    async with OutboundClient(allow_hosts=["relay.local.test"], resolver=resolver) as client:
        response = await client.get(f"http://relay.local.test:{local_http_server.port}/sink")
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("address", "refused"),
    [
        ("93.184.216.34", False),
        ("2606:4700:4700::1111", False),
        ("192.168.1.1", True),
        ("172.16.0.1", True),
        ("127.0.0.53", True),
        ("100.127.255.254", True),
        ("240.0.0.1", True),
        ("::", True),
        ("::ffff:8.8.8.8", True),
        ("64:ff9b::a00:5", True),
        ("ff02::1", True),
    ],
)
def test_address_ranges(address: str, refused: bool) -> None:
    """Each S6.2 range is refused and ordinary public addresses are not."""
    assert is_refused_address(ipaddress.ip_address(address)) is refused


async def test_non_http_schemes_are_refused() -> None:
    """Only http and https URLs are fetched."""
    async with OutboundClient(allowlist=LOOPBACK) as client:
        with pytest.raises(PermanentDeliveryError):
            await send_request(client, "GET", "ftp://127.0.0.1/file", service="webhook")


async def test_https_only_refuses_plain_http(local_http_server: LocalHttpServer) -> None:
    """With https_only a plain-http URL fails permanently before connecting."""
    async with OutboundClient(allowlist=LOOPBACK, https_only=True) as client:
        with pytest.raises(OutboundPolicyError, match="https"):
            await client.get(local_http_server.url)
    assert local_http_server.requests == []


async def test_dns_failure_is_retryable() -> None:
    """A name that does not resolve is a retryable failure."""
    async with OutboundClient(resolver=_resolver({})) as client:
        with pytest.raises(RetryableDeliveryError, match="name resolution failed"):
            await send_request(client, "GET", "http://nowhere.example.test/", service="webhook")


# --- limits -------------------------------------------------------------------------------------


async def test_redirects_are_not_followed(local_http_server: LocalHttpServer) -> None:
    """A 302 is returned as is (one request) and classified as permanent."""
    local_http_server.respond(302, b"", headers={"Location": "http://10.0.0.5/"})
    async with OutboundClient(allowlist=LOOPBACK) as client:
        response = await send_request(client, "POST", f"{local_http_server.url}/hook", service="webhook")
    assert response.status_code == 302
    assert len(local_http_server.requests) == 1
    with pytest.raises(PermanentDeliveryError, match="redirects are not followed"):
        classify_response(response, service="webhook")


async def test_response_body_is_capped(local_http_server: LocalHttpServer) -> None:
    """Only max_response_bytes of a large answer are read."""
    local_http_server.respond(200, b"x" * 50_000)
    async with OutboundClient(allowlist=LOOPBACK, max_response_bytes=1000) as client:
        response = await client.get(local_http_server.url)
    assert len(response.content) == 1000


async def test_compressed_answers_are_not_requested(local_http_server: LocalHttpServer) -> None:
    """The client asks for identity encoding so the cap bounds the decoded body too."""
    async with OutboundClient(allowlist=LOOPBACK) as client:
        await client.get(local_http_server.url)
    assert local_http_server.last_request.header("Accept-Encoding") == "identity"


async def test_hanging_server_times_out_as_retryable(local_http_server: LocalHttpServer) -> None:
    """A server that never answers fails retryably after the total timeout."""
    local_http_server.respond(hang=True)
    async with OutboundClient(allowlist=LOOPBACK, timeout=0.3) as client:
        with pytest.raises(RetryableDeliveryError, match="timed out"):
            await send_request(client, "POST", local_http_server.url, service="webhook")


async def test_refused_connection_is_retryable() -> None:
    """A port nobody listens on is a retryable failure."""
    with LocalHttpServer() as server:
        url = server.url
    async with OutboundClient(allowlist=LOOPBACK) as client:
        with pytest.raises(RetryableDeliveryError, match="ConnectError"):
            await send_request(client, "POST", url, service="webhook")


# --- failure classes ----------------------------------------------------------------------------


@pytest.mark.parametrize("status", [408, 425, 429, 500, 502, 503])
def test_retryable_statuses(status: int) -> None:
    """408, 425, 429 and 5xx are retryable."""
    with pytest.raises(RetryableDeliveryError, match=f"HTTP {status}"):
        classify_response(_response(status), service="webhook")


@pytest.mark.parametrize("status", [400, 401, 403, 404, 410, 422])
def test_permanent_statuses(status: int) -> None:
    """Other 4xx answers are permanent."""
    with pytest.raises(PermanentDeliveryError, match=f"HTTP {status}"):
        classify_response(_response(status), service="webhook")


@pytest.mark.parametrize("status", [301, 302, 307, 308])
def test_redirect_statuses_are_permanent(status: int) -> None:
    """A 3xx is permanent because redirects are not followed."""
    with pytest.raises(PermanentDeliveryError, match="redirects are not followed"):
        classify_response(_response(status), service="webhook")


def test_success_statuses_pass() -> None:
    """2xx answers raise nothing."""
    for status in (200, 201, 202, 204):
        classify_response(_response(status))


def test_retry_after_seconds_are_honoured() -> None:
    """A 429 with Retry-After: 30 carries retry_after 30."""
    with pytest.raises(RetryableDeliveryError) as raised:
        classify_response(_response(429, {"Retry-After": "30"}), service="webhook")
    assert raised.value.retry_after == 30


def test_retry_after_is_capped_at_an_hour() -> None:
    """Retry-After beyond 3600 s is capped."""
    with pytest.raises(RetryableDeliveryError) as raised:
        classify_response(_response(503, {"Retry-After": "86400"}))
    assert raised.value.retry_after == 3600


def test_retry_after_http_date_is_relative_to_now() -> None:
    """A Retry-After date counts from ``now``; garbage gives no hint."""
    now = dt.datetime(2026, 6, 1, 7, 0, tzinfo=dt.UTC)
    assert parse_retry_after("Mon, 01 Jun 2026 07:02:00 GMT", now=now) == 120
    assert parse_retry_after("soon", now=now) is None
    assert parse_retry_after("-5") == 0


def test_error_messages_do_not_contain_the_url() -> None:
    """Failure messages name the service, not the (secret-bearing) URL."""
    response = httpx.Response(
        404, content=b"no", request=httpx.Request("POST", "https://hooks.slack.com/services/T0/B0/secret")
    )
    with pytest.raises(PermanentDeliveryError) as raised:
        classify_response(response, service="slack webhook")
    assert "secret" not in raised.value.message
    assert raised.value.message == "slack webhook answered HTTP 404: no"


# --- settings -----------------------------------------------------------------------------------


async def test_make_http_client_reads_the_security_settings() -> None:
    """make_http_client applies the allow-list, timeout, cap and https_only of [security]."""
    settings = RelaySettings(
        security=SecuritySettings(
            outbound_private_network_allowlist=("10.20.0.0/16",),
            outbound_timeout_seconds=7.0,
            outbound_max_response_bytes=2048,
            outbound_https_only=True,
        ),
        simulator=SimulatorSettings(enabled=False),
    )
    client = make_http_client(settings)
    try:
        assert client.total_timeout == 7.0
        assert client.max_response_bytes == 2048
        assert client.policy.https_only is True
        assert client.policy.allowed(ipaddress.ip_address("10.20.3.4"))
        assert not client.policy.allowed(ipaddress.ip_address("10.21.3.4"))
    finally:
        await client.aclose()


async def test_simulator_allows_the_public_base_url_host() -> None:
    """With the simulator enabled the host of public_base_url is implicitly allow-listed (S7.10)."""
    settings = RelaySettings(
        server=ServerSettings(public_base_url="http://127.0.0.1:8080"),
        simulator=SimulatorSettings(enabled=True),
    )
    client = make_http_client(settings)
    try:
        assert client.policy.allowed(ipaddress.ip_address("127.0.0.1"))
        assert not client.policy.allowed(ipaddress.ip_address("127.0.0.2"))
    finally:
        await client.aclose()
