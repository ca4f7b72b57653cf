"""A TCP forwarder in front of PostgreSQL that a test can cut and restore, so a real
`digest` process meets a real database outage (connections reset, new ones refused)."""

from __future__ import annotations

import socket
import threading
from types import TracebackType


class CuttableLink:
    """Forward 127.0.0.1:port to target; cut() drops every connection and refuses new
    ones until restore()."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self._listener: socket.socket | None = None
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self.port = 0
        self._marker: bytes | None = None
        self.cut_after_answer = threading.Event()

    def __enter__(self) -> CuttableLink:
        self.restore()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.cut()

    def restore(self) -> None:
        """Listen again (on the same port once one was given)."""
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        """Stop listening and reset every forwarded connection."""
        listener, self._listener = self._listener, None
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept(); close() alone would not
            except OSError:
                pass
            listener.close()
        with self._lock:
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def cut_when_answered(self, marker: bytes) -> None:
        """Cut the link once the server answers the first request that contains marker,
        before the answer reaches the client: the server did the work (committed, say),
        the client never learns it."""
        self.cut_after_answer.clear()
        self._marker = marker

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            asked = threading.Event()  # this connection sent the marked request
            for source, sink, outward in ((client, server, True), (server, client, False)):
                threading.Thread(target=self._pump, args=(source, sink, outward, asked), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, outward: bool, asked: threading.Event) -> None:
        try:
            while data := source.recv(65536):
                marker = self._marker
                if outward and marker is not None and marker in data:
                    self._marker = None
                    asked.set()
                elif not outward and asked.is_set():
                    self.cut_after_answer.set()
                    self.cut()
                    return
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
