"""A tiny authoritative DNS server for tests (dnspython on UDP 127.0.0.1): TXT records only."""

from __future__ import annotations

import socket
import threading

import dns.message
import dns.rcode
import dns.rdatatype
import dns.rrset


class TXTServer:
    """Answers TXT queries from `records` (name → text); NXDOMAIN for any other name."""

    def __init__(self, records: dict[str, str]) -> None:
        self.records = {name.rstrip(".").lower(): text for name, text in records.items()}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    @property
    def address(self) -> str:
        """Return IP:PORT, as `digest doctor --nameserver` takes it."""
        host, port = self.sock.getsockname()
        return f"{host}:{port}"

    def start(self) -> TXTServer:
        """Start answering; return self."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop answering and close the socket."""
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                wire, peer = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            query = dns.message.from_wire(wire)
            response = dns.message.make_response(query)
            question = query.question[0]
            text = self.records.get(question.name.to_text().rstrip(".").lower())
            if text is None:
                response.set_rcode(dns.rcode.NXDOMAIN)
            elif question.rdtype == dns.rdatatype.TXT:
                chunks = " ".join(f'"{text[i:i + 255]}"' for i in range(0, len(text), 255))
                response.answer.append(dns.rrset.from_text(question.name, 60, "IN", "TXT", chunks))
            self.sock.sendto(response.to_wire(), peer)
