"""The sending domain's mail-authentication records in DNS: SPF, DMARC and a DKIM selector.

dnspython makes the lookups. The standard library resolves only addresses, not TXT records;
dnspython is the maintained, pure-Python DNS library (no C build, typed), it honours the
system's resolver settings or asks a chosen server and port, and it tells "no such record"
(NXDOMAIN, no answer) apart from "no answer at all" (timeout, no reachable server), which is the
difference between a record to publish and a check that could not run.
"""

from __future__ import annotations

import base64
import binascii
import ipaddress
import logging
import re
from collections.abc import Callable
from dataclasses import dataclass

import dns.exception
import dns.resolver
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from newsletter.errors import DnsUnavailable

log = logging.getLogger(__name__)

TxtLookup = Callable[[str], list[str]]  # name -> its TXT records ([] when there is none)


def resolver_lookup(nameserver: str | None = None, *, timeout: float = 5.0) -> TxtLookup:
    """Return a TXT lookup through the system's resolver, or through `IP[:PORT]`."""
    try:
        resolver = dns.resolver.Resolver(configure=nameserver is None)
    except dns.exception.DNSException as e:  # no /etc/resolv.conf
        raise DnsUnavailable(f"no DNS resolver is configured ({e})") from e
    if nameserver is not None:
        host, port = split_nameserver(nameserver)
        resolver.nameservers = [host]
        resolver.port = port
    resolver.timeout = resolver.lifetime = timeout

    def lookup(name: str) -> list[str]:
        try:
            answer = resolver.resolve(name, "TXT", search=False)
        except (dns.resolver.NXDOMAIN, dns.resolver.NoAnswer):
            return []
        except dns.exception.DNSException as e:
            raise DnsUnavailable(f"no answer from DNS for {name} ({type(e).__name__})") from e
        return [b"".join(r.strings).decode("utf-8", "replace") for r in answer]

    return lookup


def split_nameserver(value: str) -> tuple[str, int]:
    """`1.2.3.4`, `1.2.3.4:5353`, `::1` or `[::1]:5353` -> (address, port); else ValueError."""
    bracketed = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\](?::(\d+))?", value)
    if bracketed:
        host, port = bracketed.group(1), bracketed.group(2) or "53"
    elif value.count(":") == 1:
        host, port = value.split(":")
    else:
        host, port = value, "53"
    try:
        ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(
            f"'{value}' is not IP[:PORT] (like 192.0.2.53 or 192.0.2.53:5353)"
        ) from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{value}': the port must be a number from 1 to 65535")
    return host, int(port)


# -- what the records say ------------------------------------------------------------------------


def spf_records(records: list[str]) -> list[str]:
    """The SPF policies among a domain's TXT records (more than one is an SPF error)."""
    return [r for r in records if re.match(r"v=spf1(\s|$)", r.strip(), re.IGNORECASE)]


def tags(record: str) -> dict[str, str]:
    """Parse a DKIM / DMARC tag list (`v=DKIM1; k=rsa; p=...`), whitespace removed in values."""
    out: dict[str, str] = {}
    for part in record.split(";"):
        name, sep, value = part.partition("=")
        if sep:
            out[name.strip().lower()] = re.sub(r"\s+", "", value)
    return out


@dataclass(frozen=True)
class Dmarc:
    name: str  # where it was found (_dmarc.<domain> or a parent's)
    policy: str  # none | quarantine | reject | "" when the tag is missing


def find_dmarc(domain: str, lookup: TxtLookup) -> Dmarc | None:
    """The DMARC policy for `domain`: its own, else its nearest parent's (the org domain)."""
    labels = domain.rstrip(".").split(".")
    for i in range(len(labels) - 1):
        name = "_dmarc." + ".".join(labels[i:])
        for record in lookup(name):
            if re.match(r"v=DMARC1\s*(;|$)", record.strip(), re.IGNORECASE):
                return Dmarc(name, tags(record).get("p", "").lower())
    return None


def dkim_name(selector: str, domain: str) -> str:
    return f"{selector}._domainkey.{domain}"


def published_dkim_key(records: list[str]) -> rsa.RSAPublicKey | None | str:
    """The RSA key a selector's TXT record publishes; None when there is no DKIM record;
    a string saying what is wrong with one that cannot be used."""
    found = [tags(r) for r in records if "p" in tags(r)]
    if not found:
        return None
    record = found[0]
    if not record["p"]:
        return "the record's p= is empty (the key is revoked)"
    if record.get("k", "rsa").lower() != "rsa":
        return f"the record's key type is k={record['k']}, not rsa"
    try:
        key = serialization.load_der_public_key(base64.b64decode(record["p"], validate=True))
    except (binascii.Error, ValueError) as e:
        return f"the record's p= is not a base64 public key ({e})"
    if not isinstance(key, rsa.RSAPublicKey):
        return "the record's p= is not an RSA key"
    return key


def same_key(private: rsa.RSAPrivateKey, public: rsa.RSAPublicKey) -> bool:
    return private.public_key().public_numbers() == public.public_numbers()


def public_key_text(private: rsa.RSAPrivateKey) -> str:
    """The `p=` value to publish for a private key (base64 SubjectPublicKeyInfo)."""
    der = private.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode("ascii")
