"""End-to-end tests of the gateway's pooled upstream connections (issue 9
item 8): a pooled connection the backend closed is never reused, so a POST
(never retried once sent) does not get a 502 for it.

The race it closes: the backend's FIN and the client's next request reach
the gateway in the same loop turn. The test makes that happen on purpose:
the gateway is stopped (SIGSTOP), the backend closes its idle keep-alive
connection, the client sends a POST on its own keep-alive connection, and
the gateway continues (SIGCONT) with both events waiting; libev runs the
later one (the request) first, so without the check at reuse the POST went
out on the closed connection and got 502.
"""

import os
import signal
import socket
import threading

from stack import RawConn, free_ports, pause


class ClosingBackend:
    """A tiny keep-alive HTTP/1.1 backend whose open connections the test can
    close at will (as a backend's keep-alive timeout does)."""

    def __init__(self):
        (self.port,) = free_ports(1)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(16)
        self.conns = []
        self.requests = 0
        self.lock = threading.Lock()
        self.stopped = False
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            with self.lock:
                self.conns.append(c)
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        buf = b""
        try:
            while True:
                data = c.recv(65536)
                if not data:
                    return
                buf += data
                while b"\r\n\r\n" in buf:
                    head, _, rest = buf.partition(b"\r\n\r\n")
                    length = 0
                    for line in head.split(b"\r\n")[1:]:
                        name, _, value = line.partition(b":")
                        if name.strip().lower() == b"content-length":
                            length = int(value.strip())
                    if len(rest) < length:
                        break
                    buf = rest[length:]
                    with self.lock:
                        self.requests += 1
                    body = b"ok %s" % head.split(b" ", 1)[0]
                    c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
        except OSError:
            return

    def close_all(self):
        with self.lock:
            conns, self.conns = self.conns, []
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            c.close()

    def stop(self):
        self.stopped = True
        self.close_all()
        self.sock.close()


def test_post_after_backend_closed_idle_connection(stack):
    backend = ClosingBackend()
    try:
        vhost = "pool.test"
        stack.put_route(
            vhost, [{"id": "closing", "hostname": "127.0.0.1", "port": backend.port, "region": "1"}], retries=0
        )
        stack.wait_served(vhost)
        gw_pid = stack.procs["gateway"].pid
        for round_ in range(3):
            c = RawConn(stack.http_port)
            try:
                # one request: the gateway's upstream connection goes to its pool
                c.send(b"GET / HTTP/1.1\r\nHost: " + vhost.encode() + b"\r\n\r\n")
                r = c.read_response()
                assert r.status == 200, (round_, r.status, r.body)
                os.kill(gw_pid, signal.SIGSTOP)
                try:
                    backend.close_all()  # the FIN waits in the stopped gateway's socket
                    c.send(b"POST /x HTTP/1.1\r\nHost: " + vhost.encode() + b"\r\nContent-Length: 2\r\n\r\nhi")
                    pause(0.6)  # idle >= 0.5 s when the gateway wakes: the age at which it checks
                finally:
                    os.kill(gw_pid, signal.SIGCONT)
                r = c.read_response()
                assert (r.status, r.body) == (200, b"ok POST"), (round_, r.status, r.body)
            finally:
                c.close()
        pong = stack.pong("gateway")[0]
        assert pong.get("upstream.pool.stale", 0) >= 1, pong
    finally:
        backend.stop()
