"""The URL guard against server-side request forgery.

Two layers, one policy:
- `check_url` refuses a URL before anything is fetched: a scheme other than http(s),
  credentials in the URL, and a host that is, or resolves to, a loopback, private,
  link-local (cloud metadata), multicast, reserved or otherwise non-public address.
- `guarded_connections()` applies the same address check to every connection made in the
  current thread while it is active: each redirect hop and each re-resolution of a name
  (DNS rebinding) is checked on the address actually about to be connected to.

`VCHAT_ALLOW_PRIVATE_URLS=1` lifts the address check (schemes are still checked);
`VCHAT_URL_ALLOWLIST` names hosts, addresses or networks (CIDR) that may be private.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

from core.config import Settings
from core.errors import UrlRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], list[str]]

ALLOWED_SCHEMES = ("http", "https")
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
    return f"'{host}'"


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


def check_url(url: str, policy: UrlPolicy, resolve: Resolver = system_resolver) -> str:
    """Validate `url` against the policy; return it stripped of surrounding blanks."""
    url = url.strip()
    if any(ord(c) < 33 or c == "\\" for c in url):
        raise UrlRefused("The URL contains spaces, control characters or backslashes.", "Paste the URL again.")
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"'{scheme}:'" if scheme else "without a scheme"
        raise UrlRefused(
            f"Only http and https URLs can be fetched; this URL is {shown}.",
            "Paste a web address (https://...), or upload the file instead.",
        )
    host = parts.hostname
    if not host:
        raise UrlRefused("The URL has no host name.", "Paste the full address, e.g. https://example.org/video.mp4.")
    try:
        port = parts.port or (443 if scheme == "https" else 80)
    except ValueError as exc:
        raise UrlRefused("The URL has an invalid port number.") from exc
    check_host(host, port, policy, resolve)
    if parts.username is not None or parts.password is not None:
        raise UrlRefused(
            "URLs with a user name or password before the host (user@host) are refused.",
            "Remove the part before '@'; vChat does not send credentials.",
        )
    return url


# --- connection-level enforcement -------------------------------------------------------

_original_getaddrinfo = socket.getaddrinfo
_install_lock = threading.Lock()
_state = threading.local()


@dataclass
class GuardSession:
    """What the guard saw while active: the first refusal, if any."""

    policy: UrlPolicy
    refusal: UrlRefused | None = None
    hosts_checked: list[str] = field(default_factory=list)


class ConnectionRefusedByGuard(OSError):
    """Raised inside the network stack; the caller reports the session's refusal."""


def _guarded_getaddrinfo(host, port, *args, **kwargs):  # type: ignore[no-untyped-def]
    results = _original_getaddrinfo(host, port, *args, **kwargs)
    session: GuardSession | None = getattr(_state, "session", None)
    if session is None or host is None:
        return results
    name = host.decode() if isinstance(host, bytes) else str(host)
    session.hosts_checked.append(name)
    try:
        for info in results:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
            check_address(name, address, session.policy)
    except UrlRefused as refusal:
        session.refusal = session.refusal or refusal
        raise ConnectionRefusedByGuard(refusal.one_line()) from None
    return results


def _install() -> None:
    with _install_lock:
        if socket.getaddrinfo is not _guarded_getaddrinfo:
            socket.getaddrinfo = _guarded_getaddrinfo


@contextmanager
def guarded_connections(policy: UrlPolicy) -> Iterator[GuardSession]:
    """Check every address resolved in this thread against `policy` while active."""
    _install()
    previous = getattr(_state, "session", None)
    session = GuardSession(policy)
    _state.session = session
    try:
        yield session
    finally:
        _state.session = previous
