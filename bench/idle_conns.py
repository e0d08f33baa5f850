#!/usr/bin/python3
"""bench/idle_conns.py HOST PORT N HOSTHEADER - hold N idle keep-alive connections.

Opens N connections to HOST:PORT, sends one `GET /` (Host: HOSTHEADER) on each
and reads its whole response (Content-Length), so every connection has served a
request and sits idle, as a browser's or a client pool's do. Then prints
`ready N` and waits for a line on stdin; closes everything and prints `closed`.
Connections that fail are counted and reported (`failed K`), never retried.
Only the standard library: the bench needs nothing else.
"""

import selectors
import socket
import sys


def main():
    host, port, n, host_header = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    request = ("GET / HTTP/1.1\r\nHost: %s\r\n\r\n" % host_header).encode()
    sel = selectors.DefaultSelector()
    conns, failed, done = [], 0, 0
    batch = 500
    for start in range(0, n, batch):
        pending = {}
        for _ in range(min(batch, n - start)):
            try:
                s = socket.create_connection((host, port), timeout=10)
                s.sendall(request)
                s.setblocking(False)
                pending[s] = b""
                sel.register(s, selectors.EVENT_READ)
            except OSError:
                failed += 1
        while pending:
            events = sel.select(timeout=10)
            if not events:
                failed += len(pending)
                for s in pending:
                    sel.unregister(s)
                    s.close()
                break
            for key, _ in events:
                s = key.fileobj
                try:
                    data = s.recv(65536)
                except OSError:
                    data = b""
                if not data:
                    failed += 1
                    sel.unregister(s)
                    s.close()
                    del pending[s]
                    continue
                buf = pending[s] + data
                head, sep, body = buf.partition(b"\r\n\r\n")
                length = None
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value.strip())
                if sep and length is not None and len(body) >= length:
                    sel.unregister(s)
                    conns.append(s)
                    del pending[s]
                    done += 1
                else:
                    pending[s] = buf
    print("ready %d" % done, flush=True)
    if failed:
        print("failed %d" % failed, flush=True)
    sys.stdin.readline()
    for s in conns:
        s.close()
    print("closed", flush=True)


if __name__ == "__main__":
    main()
