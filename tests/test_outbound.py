"""The outbound HTTP client: what it refuses to connect to (SSRF), its time and size caps."""

from __future__ import annotations

import ipaddress
import time

import pytest

from digest.core.config import load_config
from digest.core.outbound import (
    OutboundClient,
    RefusedURL,
    TimedOut,
    TooLarge,
    Unreachable,
    client_from_config,
    refusal,
)
from tests.support.http import Received, Reply, serving


def _hello(_: Received) -> Reply:
    return Reply(200, {"Content-Type": "text/plain"}, b"hello")


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1", "127.8.9.10", "::1", "10.1.2.3", "172.16.0.1", "192.168.1.1",
        "169.254.169.254", "100.64.0.1", "224.0.0.1", "0.0.0.0", "240.0.0.1",
        "255.255.255.255", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1", "::",
        "::ffff:127.0.0.1", "::ffff:10.0.0.1", "2002:7f00:1::", "64:ff9b::a00:1",
        "2001:db8::1",
    ],
)
def test_private_and_special_addresses_are_refused(address: str) -> None:
    """Is every non-public address, also an IPv4 one inside IPv6, refused with a reason?"""
    reason = refusal(ipaddress.ip_address(address))
    assert reason is not None and "address" in reason


@pytest.mark.parametrize("address", ["93.184.216.34", "1.1.1.1", "2606:4700:4700::1111",
                                     "::ffff:93.184.216.34"])
def test_public_addresses_pass(address: str) -> None:
    """Are public addresses allowed?"""
    assert refusal(ipaddress.ip_address(address)) is None


def test_loopback_server_is_refused_and_never_contacted() -> None:
    """Does a request to 127.0.0.1 fail before any byte reaches the server there?"""
    with serving(_hello) as server, OutboundClient() as client:
        with pytest.raises(RefusedURL, match="127.0.0.1 is a loopback address"):
            client.request("GET", server.url + "/")
        assert server.received == []


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("http://[::1]:9/", "::1 is a loopback address"),
        ("http://10.0.0.1/", "10.0.0.1 is a private address"),
        ("http://169.254.169.254/latest/meta-data/", "169.254.169.254 is a link-local address"),
        ("http://[::ffff:127.0.0.1]:9/", "127.0.0.1 is a loopback address"),
    ],
)
def test_refused_literal_addresses(url: str, reason: str) -> None:
    """Are IPv6 loopback, 10/8 and the cloud metadata address refused at once?"""
    with OutboundClient(connect_timeout=1) as client:
        started = time.monotonic()
        with pytest.raises(RefusedURL, match=f"refused to connect to .*{reason}"):
            client.request("GET", url)
        assert time.monotonic() - started < 1


def test_name_resolving_to_a_private_address_is_refused() -> None:
    """Is a host name checked on the address it resolves to (localhost → loopback)?"""
    with serving(_hello) as server, OutboundClient() as client:
        with pytest.raises(RefusedURL, match="refused to connect to localhost: .* loopback"):
            client.request("GET", f"http://localhost:{server.port}/")
        assert server.received == []


def test_redirect_to_loopback_is_refused() -> None:
    """Does a redirect from an allowed host to 127.0.0.1 meet the same check?

    127.0.0.2 stands in for a public server: it is the one network this client allows.
    """
    with serving(_hello) as inside:
        def redirect(_: Received) -> Reply:
            return Reply(302, {"Location": inside.url + "/secret"})

        with serving(redirect, host="127.0.0.2") as outside, OutboundClient(
            allowed=["127.0.0.2/32"], follow_redirects=True
        ) as client:
            with pytest.raises(RefusedURL, match="127.0.0.1 is a loopback address"):
                client.request("GET", outside.url + "/")
            assert len(outside.received) == 1
        assert inside.received == []


def test_allow_private_reaches_a_loopback_server() -> None:
    """With private addresses allowed, does the request go through and return the body?"""
    with serving(_hello) as server, OutboundClient(allow_private=True) as client:
        fetched = client.request("POST", server.url + "/hook", content=b"{}",
                                 headers={"Content-Type": "application/json"})
    assert (fetched.status, fetched.body) == (200, b"hello")
    assert server.received[0].body == b"{}"


def test_setting_turns_the_guard_off() -> None:
    """Does DIGEST_ALLOW_PRIVATE_URLS=true (and only it) let a client reach 127.0.0.1?"""
    with serving(_hello) as server:
        guarded = client_from_config(load_config({}))
        with pytest.raises(RefusedURL):
            guarded.request("GET", server.url)
        guarded.close()
        opened = client_from_config(load_config({"DIGEST_ALLOW_PRIVATE_URLS": "true"}))
        assert opened.request("GET", server.url).body == b"hello"
        opened.close()


def test_redirects_are_not_followed_unless_asked() -> None:
    """Without follow_redirects, is a 3xx answer returned as it is?"""
    def redirect(_: Received) -> Reply:
        return Reply(301, {"Location": "http://127.0.0.1:9/"})

    with serving(redirect) as server, OutboundClient(allow_private=True) as client:
        assert client.request("GET", server.url).status == 301


@pytest.mark.parametrize("declare_length", [True, False])
def test_response_over_the_cap_is_dropped(declare_length: bool) -> None:
    """Is a body over the cap refused, whether or not its length is declared?"""
    def big(_: Received) -> Reply:
        return Reply(200, {}, b"x" * 200_000, declare_length=declare_length)

    with serving(big) as server, OutboundClient(allow_private=True, max_bytes=10_000) as client:
        with pytest.raises(TooLarge, match="10000-byte cap"):
            client.request("GET", server.url)


def test_slow_server_times_out() -> None:
    """Does a server that does not answer within the read timeout fail the request?"""
    def slow(_: Received) -> Reply:
        time.sleep(2)
        return Reply(200)

    with serving(slow) as server, OutboundClient(allow_private=True, read_timeout=0.3) as client:
        with pytest.raises(TimedOut, match="reading"):
            client.request("GET", server.url)


def test_non_http_urls_and_unknown_hosts() -> None:
    """Are file:// URLs refused and unresolvable names reported as unreachable?"""
    with OutboundClient() as client:
        with pytest.raises(RefusedURL, match="http"):
            client.request("GET", "file:///etc/passwd")
        with pytest.raises(Unreachable, match="cannot resolve"):
            client.request("GET", "http://no-such-host.invalid/")
