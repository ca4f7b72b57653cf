"""Outbound HTTP that cannot be pointed at the service's own network (SSRF).

Contract: every request made through `OutboundClient` connects only to addresses that
pass `refusal()`: the host is resolved at connect time and the socket is opened to the
checked address itself, so a redirect, a second DNS answer (rebinding) or a name that
resolves to a private address all meet the same check; TLS still verifies and sends the
URL's host name. Private, loopback, link-local, multicast, reserved, CGNAT, IPv6 ULA and
IPv4 addresses hidden in IPv6 (mapped, 6to4, Teredo, NAT64) are refused unless the client
allows private addresses (DIGEST_ALLOW_PRIVATE_URLS). Each request has connect, read and
total time limits and a cap on the response body, read as a stream and dropped past the
cap. Every failure is one `OutboundError` subclass whose message is a one-line reason.
"""

from __future__ import annotations

import ipaddress
import socket
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


class OutboundError(Exception):
    """An outbound request failed; str() is a one-line reason fit to show an admin."""


class RefusedURL(OutboundError):
    """The URL is not an absolute http(s) URL, or its host is on a refused network."""


class TooLarge(OutboundError):
    """The response body passed the size cap."""


class TimedOut(OutboundError):
    """Connecting, reading or the whole exchange took longer than allowed."""


class Unreachable(OutboundError):
    """The host could not be resolved or connected to, or spoke broken HTTP."""


def refusal(address: IPAddress) -> str | None:
    """Return why an address must not be connected to, or None when it is public."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address.teredo is not None:
            embedded = address.teredo[1]
        if embedded is None and address in _NAT64:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            reason = refusal(embedded)
            return f"{reason} (inside {address})" if reason else None
    kinds = (
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("multicast", address.is_multicast),
        ("unspecified", address.is_unspecified),
        ("carrier-grade NAT", address in _CGNAT),
        ("private", address.is_private),
        ("reserved", address.is_reserved or not address.is_global),
    )
    for kind, matches in kinds:
        if matches:
            return f"{address} is a {kind} address"
    return None


class _GuardedBackend(httpcore.NetworkBackend):
    """Resolve, check every address, and connect to a checked one."""

    def __init__(self, allow_private: bool, allowed: tuple[IPNetwork, ...]) -> None:
        self._allow_private = allow_private
        self._allowed = allowed
        self._plain = httpcore.SyncBackend()

    def _refusal(self, address: IPAddress) -> str | None:
        if self._allow_private or any(address in network for network in self._allowed):
            return None
        return refusal(address)

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Open a connection to the first resolved address of host that passes the check."""
        try:
            infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise Unreachable(f"cannot resolve {host}: {exc.strerror}") from None
        refusals: list[str] = []
        last_error: Exception | None = None
        for *_, sockaddr in infos:
            address = ipaddress.ip_address(str(sockaddr[0]).partition("%")[0])
            reason = self._refusal(address)
            if reason:
                refusals.append(reason)
                continue
            try:
                return self._plain.connect_tcp(
                    str(address), port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last_error = exc
        if last_error is not None:
            raise last_error
        raise RefusedURL(f"refused to connect to {host}: {refusals[0]}")

    def connect_unix_socket(
        self,
        path: str,
        timeout: float | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        """Refuse: outbound requests go over TCP only."""
        raise RefusedURL("refused to connect to a Unix socket")

    def sleep(self, seconds: float) -> None:
        """Sleep, as httpcore's own backend does between retries."""
        time.sleep(seconds)


class _GuardedTransport(httpx.HTTPTransport):
    def __init__(self, backend: _GuardedBackend, limits: httpx.Limits) -> None:
        super().__init__(trust_env=False, limits=limits)
        # httpx builds its pool with the plain backend and has no argument for another.
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            max_connections=limits.max_connections,
            max_keepalive_connections=limits.max_keepalive_connections,
            keepalive_expiry=limits.keepalive_expiry,
            network_backend=backend,
        )


@dataclass(frozen=True)
class Fetched:
    """A response read whole (within the cap)."""

    status: int
    headers: httpx.Headers
    body: bytes
    url: str
    elapsed: float  # seconds from sending the request to the last byte

    def text(self, limit: int | None = None) -> str:
        """Return the body decoded as UTF-8 (invalid bytes replaced), cut to limit characters."""
        decoded = self.body.decode("utf-8", errors="replace")
        return decoded if limit is None else decoded[:limit]


class OutboundClient:
    """An HTTP client whose every connection passes the SSRF check; reusable, thread-safe."""

    def __init__(
        self,
        *,
        allow_private: bool = False,
        allowed: Iterable[str] = (),
        connect_timeout: float = 5.0,
        read_timeout: float = 10.0,
        total_timeout: float = 20.0,
        max_bytes: int = 1_000_000,
        follow_redirects: bool = False,
        max_redirects: int = 5,
        user_agent: str = "digest",
    ) -> None:
        self.total_timeout = total_timeout
        self.max_bytes = max_bytes
        backend = _GuardedBackend(
            allow_private, tuple(ipaddress.ip_network(network) for network in allowed)
        )
        self._client = httpx.Client(
            transport=_GuardedTransport(backend, httpx.Limits(max_connections=20)),
            timeout=httpx.Timeout(read_timeout, connect=connect_timeout),
            follow_redirects=follow_redirects,
            max_redirects=max_redirects,
            trust_env=False,
            headers={"User-Agent": user_agent},
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str] | None = None,
        content: bytes | None = None,
    ) -> Fetched:
        """Send one request and return the response, or raise an OutboundError."""
        parts = urlsplit(url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise RefusedURL("expected an absolute http:// or https:// URL")
        started = time.monotonic()
        deadline = started + self.total_timeout
        try:
            with self._client.stream(method, url, headers=headers, content=content) as response:
                declared = response.headers.get("Content-Length", "")
                if declared.isdigit() and int(declared) > self.max_bytes:
                    raise TooLarge(f"the response declares {declared} bytes, over the "
                                   f"{self.max_bytes}-byte cap")
                chunks: list[bytes] = []
                size = 0
                for chunk in response.iter_bytes():
                    size += len(chunk)
                    if size > self.max_bytes:
                        raise TooLarge(f"the response passed the {self.max_bytes}-byte cap")
                    if time.monotonic() > deadline:
                        raise TimedOut(f"the response took over {self.total_timeout:g} s")
                    chunks.append(chunk)
                return Fetched(
                    status=response.status_code,
                    headers=response.headers,
                    body=b"".join(chunks),
                    url=str(response.url),
                    elapsed=time.monotonic() - started,
                )
        except httpx.TimeoutException as exc:
            raise TimedOut(f"timed out ({_kind(exc)}) after "
                           f"{time.monotonic() - started:.1f} s") from None
        except httpx.TooManyRedirects:
            raise Unreachable("too many redirects") from None
        except httpx.UnsupportedProtocol:
            raise RefusedURL("a redirect led to a URL that is not http:// or https://") from None
        except httpx.HTTPError as exc:
            raise Unreachable(_one_line(exc)) from None

    def close(self) -> None:
        """Close the pooled connections."""
        self._client.close()

    def __enter__(self) -> OutboundClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def client_from_config(config: Mapping[str, Any], **options: Any) -> OutboundClient:
    """Return an OutboundClient honouring DIGEST_ALLOW_PRIVATE_URLS; options as for the class."""
    return OutboundClient(allow_private=bool(config.get("ALLOW_PRIVATE_URLS")), **options)


def _kind(exc: httpx.TimeoutException) -> str:
    kinds: dict[type[Exception], str] = {
        httpx.ConnectTimeout: "connecting",
        httpx.ReadTimeout: "reading",
        httpx.WriteTimeout: "writing",
        httpx.PoolTimeout: "waiting for a connection",
    }
    return next((kind for cls, kind in kinds.items() if isinstance(exc, cls)), "waiting")


def _one_line(exc: Exception) -> str:
    return (" ".join(str(exc).split()) or type(exc).__name__)[:300]
