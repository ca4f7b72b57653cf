"""A raw-socket SMTP server for the transport's edge cases that aiosmtpd cannot show:
it advertises PIPELINING (and records whether a client used it), refuses chosen
recipients, can hang up after the final dot without answering, or hang up in the middle
of DATA (right after its 354) the first time a chosen recipient's message comes, or
hang (answer nothing) at a command while `hang_at` names it (b"." for the end of data)."""

from __future__ import annotations

import socket
import threading


class RawSMTPServer:
    """One thread per connection on 127.0.0.1; `messages` holds the accepted data."""

    def __init__(
        self,
        pipelining: bool = True,
        refuse: dict[str, str] | None = None,
        hang_up_after_data: bool = False,
        hang_up_in_data: frozenset[str] = frozenset(),
        hang_at: bytes | None = None,
    ) -> None:
        self.pipelining = pipelining
        self.refuse = refuse or {}
        self.hang_up_after_data = hang_up_after_data
        self.hang_up_in_data = set(hang_up_in_data)
        self.hang_at = hang_at
        self.connections = 0
        self.messages: list[bytes] = []
        self.pipelined_envelopes = 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        """Return a DIGEST_SMTP_URL for this server."""
        return f"smtp://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._session, args=(conn,), daemon=True).start()

    def _session(self, conn: socket.socket) -> None:
        with conn:
            conn.sendall(b"220 raw ready\r\n")
            buffer, valid_rcpt, rcpt = b"", False, ""
            while True:
                chunk = conn.recv(65536)
                if not chunk:
                    return
                if b"MAIL FROM" in chunk.upper() and b"\r\nDATA\r\n" in chunk.upper():
                    self.pipelined_envelopes += 1
                buffer += chunk
                while b"\r\n" in buffer:
                    line, buffer = buffer.split(b"\r\n", 1)
                    verb = line[:4].upper()
                    if verb == self.hang_at:
                        while conn.recv(65536):
                            pass  # silent until the client gives up
                        return
                    if verb == b"EHLO":
                        conn.sendall(b"250-raw\r\n250-PIPELINING\r\n250 8BITMIME\r\n" if self.pipelining else b"250 raw\r\n")
                    elif verb == b"MAIL":
                        valid_rcpt = False
                        conn.sendall(b"250 ok\r\n")
                    elif verb == b"RCPT":
                        address = line.split(b"<", 1)[1].split(b">", 1)[0].decode()
                        reply = self.refuse.get(address)
                        valid_rcpt = valid_rcpt or reply is None
                        rcpt = address
                        conn.sendall((reply or "250 ok").encode() + b"\r\n")
                    elif verb == b"DATA":
                        if not valid_rcpt:
                            conn.sendall(b"554 5.5.1 no valid recipients\r\n")
                            continue
                        conn.sendall(b"354 go on\r\n")
                        if rcpt in self.hang_up_in_data:
                            self.hang_up_in_data.discard(rcpt)
                            return
                        while b"\r\n.\r\n" not in b"\r\n" + buffer:
                            more = conn.recv(65536)
                            if not more:
                                return
                            buffer += more
                        data, buffer = (b"\r\n" + buffer).split(b"\r\n.\r\n", 1)
                        if self.hang_up_after_data:
                            return
                        if self.hang_at == b".":  # silent after the end of the message
                            while conn.recv(65536):
                                pass
                            return
                        body = data[2:] + b"\r\n"
                        self.messages.append(body[1:] if body.startswith(b".") else body.replace(b"\r\n..", b"\r\n."))
                        conn.sendall(b"250 2.0.0 Ok: queued as RAW%06d\r\n" % len(self.messages))
                    elif verb == b"QUIT":
                        conn.sendall(b"221 bye\r\n")
                        return
                    else:
                        conn.sendall(b"250 ok\r\n")

    def close(self) -> None:
        """Stop accepting connections."""
        self.sock.close()
