"""`newsletter check --production`: what stands between this setup and a real send.

One `Item` per requirement, each a line that says what was found and what to do. A must-have
that fails (or could not be checked, such as a DNS lookup without an answer) makes the check
exit non-zero; a should-have only warns. The items follow what large mailbox providers ask of
bulk senders: an https one-click unsubscribe, a postal address, SPF, DKIM and DMARC for the
sender's domain, a relay reached over TLS, a message within the relay's size limit.
"""

from __future__ import annotations

import ipaddress
import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.audience.tokens import ENV_VAR as SECRET_VAR
from newsletter.audience.tokens import MIN_KEY_CHARS
from newsletter.cli import dns_records as dnsr
from newsletter.cli.audience import next_audience
from newsletter.cli.message_size import largest_message
from newsletter.cli.options import SECRETS_FILE
from newsletter.cli.relay_probe import probe_relay
from newsletter.errors import NewsletterError, TransportError
from newsletter.store import Store

if TYPE_CHECKING:
    import ssl

    from newsletter.config import Config

Status = Literal["ok", "FAIL", "warn", "skip", "unknown"]
LOCAL_HOSTS = ("localhost", "127.0.0.1", "::1")
# Names that never receive mail or never resolve publicly (RFC 2606, RFC 6761, mDNS).
PLACEHOLDER_SUFFIXES = ("example", "test", "invalid", "localhost", "local", "internal", "lan")
PLACEHOLDER_DOMAINS = ("example.org", "example.com", "example.net")


@dataclass(frozen=True)
class Item:
    status: Status
    text: str  # "key: what was found; what to do"
    must: bool = True  # a must-have: FAIL or unknown makes the check exit non-zero

    @property
    def blocking(self) -> bool:
        return self.must and self.status in ("FAIL", "unknown")

    def line(self) -> str:
        return f"{self.status:<7} {self.text}"


def production_report(
    config: Config,
    *,
    smtp: bool = False,
    lookup: dnsr.TxtLookup | None = None,
    subscribers: Path | None = None,
    environ: Mapping[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
) -> list[Item]:
    """Every readiness item, in the order an operator fixes them."""
    env = os.environ if environ is None else environ
    items = [base_url(config.base_url), postal_address(config), secret_key(env)]
    items.extend(secrets_file(config))
    items.extend(sender_domain(config, lookup or _lazy_lookup()))
    items.extend(relay(config, smtp=smtp, environ=env, ssl_context=ssl_context))
    items.append(reach(config, subscribers))
    return items


def summary(items: list[Item]) -> str:
    """The counts that end the report."""
    failing = sum(1 for i in items if i.must and i.status == "FAIL")
    unknown = sum(1 for i in items if i.status == "unknown")
    warnings = sum(1 for i in items if i.status == "warn" or (i.status == "FAIL" and not i.must))
    passed = sum(1 for i in items if i.status == "ok")
    skipped = sum(1 for i in items if i.status == "skip")
    return (
        f"{failing} must-have(s) missing, {unknown} could not be checked, {warnings} warning(s), "
        f"{passed} ok, {skipped} skipped"
    )


def is_placeholder(domain: str) -> bool:
    domain = domain.lower().rstrip(".")
    return domain.rsplit(".", 1)[-1] in PLACEHOLDER_SUFFIXES or any(
        domain == d or domain.endswith("." + d) for d in PLACEHOLDER_DOMAINS
    )


# -- the web side and the footer ------------------------------------------------------------------


def base_url(url: str) -> Item:
    parts = urlsplit(url)
    host = (parts.hostname or "").lower()
    fix = "set base_url to the public https address where `newsletter serve` is reached"
    if parts.scheme != "https":
        return Item(
            "FAIL",
            f"base_url: {url} is not https: {fix} (Gmail and Yahoo need https for one-click "
            "unsubscribe)",
        )
    if not _public_host(host):
        return Item("FAIL", f"base_url: {host} is not reachable from the internet: {fix}")
    return Item("ok", f"base_url: {url} (https, public host)")


def _public_host(host: str) -> bool:
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return "." in host and not is_placeholder(host)
    return address.is_global


def postal_address(config: Config) -> Item:
    if not config.postal_address:
        return Item(
            "FAIL",
            "postal_address: not set: write the sender's postal address in config.yaml (bulk "
            "mail must show one in its footer: CAN-SPAM, Gmail's and Yahoo's sender rules)",
        )
    return Item("ok", "postal_address: set")


# -- secrets ------------------------------------------------------------------------------------


def secret_key(environ: Mapping[str, str]) -> Item:
    keys = [k.strip() for k in environ.get(SECRET_VAR, "").split(",") if k.strip()]
    make = "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
    if not keys:
        return Item("FAIL", f"{SECRET_VAR}: not set: put a key made with `{make}` in secrets.env")
    short = min(len(k) for k in keys)
    if short < MIN_KEY_CHARS:
        # the length only: the key itself never appears in output
        return Item(
            "FAIL",
            f"{SECRET_VAR}: a key has {short} characters: use at least {MIN_KEY_CHARS}, "
            f"made with `{make}`",
        )
    return Item("ok", f"{SECRET_VAR}: {len(keys)} key(s), the shortest {short} characters")


def secrets_file(config: Config) -> list[Item]:
    if config.path is None or not (config.path.parent / SECRETS_FILE).is_file():
        return []
    path = config.path.parent / SECRETS_FILE
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        fix = f"chmod 600 {path}"
        return [Item("warn", f"{SECRETS_FILE}: readable by others (mode {mode:o}): {fix}", False)]
    return [Item("ok", f"{SECRETS_FILE}: mode {mode:o}, readable by its owner only", False)]


# -- the sender's domain: SPF, DKIM, DMARC -------------------------------------------------------


def _lazy_lookup() -> dnsr.TxtLookup:
    made: list[dnsr.TxtLookup] = []

    def lookup(name: str) -> list[str]:
        if not made:
            made.append(dnsr.resolver_lookup())
        return made[0](name)

    return lookup


def sender_domain(config: Config, lookup: dnsr.TxtLookup) -> Iterator[Item]:
    address = config.sender.address
    domain = config.sender.domain
    if is_placeholder(domain):
        yield Item(
            "FAIL",
            f"sender.address: {address} is a placeholder: use an address at a domain you control",
        )
        later = f"not looked up while sender.address is at {domain}"
        yield Item("FAIL", f"spf: {later}; then publish TXT `v=spf1 ... -all` at your domain")
        yield from dkim_items(config, None)
        yield Item("FAIL", f"dmarc: {later}; then publish TXT `v=DMARC1; p=none` at _dmarc.DOMAIN")
        return
    yield Item("ok", f"sender.address: {address}")
    yield _dns_item("spf", lambda: spf(domain, lookup))
    yield from dkim_items(config, lookup)
    yield _dns_item("dmarc", lambda: dmarc(domain, lookup))


def _dns_item(what: str, check: Callable[[], Item]) -> Item:
    try:
        return check()
    except dnsr.DnsUnavailable as e:
        return Item("unknown", f"{what}: could not check: {e}; run again where DNS answers")


def spf(domain: str, lookup: dnsr.TxtLookup) -> Item:
    found = dnsr.spf_records(lookup(domain))
    if not found:
        return Item(
            "FAIL",
            f"spf: {domain} publishes no SPF record: add TXT `v=spf1 include:<your relay> -all` "
            "(your relay's documentation names what to include)",
        )
    if len(found) > 1:
        return Item(
            "FAIL", f"spf: {domain} publishes {len(found)} SPF records: merge them into one"
        )
    record = found[0]
    if record.split()[-1].lower() in ("+all", "all", "?all"):
        return Item(
            "warn", f"spf: `{record}` lets any server send: end it with -all or ~all", False
        )
    return Item("ok", f"spf: {domain}: `{record}`")


def dmarc(domain: str, lookup: dnsr.TxtLookup) -> Item:
    found = dnsr.find_dmarc(domain, lookup)
    if found is None:
        return Item(
            "FAIL",
            f"dmarc: no DMARC record at _dmarc.{domain}: add TXT "
            f"`v=DMARC1; p=none; rua=mailto:dmarc@{domain}` (then tighten p= to quarantine)",
        )
    note = " (monitoring only)" if found.policy == "none" else ""
    return Item("ok", f"dmarc: {found.name}: p={found.policy or '?'}{note}")


def dkim_items(config: Config, lookup: dnsr.TxtLookup | None) -> Iterator[Item]:
    dkim = config.mail_settings().dkim
    if dkim is None:
        yield Item(
            "FAIL",
            "dkim: not set: make a key (`openssl genrsa -out dkim-private.pem 2048`), publish its "
            "public half at SELECTOR._domainkey.DOMAIN, and set `dkim: {domain, selector, "
            "key_path}`",
        )
        return
    key = _private_key(Path(dkim.key_path))
    if isinstance(key, str):
        yield Item("FAIL", f"dkim.key_path: {dkim.key_path}: {key}")
        return
    bits = key.key_size
    if bits < 1024:
        yield Item("FAIL", f"dkim.key_path: a {bits}-bit key is refused by receivers: use 2048")
    elif bits < 2048:
        yield Item("warn", f"dkim.key_path: a {bits}-bit key is weak: make a 2048-bit one", False)
    sender = config.sender.domain
    if not (sender == dkim.domain or sender.endswith("." + dkim.domain)):
        yield Item(
            "warn",
            f"dkim.domain: {dkim.domain} does not align with the sender's {sender}: DMARC "
            "passes only on SPF then; sign with the sender's domain",
            False,
        )
    if lookup is not None:
        yield _dns_item("dkim", lambda: dkim_record(dkim.selector, dkim.domain, key, lookup))


def _private_key(path: Path) -> rsa.RSAPrivateKey | str:
    try:
        data = path.read_bytes()
    except OSError as e:
        return f"cannot read the private key ({e.strerror or e})"
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        return "not an unencrypted PEM private key"
    if not isinstance(key, rsa.RSAPrivateKey):
        return "not an RSA key: DKIM signs with rsa-sha256"
    return key


def dkim_record(selector: str, domain: str, key: rsa.RSAPrivateKey, lookup: dnsr.TxtLookup) -> Item:
    name = dnsr.dkim_name(selector, domain)
    published = dnsr.published_dkim_key(lookup(name))
    publish = f"publish TXT `v=DKIM1; k=rsa; p=<{dnsr.public_key_text(key)[:12]}...>` there"
    if published is None:
        return Item("FAIL", f"dkim: no DKIM key at {name}: {publish}")
    if isinstance(published, str):
        return Item("FAIL", f"dkim: {name}: {published}: {publish}")
    if not dnsr.same_key(key, published):
        return Item(
            "FAIL",
            f"dkim: the key at {name} is not the public half of dkim.key_path: {publish}, "
            "or correct dkim.selector",
        )
    return Item(
        "ok", f"dkim: {name} publishes the public half of dkim.key_path ({key.key_size}-bit)"
    )


# -- the relay ----------------------------------------------------------------------------------


def relay(
    config: Config,
    *,
    smtp: bool,
    environ: Mapping[str, str],
    ssl_context: ssl.SSLContext | None,
) -> Iterator[Item]:
    settings = config.delivery.smtp
    where = f"{settings.host}:{settings.port}"
    if config.delivery.transport != "smtp":
        yield Item(
            "FAIL",
            "delivery.transport: outbox (a local folder, nothing leaves): set `transport: smtp` "
            "and `delivery.smtp` to your relay",
        )
        return
    if settings.security == "none" and settings.host not in LOCAL_HOSTS:
        yield Item(
            "FAIL",
            f"delivery.smtp.security: none sends mail and password in clear to {where}: use "
            "starttls (port 587) or tls (465)",
        )
    else:
        yield Item("ok", f"delivery: smtp {where}, security {settings.security}")
    if not smtp:
        yield Item("skip", "smtp: not contacted: add --smtp to connect, start TLS and log in")
        return
    try:
        probe = probe_relay(settings, ssl_context=ssl_context, environ=environ)
    except TransportError as e:
        yield Item("FAIL", f"smtp: {e}")
        return
    tls = probe.tls or "no TLS (local relay)"
    login = f"logged in as {settings.username!r}" if probe.logged_in else "no login"
    yield Item("ok", f"smtp: {where}: connected, {tls}, {login}")
    yield size_limit(config, probe.size_limit)


def size_limit(config: Config, limit: int | None) -> Item:
    if limit is None:
        return Item(
            "warn", "smtp: the relay announces no SIZE limit: ask its provider for one", False
        )
    if limit == 0:
        return Item("ok", "smtp: the relay declares no fixed message size limit")
    store = Store.if_exists(config.state_settings())
    try:
        size, what = largest_message(config, store)
    except NewsletterError as e:
        return Item("unknown", f"smtp: the largest message could not be built ({e})")
    finally:
        if store is not None:
            store.close()
    line = f"the largest message ({size / 1000:.0f} KB, all topics, {what})"
    if size > limit:
        return Item(
            "FAIL",
            f"smtp: {line} exceeds the relay's SIZE limit of {limit / 1000:.0f} KB: lower "
            "size_budget_kb or max_papers",
        )
    return Item("ok", f"smtp: {line} fits the relay's SIZE limit of {limit / 1000:.0f} KB")


# -- the audience -------------------------------------------------------------------------------


def reach(config: Config, subscribers: Path | None) -> Item:
    """Should-have: someone to send to, and no one at a placeholder domain."""
    path, people = next_audience(config, subscribers)
    if not people:
        return Item(
            "warn", f"audience: nobody receives the next issue: add people to {path}", False
        )
    fake = [p.email for p in people if is_placeholder(p.email.rsplit("@", 1)[1])]
    if fake:
        return Item(
            "warn",
            f"audience: {len(fake)} of {len(people)} subscribers are at example domains "
            f"(like {fake[0]}): replace them in {path}",
            False,
        )
    return Item("ok", f"audience: {len(people)} subscriber(s) receive the next issue", False)
