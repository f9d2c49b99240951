"""`newsletter check --production`: every must-have named with its fix, and a pass for real.

The DNS answers come from a local DNS server (tests/support/dns_server.py) or an injected
lookup, the relay is aiosmtpd on 127.0.0.1 with STARTTLS and AUTH: nothing leaves the machine.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.cli import readiness
from newsletter.cli.dns_records import public_key_text
from newsletter.cli.scaffold import make_folder
from newsletter.config import load_config
from newsletter.errors import DnsUnavailable
from tests.support.cli import newsletter
from tests.support.dns_server import dns_server
from tests.support.smtp_server import smtp_server

DOMAIN = "papers.lab-mail.net"  # answered only by the local DNS server
PASSWORD = "relay-password-for-the-test"


def statuses(stdout: str) -> dict[str, str]:
    """`key -> status` from the report's lines (`FAIL    base_url: ...`)."""
    out = {}
    for line in stdout.splitlines():
        status, rest = line.split(None, 1)
        out[rest.split(":", 1)[0]] = status
    return out


@pytest.fixture(scope="module")
def dkim_key() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def test_a_fresh_folder_lists_every_missing_must_have_and_fails(tmp_path: Path) -> None:
    make_folder(tmp_path / "site")
    with dns_server({}) as dns:
        result = newsletter(
            "check", "--production", "--nameserver", dns.address, cwd=tmp_path / "site"
        )
    assert result.returncode == 1, result.stdout + result.stderr
    found = statuses(result.stdout)
    assert found == {
        "base_url": "FAIL",
        "postal_address": "FAIL",
        "NEWSLETTER_SECRET_KEY": "ok",  # made by init, read from secrets.env
        "secrets.env": "ok",
        "sender.address": "FAIL",
        "spf": "FAIL",
        "dkim": "FAIL",
        "dmarc": "FAIL",
        "delivery.transport": "FAIL",
        "audience": "warn",
    }
    assert dns.queries == []  # a placeholder domain is not looked up
    for line in result.stdout.splitlines():
        if line.startswith("FAIL"):
            assert ": set " in line or "publish" in line or "write" in line or "use " in line, line
    assert "base_url: http://localhost:8000 is not https" in result.stdout
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "check --production: 0 problem(s), 7 must-have(s) missing, 0 could not be checked, "
            "1 warning(s), 2 ok, 0 skipped in "
        )
    )


def make_ready(site: Path, key: rsa.RSAPrivateKey, port: int) -> None:
    """Fill in what the report asked for: the edits an operator makes after `init`."""
    (site / "dkim-private.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    config = site / "config.yaml"
    text = config.read_text()
    for old, new in (
        ("base_url: http://localhost:8000", f"base_url: https://digest.{DOMAIN}"),
        ("postal_address: null", "postal_address: Example Lab, 1 Main Street, 10115 Berlin"),
        ("address: digest@example.org", f"address: digest@{DOMAIN}"),
        (
            "# dkim: {domain: example.org, selector: news, key_path: dkim-private.pem}",
            f"dkim: {{domain: {DOMAIN}, selector: news, key_path: dkim-private.pem}}",
        ),
        ("transport: outbox ", "transport: smtp "),
        ("host: smtp.example.org, port: 587", f"host: 127.0.0.1, port: {port}"),
        ("username: null", "username: digest"),
    ):
        assert old in text, old
        text = text.replace(old, new)
    config.write_text(text)
    (site / "subscribers.yaml").write_text(f"- email: ann@{DOMAIN}\n")
    with (site / "secrets.env").open("a") as f:
        f.write(f"NEWSLETTER_SMTP_PASSWORD={PASSWORD}\n")


def records(key: rsa.RSAPrivateKey) -> dict[str, list[str]]:
    return {
        DOMAIN: ["google-site-verification=abc", "v=spf1 ip4:192.0.2.10 -all"],
        f"_dmarc.{DOMAIN}": [f"v=DMARC1; p=quarantine; rua=mailto:dmarc@{DOMAIN}"],
        f"news._domainkey.{DOMAIN}": [f"v=DKIM1; k=rsa; p={public_key_text(key)}"],
    }


def relay(tls_cert: tuple[Path, Path], **kwargs: object):
    import ssl

    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*tls_cert)
    return smtp_server(
        tls_context=context,
        require_starttls=True,
        auth_required=True,
        authenticate=True,
        **kwargs,
    )


def test_a_ready_setup_passes_against_local_dns_and_a_tls_relay(
    tmp_path: Path, tls_cert: tuple[Path, Path], dkim_key: rsa.RSAPrivateKey
) -> None:
    make_folder(tmp_path / "site")
    site = tmp_path / "site"
    with relay(tls_cert) as server, dns_server(records(dkim_key)) as dns:
        server.handler.auth = ("digest", PASSWORD)
        make_ready(site, dkim_key, server.port)
        result = newsletter(
            "check",
            "--production",
            "--smtp",
            "--nameserver",
            dns.address,
            cwd=site,
            SSL_CERT_FILE=str(tls_cert[0]),  # trust the test relay's certificate
        )
    assert result.returncode == 0, result.stdout + result.stderr
    assert set(statuses(result.stdout).values()) == {"ok"}, result.stdout
    assert server.handler.auth_attempts == ["digest"]
    assert f"news._domainkey.{DOMAIN}" in dns.queries
    out = result.stdout
    assert "spf: papers.lab-mail.net: `v=spf1 ip4:192.0.2.10 -all`" in out
    assert f"dkim: news._domainkey.{DOMAIN} publishes the public half of dkim.key_path" in out
    assert f"dmarc: _dmarc.{DOMAIN}: p=quarantine" in out
    assert f"smtp: 127.0.0.1:{server.port}: connected, TLSv1." in out
    assert "fits the relay's SIZE limit of 33554 KB" in out  # aiosmtpd's default, 32 MiB
    assert PASSWORD not in out + result.stderr
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            "check --production: 0 problem(s), 0 must-have(s) missing, 0 could not be checked, "
            "0 warning(s), 12 ok, 0 skipped in "
        )
    )


def test_a_relay_size_limit_below_the_largest_message_fails(
    tmp_path: Path, tls_cert: tuple[Path, Path], dkim_key: rsa.RSAPrivateKey
) -> None:
    make_folder(tmp_path / "site")
    site = tmp_path / "site"
    with relay(tls_cert, data_size_limit=20_000) as server, dns_server(records(dkim_key)) as dns:
        server.handler.auth = ("digest", PASSWORD)
        make_ready(site, dkim_key, server.port)
        result = newsletter(
            "check",
            "--production",
            "--smtp",
            "--nameserver",
            dns.address,
            cwd=site,
            SSL_CERT_FILE=str(tls_cert[0]),
        )
    assert result.returncode == 1
    line = next(x for x in result.stdout.splitlines() if "SIZE limit" in x)
    assert line.startswith("FAIL    smtp: the largest message (")
    assert "all topics, the sample week) exceeds the relay's SIZE limit of 20 KB" in line
    assert line.endswith("lower size_budget_kb or max_papers")


# -- single items, with an injected DNS lookup ------------------------------------------------


def config_with(tmp_path: Path, text: str):
    (tmp_path / "config.yaml").write_text(text + "topics: [{name: Vision, keywords: [image]}]\n")
    return load_config(tmp_path / "config.yaml")


def lookup_from(table: dict[str, list[str]]):
    return lambda name: table.get(name, [])


def test_no_dns_answer_is_could_not_check_and_blocks(tmp_path: Path) -> None:
    def offline(name: str) -> list[str]:
        raise DnsUnavailable(f"no answer from DNS for {name} (LifetimeTimeout)")

    config = config_with(tmp_path, f"sender: {{address: digest@{DOMAIN}}}\n")
    items = list(readiness.sender_domain(config, offline))
    spf, dmarc = items[1], items[-1]
    assert spf.status == "unknown" and spf.blocking
    assert spf.text == (
        f"spf: could not check: no answer from DNS for {DOMAIN} (LifetimeTimeout); "
        "run again where DNS answers"
    )
    assert dmarc.status == "unknown"


def test_spf_records_are_judged(tmp_path: Path) -> None:
    def spf(*texts: str) -> readiness.Item:
        return readiness.spf(DOMAIN, lookup_from({DOMAIN: list(texts)}))

    assert spf().status == "FAIL" and "publishes no SPF record" in spf().text
    two = spf("v=spf1 -all", "v=spf1 mx -all")
    assert two.status == "FAIL" and "2 SPF records: merge them into one" in two.text
    lax = spf("v=spf1 mx +all")
    assert lax.status == "warn" and not lax.blocking
    assert spf("v=spf1 include:relay.example.net ~all").status == "ok"


def test_dmarc_falls_back_to_the_parent_domain(tmp_path: Path) -> None:
    parent = DOMAIN.split(".", 1)[1]
    item = readiness.dmarc(DOMAIN, lookup_from({f"_dmarc.{parent}": ["v=DMARC1; p=none"]}))
    assert item.status == "ok"
    assert item.text == f"dmarc: _dmarc.{parent}: p=none (monitoring only)"
    missing = readiness.dmarc(DOMAIN, lookup_from({}))
    assert missing.status == "FAIL" and "add TXT `v=DMARC1; p=none; rua=" in missing.text


def test_a_dkim_record_of_another_key_is_named(tmp_path: Path, dkim_key: rsa.RSAPrivateKey) -> None:
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = f"news._domainkey.{DOMAIN}"
    item = readiness.dkim_record(
        "news", DOMAIN, dkim_key, lookup_from({name: [f"v=DKIM1; p={public_key_text(other)}"]})
    )
    assert item.status == "FAIL"
    assert f"the key at {name} is not the public half of dkim.key_path" in item.text
    revoked = readiness.dkim_record("news", DOMAIN, dkim_key, lookup_from({name: ["v=DKIM1; p="]}))
    assert "p= is empty (the key is revoked)" in revoked.text
    # a record split over several strings, with spaces, still matches
    spaced = " ".join(public_key_text(dkim_key)[i : i + 60] for i in range(0, 400, 60))
    ok = readiness.dkim_record("news", DOMAIN, dkim_key, lookup_from({name: [f"p={spaced}"]}))
    assert ok.status == "ok", ok.text


@pytest.mark.parametrize(
    ("url", "status"),
    [
        ("https://digest.lab-mail.net", "ok"),
        ("http://digest.lab-mail.net", "FAIL"),
        ("https://localhost:8000", "FAIL"),
        ("https://127.0.0.1", "FAIL"),
        ("https://192.168.1.20", "FAIL"),
        ("https://papers.example.org", "FAIL"),
        ("https://intranet", "FAIL"),
    ],
)
def test_base_url_must_be_https_and_public(url: str, status: str) -> None:
    assert readiness.base_url(url).status == status


def test_the_secret_key_is_judged_by_length_and_never_shown() -> None:
    assert readiness.secret_key({}).status == "FAIL"
    short = readiness.secret_key({"NEWSLETTER_SECRET_KEY": "sixteen-chars-ok"})
    assert short.status == "FAIL" and "a key has 16 characters: use at least 32" in short.text
    assert "sixteen-chars-ok" not in short.text
    rotated = readiness.secret_key({"NEWSLETTER_SECRET_KEY": "n" * 43 + "," + "o" * 40})
    assert rotated.status == "ok" and rotated.text.endswith("2 key(s), the shortest 40 characters")


def test_a_relay_without_tls_to_another_host_fails(tmp_path: Path) -> None:
    config = config_with(
        tmp_path,
        "delivery: {transport: smtp, smtp: {host: relay.lab-mail.net, port: 25, security: none}}\n",
    )
    items = list(readiness.relay(config, smtp=False, environ={}, ssl_context=None))
    assert [i.status for i in items] == ["FAIL", "skip"]
    assert "none sends mail and password in clear to relay.lab-mail.net:25" in items[0].text
    assert items[1].text.startswith("smtp: not contacted: add --smtp")


def test_a_refused_login_is_a_failing_line_without_the_password(
    tmp_path: Path, tls_cert: tuple[Path, Path]
) -> None:
    import ssl

    client = ssl.create_default_context(cafile=str(tls_cert[0]))
    with relay(tls_cert) as server:
        server.handler.auth = ("digest", "the-right-one")
        config = config_with(
            tmp_path,
            "delivery: {transport: smtp, smtp: {host: 127.0.0.1, port: "
            f"{server.port}, username: digest}}}}\n",
        )
        items = list(
            readiness.relay(
                config,
                smtp=True,
                environ={"NEWSLETTER_SMTP_PASSWORD": PASSWORD},
                ssl_context=client,
            )
        )
    assert [i.status for i in items] == ["ok", "FAIL"]
    assert items[1].text.startswith(
        f"smtp: smtp 127.0.0.1:{server.port}: login as 'digest' refused"
    )
    assert PASSWORD not in items[1].text
