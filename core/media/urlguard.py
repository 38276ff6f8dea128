"""The URL guard against server-side request forgery, and the deadline of a download.

Two layers, one policy:
- `check_url` refuses a URL before anything is fetched: a scheme other than http(s),
  credentials in the URL, a malformed or overlong URL, and a host that is, or resolves to, a
  loopback, private, link-local (cloud metadata), multicast, reserved or otherwise non-public
  address.
- `guarded_connections()` applies the same check to every connection made in the current
  thread while it is active: each redirect hop and each re-resolution of a name (DNS
  rebinding) is checked on the address actually about to be connected to.

Proxies. With HTTP_PROXY/HTTPS_PROXY/ALL_PROXY set (yt-dlp honours them, in either case),
the socket-level check only ever sees the proxy's address, and the proxy would connect
anywhere for us. So, while a guard session is active, the target of every proxied request is
checked before the request is sent: a request through an HTTP proxy carries the absolute URL
(`http.client.HTTPConnection.putrequest`), and HTTPS through a proxy asks for a tunnel
(`HTTPConnection.set_tunnel`, the CONNECT host:port); the host named there goes through
`check_host`, exactly as a direct connection would. Both of yt-dlp's HTTP stacks pass there:
urllib directly, requests through urllib3, whose connections subclass http.client's. A name
is checked on what it resolves to here; the proxy resolves it again itself, so a proxy should
use the same DNS. The proxy's own address must be public or allowlisted like any other host.
SOCKS proxies are refused (`check_proxies`): yt-dlp talks SOCKS with its own socket code,
which names the target inside the SOCKS handshake where the guard cannot see it.

The deadline. A guard session may carry a deadline (a `time.monotonic()` value): every
connect, read and write of a socket in that thread (`socket.socket`, and `ssl.SSLSocket`,
which overrides the read methods) first checks it, and runs with its socket timeout capped at
the time left. A server that drips one byte per second, which no socket timeout catches, is
so cut off at the deadline wherever yt-dlp reads: page, manifest, fragments, media,
redirects; the call raises `DeadlineExceeded` and the session is marked `expired`, which the
caller reports whatever error the library wrapped it in. Name resolution is not interruptible
(only checked before it starts), and local work (ffmpeg merging) is not network I/O.

`VCHAT_ALLOW_PRIVATE_URLS=1` lifts the address check (schemes are still checked);
`VCHAT_URL_ALLOWLIST` names hosts, addresses or networks (CIDR) that may be private.
"""

from __future__ import annotations

import functools
import http.client
import ipaddress
import re
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import SplitResult, urlsplit

from core.config import Settings
from core.errors import UrlRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

ALLOWED_SCHEMES = ("http", "https")
# Longer than any real video link (signed CDN URLs stay under a few KB; servers cap the request
# line at about 8 KB); a longer one is a paste gone wrong, and would only make long messages.
MAX_URL_LENGTH = 8192
_METADATA_ADDRESSES = {
    ipaddress.ip_address("169.254.169.254"),
    ipaddress.ip_address("fd00:ec2::254"),
    ipaddress.ip_address("100.100.100.200"),
}


@dataclass(frozen=True)
class UrlPolicy:
    allow_private: bool = False
    allowed_hosts: frozenset[str] = frozenset()
    allowed_networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] = ()

    @classmethod
    def from_settings(cls, settings: Settings) -> UrlPolicy:
        return cls.from_entries(settings.url_allowlist, settings.allow_private_urls)

    @classmethod
    def from_entries(cls, entries: list[str], allow_private: bool = False) -> UrlPolicy:
        hosts: set[str] = set()
        networks = []
        for entry in entries:
            entry = entry.strip().strip("[]").lower()
            try:
                networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                hosts.add(entry.rstrip("."))
        return cls(allow_private, frozenset(hosts), tuple(networks))

    def host_allowlisted(self, host: str) -> bool:
        return host.lower().rstrip(".") in self.allowed_hosts

    def address_allowlisted(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.allowed_networks)


def refusal_reason(address: IPAddress) -> str | None:
    """Why connecting to `address` is refused, or None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo[1] if address.teredo else None)
        if embedded is not None:
            inner = refusal_reason(embedded)
            return f"an IPv6 address that embeds {embedded}, {inner}" if inner else None
        if address in ipaddress.ip_network("64:ff9b::/96"):  # NAT64 prefix
            inner = refusal_reason(ipaddress.IPv4Address(int(address) & 0xFFFFFFFF))
            return f"a NAT64 address, {inner}" if inner else None
    if address in _METADATA_ADDRESSES:
        return "a cloud metadata address"
    if address.is_unspecified:
        return "the unspecified address"
    if address.is_loopback:
        return "a loopback address"
    if address.is_link_local:
        return "a link-local address"
    if address.is_multicast:
        return "a multicast address"
    if address.is_reserved:
        return "a reserved address"
    if address.is_private:
        return "a private address"
    if not address.is_global:
        return "not a public address"
    return None


def parse_ip_literal(host: str) -> IPAddress | None:
    """The address a host string denotes by itself, including the legacy IPv4 forms
    (`2130706433`, `0x7f000001`, `0177.0.0.1`, `127.1`) that resolvers accept."""
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if host and all(c in "0123456789abcdefxABCDEFX." for c in host) and host[0].isdigit():
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def system_resolver(host: str, port: int) -> list[str]:
    infos = _original_getaddrinfo(host, port, 0, socket.SOCK_STREAM)
    return [str(info[4][0]) for info in infos]


def _describe(host: str) -> str:
    return f"'{host}'" if len(host) <= 80 else f"'{host[:77]}...'"


def check_address(host: str, address: IPAddress, policy: UrlPolicy) -> None:
    """Raise UrlRefused when `address` (reached through `host`) is not allowed."""
    if policy.allow_private or policy.host_allowlisted(host) or policy.address_allowlisted(address):
        return
    reason = refusal_reason(address)
    if reason:
        shown = _describe(host) if str(address) == host else f"{_describe(host)} ({address})"
        raise UrlRefused(
            f"Refused to fetch from {shown}: it is {reason}.",
            "vChat only fetches from public addresses; an administrator can allow a host "
            "with VCHAT_URL_ALLOWLIST or VCHAT_ALLOW_PRIVATE_URLS=1.",
        )


def check_host(host: str, port: int, policy: UrlPolicy, resolve: Resolver = system_resolver) -> list[str]:
    """Check a host (name or address literal) and return the addresses it stands for."""
    literal = parse_ip_literal(host)
    if literal is not None:
        check_address(host, literal, policy)
        return [str(literal)]
    if policy.allow_private or policy.host_allowlisted(host):
        return []
    try:
        addresses = resolve(host, port)
    except (OSError, UnicodeError) as exc:
        raise UrlRefused(f"Cannot resolve the host {_describe(host)}.", "Check the URL for typos.") from exc
    if not addresses:
        raise UrlRefused(f"The host {_describe(host)} has no address.")
    for text in addresses:
        check_address(host, ipaddress.ip_address(text.split("%")[0]), policy)
    return addresses


def _split(url: str) -> tuple[SplitResult, str | None, int]:
    """(parts, host, port) of `url`, or UrlRefused for what urlsplit and the port cannot parse."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError as exc:  # "Invalid IPv6 URL", an IPv4 address in brackets, "[]"
        reason = " ".join(str(exc).split())[:100]
        raise UrlRefused(f"This is not a valid URL ({reason}).", "Paste the address again.") from None
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        raise UrlRefused("The URL has an invalid port number.") from None
    return parts, host, port


def check_url(url: str, policy: UrlPolicy, resolve: Resolver = system_resolver) -> str:
    """Validate `url` against the policy; return it stripped of surrounding blanks."""
    url = url.strip()
    if len(url) > MAX_URL_LENGTH:
        raise UrlRefused(
            f"The URL is {len(url):,} characters long; vChat fetches URLs of up to {MAX_URL_LENGTH:,} characters.",
            "Check that one whole address, and nothing else, was pasted.",
        )
    if any(ord(c) < 33 or c == "\\" for c in url):
        raise UrlRefused("The URL contains spaces, control characters or backslashes.", "Paste the URL again.")
    parts, host, port = _split(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"'{scheme}:'" if scheme else "without a scheme"
        raise UrlRefused(
            f"Only http and https URLs can be fetched; this URL is {shown}.",
            "Paste a web address (https://...), or upload the file instead.",
        )
    if not host:
        raise UrlRefused("The URL has no host name.", "Paste the full address, e.g. https://example.org/video.mp4.")
    check_host(host, port, policy, resolve)
    if parts.username is not None or parts.password is not None:
        raise UrlRefused(
            "URLs with a user name or password before the host (user@host) are refused.",
            "Remove the part before '@'; vChat does not send credentials.",
        )
    return url


def check_proxies(proxies: Mapping[str, str]) -> None:
    """Refuse proxy settings the guard cannot see through: SOCKS (and any scheme but http(s)).

    `proxies` maps a URL scheme ('http', 'https', 'all'; 'no' is the bypass list) to a proxy
    URL, as `urllib.request.getproxies()` and yt-dlp's `YoutubeDL.proxies` give them."""
    for key, value in proxies.items():
        if key == "no" or not value:
            continue
        scheme = value.split("://", 1)[0].lower() if "://" in value else "http"
        variable = f"{key.upper()}_PROXY/{key.lower()}_proxy"
        if scheme.startswith("socks"):
            raise UrlRefused(
                f"A SOCKS proxy is set ({variable}); vChat cannot check the addresses reached through it, "
                "so it does not fetch through SOCKS proxies.",
                "Use an HTTP proxy (HTTP_PROXY/HTTPS_PROXY), or unset it.",
            )
        if scheme not in ALLOWED_SCHEMES:
            raise UrlRefused(
                f"The proxy set in {variable} uses the scheme '{scheme}:'; vChat only fetches through http(s) proxies.",
                "Use an HTTP proxy, or unset it.",
            )


# --- connection-level enforcement -------------------------------------------------------

_original_getaddrinfo = socket.getaddrinfo
_original_putrequest = http.client.HTTPConnection.putrequest
_original_set_tunnel = http.client.HTTPConnection.set_tunnel
_install_lock = threading.Lock()
_installed = False
_state = threading.local()
_ABSOLUTE_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
# Socket methods that wait on the network. ssl.SSLSocket overrides the read/write ones (TLS reads
# go through its own C code, not socket.recv), so both classes are wrapped.
_SOCKET_METHODS = ("connect", "connect_ex", "recv", "recv_into", "recvfrom", "recvfrom_into", "send", "sendall")
_SSL_METHODS = ("do_handshake", "read", "write", "recv", "recv_into", "send", "sendall")
# A socket timeout that fires this close to the deadline is the deadline (timer granularity).
_DEADLINE_SLACK_S = 0.05


class ConnectionRefusedByGuard(OSError):
    """Raised inside the network stack; the caller reports the session's refusal."""


class DeadlineExceeded(TimeoutError):
    """Raised inside the network stack past the session's deadline; the caller reports it."""


@dataclass
class GuardSession:
    """What the guard saw while active: the first refusal, if any, and whether the deadline
    (a `time.monotonic()` value, None for none) cut a network call short."""

    policy: UrlPolicy
    deadline: float | None = None
    refusal: UrlRefused | None = None
    expired: bool = False
    hosts_checked: list[str] = field(default_factory=list)

    def time_left(self) -> float | None:
        """Seconds to the deadline (None: no deadline); raises DeadlineExceeded once it has passed."""
        if self.deadline is None:
            return None
        left = self.deadline - time.monotonic()
        if left <= 0:
            self.expired = True
            raise DeadlineExceeded("the time allowed for this download has run out")
        return left

    def refuse(self, refusal: UrlRefused) -> ConnectionRefusedByGuard:
        self.refusal = self.refusal or refusal
        return ConnectionRefusedByGuard(refusal.one_line())


def _session() -> GuardSession | None:
    return getattr(_state, "session", None)


def _guarded_getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
    session = _session()
    if session is not None:
        session.time_left()
    results = _original_getaddrinfo(host, port, *args, **kwargs)
    if session is None or host is None:
        return results
    name = host.decode() if isinstance(host, bytes) else str(host)
    session.hosts_checked.append(name)
    try:
        for info in results:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            check_address(name, address, session.policy)
    except UrlRefused as refusal:
        raise session.refuse(refusal) from None
    return results


def _check_proxied_target(session: GuardSession, host: str | None, port: int) -> None:
    """The target of a request sent through a proxy: checked as a direct connection would be."""
    if not host:
        raise session.refuse(UrlRefused("A request through the proxy names no host; it is refused."))
    session.hosts_checked.append(host)
    try:
        check_host(host, port, session.policy)
    except UrlRefused as refusal:
        raise session.refuse(refusal) from None


def _guarded_putrequest(self: http.client.HTTPConnection, method: str, url: str, *args: Any, **kwargs: Any) -> None:
    """An absolute URL in the request line means a forward proxy will fetch it for us."""
    session = _session()
    if session is not None:
        session.time_left()
        if _ABSOLUTE_URL.match(url):
            try:
                _parts, host, port = _split(url)
            except UrlRefused as refusal:
                raise session.refuse(refusal) from None
            _check_proxied_target(session, host, port)
    return _original_putrequest(self, method, url, *args, **kwargs)


def _guarded_set_tunnel(
    self: http.client.HTTPConnection, host: str, port: int | None = None, headers: Any = None, **kwargs: Any
) -> None:
    """HTTPS through a proxy: the proxy is asked to CONNECT to host:port; check that target first."""
    session = _session()
    if session is not None:
        try:
            name, number = self._get_hostport(host, port)  # type: ignore[attr-defined]
        except (http.client.InvalidURL, ValueError):
            raise session.refuse(UrlRefused(f"The proxy tunnel target {_describe(host)} is not valid.")) from None
        _check_proxied_target(session, name, number)
    return _original_set_tunnel(self, host, port, headers, **kwargs)


def _bounded(method: Callable[..., Any]) -> Callable[..., Any]:
    """`method` of a socket, checked against the session's deadline and with its timeout capped
    at the time left (restored afterwards). No session or no deadline: the plain call."""

    @functools.wraps(method)
    def call(sock: socket.socket, *args: Any, **kwargs: Any) -> Any:
        session = _session()
        if session is None or session.deadline is None:
            return method(sock, *args, **kwargs)
        left = session.time_left()
        assert left is not None
        timeout = sock.gettimeout()
        if timeout == 0.0 or (timeout is not None and timeout <= left):
            return method(sock, *args, **kwargs)  # non-blocking, or its own timeout ends first
        sock.settimeout(left)
        try:
            return method(sock, *args, **kwargs)
        except TimeoutError:
            if time.monotonic() >= session.deadline - _DEADLINE_SLACK_S:
                session.expired = True
                raise DeadlineExceeded("the time allowed for this download has run out") from None
            raise
        finally:
            with suppress(OSError):
                sock.settimeout(timeout)

    call.__vchat_bounded__ = True  # type: ignore[attr-defined]
    return call


def _wrap_methods(cls: type, names: tuple[str, ...], own: bool) -> None:
    for name in names:
        method = vars(cls).get(name) if own else getattr(cls, name, None)
        if method is not None and not getattr(method, "__vchat_bounded__", False):
            setattr(cls, name, _bounded(method))


def _install() -> None:
    """Put the hooks in place once per process; each does nothing in a thread without a session."""
    global _installed
    with _install_lock:
        if _installed:
            return
        socket.getaddrinfo = _guarded_getaddrinfo
        http.client.HTTPConnection.putrequest = _guarded_putrequest  # type: ignore[method-assign]
        http.client.HTTPConnection.set_tunnel = _guarded_set_tunnel  # type: ignore[method-assign]
        _wrap_methods(socket.socket, _SOCKET_METHODS, own=False)
        _wrap_methods(ssl.SSLSocket, _SSL_METHODS, own=True)
        _installed = True


@contextmanager
def guarded_connections(policy: UrlPolicy, deadline: float | None = None) -> Iterator[GuardSession]:
    """Check every connection made in this thread against `policy` while active (each address
    resolved, each proxied target) and, with a `deadline` (`time.monotonic()` value), stop every
    network call that would run past it."""
    _install()
    previous = _session()
    session = GuardSession(policy, deadline)
    _state.session = session
    try:
        yield session
    finally:
        _state.session = previous
