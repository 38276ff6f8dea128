"""The URL guard: schemes, address forms, allowlist, and the per-connection check."""

from __future__ import annotations

import socket

import pytest

from core.errors import UrlRefused
from core.media.urlguard import ConnectionRefusedByGuard, UrlPolicy, check_url, guarded_connections
from tests.support import run_cli

STRICT = UrlPolicy()

REFUSED = [
    # schemes
    ("file:///etc/passwd", "'file:'"),
    ("ftp://ftp.example.com/video.mp4", "'ftp:'"),
    ("data:video/mp4;base64,AAAA", "'data:'"),
    ("javascript:alert(1)", "'javascript:'"),
    ("gopher://93.184.216.34:70/", "'gopher:'"),
    ("//93.184.216.34/video.mp4", "without a scheme"),
    ("93.184.216.34/video.mp4", "without a scheme"),
    # loopback in its many spellings
    ("http://127.0.0.1/", "loopback"),
    ("http://127.1/", "loopback"),
    ("http://2130706433/", "loopback"),
    ("http://0x7f000001/", "loopback"),
    ("http://0177.0.0.1/", "loopback"),
    ("http://[::1]/", "loopback"),
    ("http://[::ffff:127.0.0.1]/", "embeds 127.0.0.1"),
    ("http://[0:0:0:0:0:ffff:7f00:1]/", "embeds 127.0.0.1"),
    ("http://localhost:8005/", "loopback"),
    # private, link-local, metadata, shared, multicast, reserved, unspecified
    ("http://10.0.0.5/video.mp4", "private"),
    ("http://172.16.3.4/", "private"),
    ("https://192.168.1.1:8443/", "private"),
    ("http://100.64.0.1/", "not a public address"),
    ("http://169.254.169.254/latest/meta-data/", "metadata"),
    ("http://169.254.10.20/", "link-local"),
    ("http://[fe80::1]/", "link-local"),
    ("http://[fd00:ec2::254]/", "metadata"),
    ("http://[fc00::1]/", "private"),
    ("http://224.0.0.1/", "multicast"),
    ("http://[ff02::1]/", "multicast"),
    ("http://240.0.0.1/", "reserved"),
    ("http://0.0.0.0:8080/", "unspecified"),
    ("http://[::]/", "unspecified"),
    ("http://[2002:7f00:1::]/", "embeds 127.0.0.1"),
    ("http://[64:ff9b::a00:1]/", "NAT64"),
    # userinfo tricks
    ("http://example.com@127.0.0.1/", "loopback"),
    ("http://user:pass@93.184.216.34/video.mp4", "user name or password"),
    ("http://93.184.216.34\\@127.0.0.1/", "backslashes"),
    ("http://93.184.216.34/ video.mp4", "spaces"),
    ("http:///video.mp4", "no host"),
]

ALLOWED = [
    "http://93.184.216.34/video.mp4",
    "https://8.8.8.8:8443/path?q=1#frag",
    "https://[2606:4700:4700::1111]/v.mp4",
    "HTTPS://1.1.1.1/",
]


def test_the_refusal_table_is_large_enough():
    assert len(REFUSED) >= 20


@pytest.mark.parametrize(("url", "reason"), REFUSED, ids=[u for u, _ in REFUSED])
def test_refused(url: str, reason: str):
    with pytest.raises(UrlRefused) as caught:
        check_url(url, STRICT)
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message


@pytest.mark.parametrize("url", ALLOWED)
def test_public_addresses_pass(url: str):
    assert check_url(url, STRICT) == url


def fake_dns(table: dict[str, list[str]]):
    def resolve(host: str, port: int) -> list[str]:
        if host not in table:
            raise socket.gaierror(f"unknown host {host}")
        return table[host]

    return resolve


def test_a_name_that_resolves_to_a_private_address_is_refused():
    dns = fake_dns({"intranet.example": ["10.1.2.3"], "videos.example": ["93.184.216.34"]})
    with pytest.raises(UrlRefused, match=r"'intranet.example' \(10.1.2.3\).*private"):
        check_url("https://intranet.example/x.mp4", STRICT, dns)
    assert check_url("https://videos.example/x.mp4", STRICT, dns)


def test_a_name_with_one_private_address_among_public_ones_is_refused():
    dns = fake_dns({"rebind.example": ["93.184.216.34", "127.0.0.1"]})
    with pytest.raises(UrlRefused, match="loopback"):
        check_url("http://rebind.example/", STRICT, dns)


def test_an_unknown_host_is_a_clear_error():
    with pytest.raises(UrlRefused, match=r"Cannot resolve the host 'no-such-host\.invalid'"):
        check_url("http://no-such-host.invalid/", STRICT, fake_dns({}))


def test_allowlist_by_host_address_and_network():
    policy = UrlPolicy.from_entries(["media.internal", "127.0.0.1", "10.20.0.0/16"])
    dns = fake_dns({"media.internal": ["10.9.9.9"]})
    check_url("http://media.internal/a.mp4", policy, dns)
    check_url("http://127.0.0.1:8000/a.mp4", policy)
    check_url("http://10.20.30.40/a.mp4", policy)
    with pytest.raises(UrlRefused, match="private"):
        check_url("http://10.21.0.1/a.mp4", policy)
    with pytest.raises(UrlRefused, match="loopback"):
        check_url("http://127.0.0.2/a.mp4", policy)


def test_allow_private_still_checks_schemes():
    policy = UrlPolicy(allow_private=True)
    check_url("http://192.168.0.10/a.mp4", policy)
    with pytest.raises(UrlRefused, match="'file:'"):
        check_url("file:///etc/passwd", policy)


def test_settings_parse_a_comma_separated_allowlist(monkeypatch):
    from core.config import Settings

    monkeypatch.setenv("VCHAT_URL_ALLOWLIST", "media.internal, 10.0.0.0/8")
    policy = UrlPolicy.from_settings(Settings())
    assert policy.host_allowlisted("MEDIA.internal")
    check_url("http://10.1.1.1/", policy)


def test_connections_inside_the_guard_are_checked_on_the_resolved_address():
    with guarded_connections(STRICT) as guard, pytest.raises(ConnectionRefusedByGuard):
        socket.create_connection(("localhost", 9), timeout=1)
    assert guard.refusal is not None and "loopback" in str(guard.refusal)
    assert guard.hosts_checked == ["localhost"]


def test_the_guard_is_off_outside_its_block_and_in_other_threads():
    import threading

    results: list[object] = []
    with guarded_connections(STRICT):
        thread = threading.Thread(target=lambda: results.append(socket.getaddrinfo("localhost", 80)))
        thread.start()
        thread.join()
    assert results and results[0]
    assert socket.getaddrinfo("127.0.0.1", 80)


# --- malformed URLs: a one-line refusal, never an internal error ---------------------------------

LONG_PATH = "http://example.com/" + "a" * 10_000
LONG_HOST = "http://" + "a" * 10_000 + ".example/"
MALFORMED = [
    ("http://[::1/x.mp4", "not a valid URL"),
    ("http://[1.2.3.4]/", "not a valid URL"),
    ("http://[]/", "not a valid URL"),
    ("http://[::1]:abc/", "invalid port"),
    ("http://host:99999/", "invalid port"),
    (LONG_PATH, "characters long"),
    (LONG_HOST, "characters long"),
]


@pytest.mark.parametrize(("url", "reason"), MALFORMED, ids=[u[:30] for u, _ in MALFORMED])
def test_a_malformed_url_is_refused_in_one_short_line(url: str, reason: str):
    with pytest.raises(UrlRefused) as caught:
        check_url(url, STRICT, fake_dns({}))
    message = str(caught.value)
    assert reason in message
    assert "\n" not in message and len(message) < 400


@pytest.mark.parametrize(
    "url",
    ["http://[::1/x.mp4", "http://host:99999/", "http://[::1]:abc/", LONG_PATH, "x:" + "a" * 10_000],
    ids=["unclosed-bracket", "port-too-big", "port-not-a-number", "10000-characters", "long-non-url"],
)
def test_the_cli_exits_2_with_one_error_line_for_a_malformed_url(url: str, tmp_path):
    proc = run_cli(["fetch", url], tmp_path)
    err = proc.stderr.decode()
    assert proc.returncode == 2, err
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and err.rstrip("\n").endswith(errors[0]), err
    assert len(errors[0]) < 400
