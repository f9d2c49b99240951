"""A DNS server on 127.0.0.1 for tests: it answers TXT queries from a dict, over UDP.

Messages are parsed and built with dnspython (the library the program resolves with), so the
program's resolver talks real DNS to it: `newsletter check --nameserver 127.0.0.1:PORT`. A name
in the dict answers its TXT records; a name that is a parent of one answers no records (NOERROR,
empty); any other name is NXDOMAIN. Every question asked is recorded in `queries`.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdataclass
import dns.rdatatype
import dns.rrset
from dns.rdtypes.ANY.TXT import TXT


@dataclass
class DnsServer:
    address: str  # "127.0.0.1:PORT", as --nameserver takes it
    records: dict[str, list[str]]
    queries: list[str] = field(default_factory=list)


def _chunks(text: str) -> list[bytes]:
    data = text.encode()
    return [data[i : i + 255] for i in range(0, len(data), 255)] or [b""]


def _answer(server: DnsServer, wire: bytes) -> bytes:
    query = dns.message.from_wire(wire)
    response = dns.message.make_response(query)
    response.flags |= dns.flags.AA
    question = query.question[0]
    name = question.name.to_text(omit_final_dot=True).lower()
    server.queries.append(name)
    texts = server.records.get(name)
    if texts and question.rdtype == dns.rdatatype.TXT:
        rrset = dns.rrset.RRset(question.name, dns.rdataclass.IN, dns.rdatatype.TXT)
        for text in texts:
            rrset.add(TXT(dns.rdataclass.IN, dns.rdatatype.TXT, _chunks(text)), 300)
        response.answer.append(rrset)
    elif texts is None and not any(k.endswith("." + name) for k in server.records):
        response.set_rcode(dns.rcode.NXDOMAIN)
    return response.to_wire()


@contextmanager
def dns_server(records: dict[str, list[str]]) -> Iterator[DnsServer]:
    """Answer TXT queries for `records` (name -> TXT strings) on 127.0.0.1 for the block."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(0.05)
    server = DnsServer(
        f"127.0.0.1:{sock.getsockname()[1]}", {k.lower(): v for k, v in records.items()}
    )
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                wire, peer = sock.recvfrom(4096)
            except OSError:  # the timeout: look at `stop` again
                continue
            sock.sendto(_answer(server, wire), peer)

    thread = threading.Thread(target=serve, name="dns-server", daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join()
        sock.close()
