"""Relay's one outbound HTTP client and its network policy (SPEC S6.2, S13.6).

Every request a channel (or a plugin using ``message.http``) makes goes through
:class:`OutboundClient`, an :class:`httpx.AsyncClient` with:

- a 5 s connect timeout and a total deadline per request (``security.outbound_timeout_seconds``);
- no redirects (``security.outbound_max_redirects`` 0): a 3xx answer is returned as is and
  :func:`classify_response` makes it a permanent failure;
- responses read up to ``security.outbound_max_response_bytes`` (the rest is dropped, and
  ``Accept-Encoding: identity`` keeps compressed bodies from growing past the cap);
- http and https only (https only with ``security.outbound_https_only``);
- an SSRF guard: the host name is resolved by Relay, *every* A/AAAA answer is checked against
  the private, loopback, link-local, CGNAT, multicast, reserved, unspecified and IPv4-mapped
  ranges (unless inside ``security.outbound_private_network_allowlist``), and the TCP connection
  is opened to a checked address, so a second DNS answer cannot swap the destination. TLS still
  verifies the certificate against the host name (SNI is the host name, not the address).

A refused destination raises :class:`OutboundPolicyError`, a
:class:`~relay_core.ports.channels.PermanentDeliveryError`, from inside the transport: plugin code
that only catches ``httpx.TransportError`` therefore reports it as permanent, as it should.

:func:`send_request` is what the built-in channels call: it maps transport failures to the
S5.9 failure classes; :func:`classify_response` does the same for status codes.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email.utils
import ipaddress
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final

import attrs
import httpcore
import httpx

from relay_core.ports.channels import PermanentDeliveryError, RetryableDeliveryError

if TYPE_CHECKING:
    from relay_adapters.settings import RelaySettings

__all__ = [
    "CONNECT_TIMEOUT_SECONDS",
    "MAX_RETRY_AFTER_SECONDS",
    "USER_AGENT",
    "IPAddress",
    "OutboundClient",
    "OutboundOptions",
    "OutboundPolicy",
    "OutboundPolicyError",
    "Resolver",
    "classify_response",
    "is_refused_address",
    "make_http_client",
    "options_from_settings",
    "parse_retry_after",
    "send_request",
    "system_resolver",
]

CONNECT_TIMEOUT_SECONDS: Final = 5.0
MAX_RETRY_AFTER_SECONDS: Final = 3600.0
USER_AGENT: Final = "Relay"
_SNIPPET: Final = 200

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[Sequence[str]]]
"""``async (host, port) -> addresses``: the DNS lookup, replaceable in tests."""

# Ranges refused on top of what ``ipaddress`` already knows as non-global (S6.2).
_REFUSED_NETWORKS: Final = tuple(
    ipaddress.ip_network(cidr)
    for cidr in (
        "0.0.0.0/8",  # "this network"
        "10.0.0.0/8",
        "100.64.0.0/10",  # CGNAT shared address space
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, cloud metadata (169.254.169.254)
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, broadcast
        "::/128",
        "::1/128",
        "::ffff:0:0/96",  # IPv4-mapped
        "64:ff9b::/96",  # NAT64: reaches IPv4 space through a translator
        "64:ff9b:1::/48",
        "2001::/32",  # Teredo
        "2002::/16",  # 6to4
        "fc00::/7",  # unique local
        "fe80::/10",  # link-local
        "fec0::/10",  # site-local (deprecated)
        "ff00::/8",  # multicast
    )
)


class OutboundPolicyError(PermanentDeliveryError):
    """The outbound network policy refused the destination (S6.2); retrying cannot help."""


def is_refused_address(address: IPAddress) -> bool:
    """Whether ``address`` is in a range S6.2 refuses (before the allow-list is consulted)."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return True
    if any(address.version == net.version and address in net for net in _REFUSED_NETWORKS):
        return True
    return bool(
        address.is_private
        or address.is_loopback
        or address.is_link_local
        or address.is_multicast
        or address.is_reserved
        or address.is_unspecified
        or not address.is_global
    )


async def system_resolver(host: str, port: int) -> Sequence[str]:
    """Every A/AAAA answer for ``host`` from the system resolver, in its order, without repeats."""
    loop = asyncio.get_running_loop()
    infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, proto=socket.IPPROTO_TCP)
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


def _parse_address(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.split("%", 1)[0])
    except ValueError:
        return None


@attrs.frozen(kw_only=True)
class OutboundPolicy:
    """Which destinations outbound requests may reach (S6.2)."""

    allowlist: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()
    """Networks exempt from the private-range check (``security.outbound_private_network_allowlist``)."""
    allow_hosts: frozenset[str] = frozenset()
    """Host names exempt from the check (the simulator's ``public_base_url`` host, S7.10)."""
    https_only: bool = False
    resolver: Resolver = system_resolver

    @classmethod
    def build(
        cls,
        *,
        allowlist: Iterable[str] = (),
        allow_hosts: Iterable[str] = (),
        https_only: bool = False,
        resolver: Resolver | None = None,
    ) -> OutboundPolicy:
        """A policy from allow-list strings (CIDRs or single addresses).

        Raises:
            ValueError: An allow-list entry is neither a CIDR nor an address.
        """
        networks = []
        for entry in allowlist:
            text = str(entry).strip()
            if not text:
                continue
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                raise ValueError(
                    f"outbound allow-list entry {text!r} is not a CIDR or an IP address"
                ) from exc
        return cls(
            allowlist=tuple(networks),
            allow_hosts=frozenset(host.strip().lower().rstrip(".") for host in allow_hosts if host.strip()),
            https_only=https_only,
            resolver=resolver or system_resolver,
        )

    def allowed(self, address: IPAddress) -> bool:
        """Whether a connection to ``address`` is permitted."""
        candidates: list[IPAddress] = [address]
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            candidates.append(address.ipv4_mapped)
        for candidate in candidates:
            if any(candidate.version == net.version and candidate in net for net in self.allowlist):
                return True
        return not is_refused_address(address)

    def check_url(self, url: httpx.URL) -> None:
        """Refuse schemes other than http/https (and http when ``https_only``)."""
        scheme = url.scheme.lower()
        if scheme not in ("http", "https"):
            raise OutboundPolicyError(f"URL scheme {scheme or '(none)'!r} is not allowed: use http or https")
        if self.https_only and scheme != "https":
            raise OutboundPolicyError("plain http is not allowed by the outbound network policy: use https")

    async def resolve(self, host: str, port: int, limit_seconds: float | None) -> list[IPAddress]:
        """The checked addresses to connect to for ``host``.

        Raises:
            OutboundPolicyError: Any answer is refused (so a mixed answer cannot be raced).
            httpcore.ConnectError: The name does not resolve (retryable, S5.9).
            httpcore.ConnectTimeout: Resolution took longer than the connect timeout.
        """
        literal = _parse_address(host)
        if literal is not None:
            answers: list[IPAddress] = [literal]
        else:
            try:
                raw = await asyncio.wait_for(self.resolver(host, port), limit_seconds)
            except TimeoutError as exc:
                raise httpcore.ConnectTimeout(f"name resolution for {host} timed out") from exc
            except OSError as exc:
                raise httpcore.ConnectError(f"name resolution failed for {host}: {exc}") from exc
            answers = [address for address in (_parse_address(str(item)) for item in raw) if address]
            if not answers:
                raise httpcore.ConnectError(f"name resolution failed for {host}: no address")
        if host.lower().rstrip(".") in self.allow_hosts:
            return answers
        for address in answers:
            if not self.allowed(address):
                raise OutboundPolicyError(
                    f"destination address {address} is not allowed by the outbound network policy"
                )
        return answers


class _GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks the host itself, then connects to a checked address only."""

    def __init__(self, policy: OutboundPolicy) -> None:
        self._policy = policy
        self._inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's backend signature
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = await self._policy.resolve(host, port, timeout)
        failure: Exception | None = None
        for address in addresses:
            try:
                return await self._inner.connect_tcp(
                    str(address),
                    port,
                    timeout=timeout,
                    local_address=local_address,
                    socket_options=socket_options,
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,  # noqa: ASYNC109  # httpcore's backend signature
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        raise OutboundPolicyError("unix sockets are not allowed by the outbound network policy")

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


# Most specific first: the first match wins.
_EXCEPTIONS: Final[tuple[tuple[type[Exception], type[httpx.TransportError]], ...]] = (
    (httpcore.ConnectTimeout, httpx.ConnectTimeout),
    (httpcore.ReadTimeout, httpx.ReadTimeout),
    (httpcore.WriteTimeout, httpx.WriteTimeout),
    (httpcore.PoolTimeout, httpx.PoolTimeout),
    (httpcore.TimeoutException, httpx.TimeoutException),
    (httpcore.ConnectError, httpx.ConnectError),
    (httpcore.ReadError, httpx.ReadError),
    (httpcore.WriteError, httpx.WriteError),
    (httpcore.NetworkError, httpx.NetworkError),
    (httpcore.RemoteProtocolError, httpx.RemoteProtocolError),
    (httpcore.LocalProtocolError, httpx.LocalProtocolError),
    (httpcore.ProtocolError, httpx.ProtocolError),
    (httpcore.UnsupportedProtocol, httpx.UnsupportedProtocol),
    (httpcore.ProxyError, httpx.ProxyError),
)


@contextlib.contextmanager
def _httpx_exceptions() -> Iterator[None]:
    try:
        yield
    except Exception as exc:
        for source, target in _EXCEPTIONS:
            if isinstance(exc, source):
                raise target(str(exc)) from exc
        raise


class _CappedStream(httpx.AsyncByteStream):
    """The response body, cut at ``limit`` bytes (S6.2)."""

    def __init__(self, stream: Any, limit: int) -> None:
        self._stream = stream
        self._limit = limit
        self.truncated = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        seen = 0
        with _httpx_exceptions():
            async for chunk in self._stream:
                room = self._limit - seen
                if len(chunk) > room:
                    if room > 0:
                        yield chunk[:room]
                    self.truncated = True
                    break
                seen += len(chunk)
                yield chunk

    async def aclose(self) -> None:
        closer = getattr(self._stream, "aclose", None)
        if closer is not None:
            with _httpx_exceptions():
                await closer()


class _GuardedTransport(httpx.AsyncBaseTransport):
    def __init__(
        self, policy: OutboundPolicy, *, max_response_bytes: int, ssl_context: ssl.SSLContext
    ) -> None:
        self._policy = policy
        self._max_response_bytes = max_response_bytes
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=ssl_context,
            max_connections=100,
            max_keepalive_connections=20,
            keepalive_expiry=5.0,
            network_backend=_GuardedBackend(policy),
        )

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self._policy.check_url(request.url)
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with _httpx_exceptions():
            response = await self._pool.handle_async_request(core_request)
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_CappedStream(response.stream, self._max_response_bytes),
            extensions=response.extensions,
        )

    async def aclose(self) -> None:
        await self._pool.aclose()


class OutboundClient(httpx.AsyncClient):
    """The shared outbound client (S6.2): an ``httpx.AsyncClient`` behind the network policy.

    Args:
        timeout: Total seconds for one request, answer included (``outbound_timeout_seconds``).
        allowlist: CIDRs or addresses exempt from the private-range check (tests: ``127.0.0.1/32``).
        max_response_bytes: Bytes of a response body that are read; the rest is dropped.
        https_only: Refuse plain http.
        connect_timeout: Seconds for name resolution plus the TCP/TLS connect (5).
        max_redirects: Redirects followed (0: a 3xx is returned and fails permanently).
        allow_hosts: Host names exempt from the address check.
        resolver: ``async (host, port) -> [address, ...]``; the system resolver by default.
        ssl_context: TLS settings; httpx's default (certifi) by default.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        allowlist: Iterable[str] = (),
        max_response_bytes: int = 1_048_576,
        https_only: bool = False,
        connect_timeout: float = CONNECT_TIMEOUT_SECONDS,
        max_redirects: int = 0,
        allow_hosts: Iterable[str] = (),
        resolver: Resolver | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        if timeout <= 0:
            raise ValueError("outbound timeout must be positive")
        if max_response_bytes < 0:
            raise ValueError("max_response_bytes must not be negative")
        self.policy = OutboundPolicy.build(
            allowlist=allowlist, allow_hosts=allow_hosts, https_only=https_only, resolver=resolver
        )
        self.total_timeout = float(timeout)
        self.max_response_bytes = int(max_response_bytes)
        self._redirects_allowed = max(int(max_redirects), 0)
        transport = _GuardedTransport(
            self.policy,
            max_response_bytes=self.max_response_bytes,
            ssl_context=ssl_context or httpx.create_ssl_context(),
        )
        super().__init__(
            transport=transport,
            timeout=httpx.Timeout(self.total_timeout, connect=min(connect_timeout, self.total_timeout)),
            follow_redirects=self._redirects_allowed > 0,
            max_redirects=self._redirects_allowed,
            trust_env=False,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
        )

    async def send(
        self,
        request: httpx.Request,
        *,
        stream: bool = False,
        auth: Any = httpx.USE_CLIENT_DEFAULT,
        follow_redirects: Any = httpx.USE_CLIENT_DEFAULT,
    ) -> httpx.Response:
        """Send under the total deadline; redirects only when ``max_redirects`` allows them."""
        if self._redirects_allowed == 0:
            follow_redirects = False
        try:
            async with asyncio.timeout(self.total_timeout):
                return await super().send(
                    request, stream=stream, auth=auth, follow_redirects=follow_redirects
                )
        except TimeoutError as exc:
            raise httpx.ReadTimeout(
                f"no complete answer within {self.total_timeout:g} s", request=request
            ) from exc


@attrs.frozen(kw_only=True)
class OutboundOptions:
    """The settings an :class:`OutboundClient` is built from (``[security]``, S10.3)."""

    timeout: float = 10.0
    allowlist: tuple[str, ...] = ()
    max_response_bytes: int = 1_048_576
    https_only: bool = False
    max_redirects: int = 0
    allow_hosts: tuple[str, ...] = ()

    def build(self, *, resolver: Resolver | None = None) -> OutboundClient:
        """A new client with these options; the caller closes it (``aclose``)."""
        return OutboundClient(
            timeout=self.timeout,
            allowlist=self.allowlist,
            max_response_bytes=self.max_response_bytes,
            https_only=self.https_only,
            max_redirects=self.max_redirects,
            allow_hosts=self.allow_hosts,
            resolver=resolver,
        )


def options_from_settings(settings: RelaySettings) -> OutboundOptions:
    """The ``[security]`` outbound options; with the simulator on, its host is allowed too (S7.10)."""
    security = settings.security
    allow_hosts: tuple[str, ...] = ()
    allowlist = tuple(security.outbound_private_network_allowlist)
    if settings.simulator_enabled:
        host = httpx.URL(settings.server.public_base_url).host
        if host:
            if _parse_address(host) is not None:
                allowlist = (*allowlist, host)
            else:
                allow_hosts = (host,)
    return OutboundOptions(
        timeout=float(security.outbound_timeout_seconds),
        allowlist=allowlist,
        max_response_bytes=int(security.outbound_max_response_bytes),
        https_only=bool(security.outbound_https_only),
        max_redirects=int(security.outbound_max_redirects),
        allow_hosts=allow_hosts,
    )


def make_http_client(settings: RelaySettings) -> OutboundClient:
    """The process-wide outbound client for ``settings`` (called by ``relay_adapters.compose``)."""
    return options_from_settings(settings).build()


# --- failure classes (S5.9) ----------------------------------------------------------------


def parse_retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta-seconds or HTTP date), capped at 3600.

    An HTTP date needs ``now``; without it (or for an unreadable value) the answer is ``None``.
    """
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    try:
        seconds = float(text)
    except ValueError:
        if now is None:
            return None
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.UTC)
        seconds = (when - now).total_seconds()
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_SECONDS)


def _response_now(response: httpx.Response) -> dt.datetime | None:
    date = response.headers.get("Date")
    if not date:
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def response_snippet(response: httpx.Response) -> str:
    """The first characters of the body, on one line, for error messages."""
    try:
        text = response.text
    except Exception:  # an undecodable body must not hide the status code
        return ""
    return " ".join(text.split())[:_SNIPPET]


def classify_response(
    response: httpx.Response, *, service: str = "remote", now: dt.datetime | None = None
) -> None:
    """Raise the S5.9 failure class of a non-2xx answer; return quietly on 2xx.

    - 408, 425, 429 and 5xx: :class:`RetryableDeliveryError` with ``Retry-After`` (≤ 3600 s).
    - 3xx: :class:`PermanentDeliveryError` (redirects are not followed).
    - any other status: :class:`PermanentDeliveryError`.

    Args:
        response: The answer.
        service: Names the remote side in the message (``"slack"``); never a URL.
        now: For ``Retry-After`` dates; the response's ``Date`` header otherwise.
    """
    status = response.status_code
    if 200 <= status < 300:
        return
    snippet = response_snippet(response)
    detail = f": {snippet}" if snippet else ""
    if 300 <= status < 400:
        raise PermanentDeliveryError(f"{service} answered HTTP {status}: redirects are not followed")
    if status in (408, 425, 429) or status >= 500:
        retry_after = parse_retry_after(
            response.headers.get("Retry-After"), now=now or _response_now(response)
        )
        raise RetryableDeliveryError(f"{service} answered HTTP {status}{detail}", retry_after=retry_after)
    raise PermanentDeliveryError(f"{service} answered HTTP {status}{detail}")


async def send_request(
    http: httpx.AsyncClient,
    method: str,
    url: str | httpx.URL,
    *,
    service: str,
    json: Any = None,
    content: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    params: Mapping[str, str] | None = None,
) -> httpx.Response:
    """Send one request and read its (capped) answer; transport failures become delivery errors.

    The status code is not checked: call :func:`classify_response` (or inspect a service's own
    error body first, as Slack and Telegram need). Messages name ``service``, never the URL,
    which often carries a secret (webhook URLs, Telegram bot tokens).

    Raises:
        RetryableDeliveryError: Timeouts, refused connections, DNS failures, broken answers.
        PermanentDeliveryError: An invalid URL or a destination the policy refuses.
    """
    try:
        return await http.request(method, url, json=json, content=content, headers=headers, params=params)
    except OutboundPolicyError:
        raise
    except httpx.UnsupportedProtocol as exc:
        raise PermanentDeliveryError(f"{service} URL is not usable: {exc}") from exc
    except httpx.InvalidURL as exc:
        raise PermanentDeliveryError(f"{service} URL is invalid") from exc
    except httpx.TimeoutException as exc:
        raise RetryableDeliveryError(f"{service} request timed out ({type(exc).__name__}: {exc})") from exc
    except httpx.TransportError as exc:
        raise RetryableDeliveryError(f"{service} request failed: {type(exc).__name__}: {exc}") from exc
