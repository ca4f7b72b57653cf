"""A minimal SMTP sink for benchmarks: accepts every message, keeps none, never the limit.

Raw sockets and asyncio, in several forked processes accepting on one listening socket,
so it costs a few microseconds per message where a client pays hundreds (aiosmtpd caps
at ~600 msg/s here and is only for tests). It speaks just enough SMTP: EHLO/HELO, MAIL,
RCPT, DATA, RSET, NOOP, QUIT, with PIPELINING advertised and honoured.

    python bench/sink.py [--port 0] [--procs 2]

prints "listening on 127.0.0.1:PORT" and runs until SIGTERM/SIGINT, then prints the
number of messages it accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import sys

_EHLO = b"250-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE 104857600\r\n"
_END = b"\r\n.\r\n"


class _Session(asyncio.BufferedProtocol):
    """One client connection. Message bytes are never kept: in DATA only the last four
    bytes survive between reads, to find a terminator split across two reads."""

    accepted = 0
    SIZE = 1 << 18

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = bytearray(self.SIZE)
        self.view = memoryview(self.buffer)
        self.used = 0
        self.in_data = False
        self.transport.write(b"220 sink ESMTP\r\n")

    def get_buffer(self, sizehint: int) -> memoryview:
        if self.used == len(self.buffer):  # a command line longer than the buffer: grow
            self.buffer.extend(bytes(len(self.buffer)))
            self.view = memoryview(self.buffer)
        return self.view[self.used :]

    def buffer_updated(self, nbytes: int) -> None:
        buffer, start, end = self.buffer, 0, self.used + nbytes
        replies = []
        while start < end:
            if self.in_data:
                found = buffer.find(_END, start, end)
                if found < 0:
                    start = max(start, end - 4)
                    break
                start = found + 5
                self.in_data = False
                _Session.accepted += 1
                replies.append(b"250 2.0.0 Ok: queued as S%d\r\n" % _Session.accepted)
                continue
            found = buffer.find(b"\r\n", start, end)
            if found < 0:
                break
            verb = bytes(buffer[start : start + 4]).upper()
            start = found + 2
            if verb in (b"EHLO", b"HELO"):
                replies.append(_EHLO)
            elif verb == b"DATA":
                # Keep the CRLF before the data so a terminator at once is recognised.
                self.in_data = True
                start -= 2
                replies.append(b"354 go ahead\r\n")
            elif verb == b"QUIT":
                replies.append(b"221 bye\r\n")
                self.transport.write(b"".join(replies))
                self.transport.close()
                return
            else:
                replies.append(b"250 OK\r\n")
        self.used = end - start
        if self.used and start:
            buffer[: self.used] = buffer[start:end]
        if replies:
            self.transport.write(b"".join(replies))


def _serve(listener: socket.socket, report: int) -> None:
    loop = asyncio.new_event_loop()
    stop = loop.create_future()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, lambda: stop.done() or stop.set_result(None))

    async def main() -> None:
        server = await loop.create_server(_Session, sock=listener, backlog=1024)
        async with server:
            await stop

    loop.run_until_complete(main())
    os.write(report, b"%d\n" % _Session.accepted)


def main() -> None:
    """Listen, fork the workers, and report the total on exit."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--procs", type=int, default=2)
    args = parser.parse_args()
    listener = socket.create_server(("127.0.0.1", args.port), backlog=1024)
    listener.setblocking(False)
    read, write = os.pipe()
    children = []
    for _ in range(args.procs):
        pid = os.fork()
        if pid == 0:
            os.close(read)
            _serve(listener, write)
            os._exit(0)
        children.append(pid)
    os.close(write)
    print(f"listening on 127.0.0.1:{listener.getsockname()[1]}", flush=True)
    # The handlers only need to exist: pause() returns once either signal arrives.
    signal.signal(signal.SIGTERM, lambda *_: None)
    signal.signal(signal.SIGINT, lambda *_: None)
    try:
        signal.pause()
    finally:
        for pid in children:
            os.kill(pid, signal.SIGTERM)
        total = 0
        with os.fdopen(read) as results:
            for line in results:
                total += int(line)
        for pid in children:
            os.waitpid(pid, 0)
        print(f"accepted {total}", flush=True)
        sys.exit(0)


if __name__ == "__main__":
    main()
