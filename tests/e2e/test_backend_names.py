"""End-to-end tests of backends given by name (issue 9 item 8): the gateway
and healthd resolve a backend's `hostname` with c-ares on their loops
(DNS_SERVERS points both at a DNS server this test runs), use every address
of a name (a refused one is passed over for the next), and an unresolvable
name is a failed candidate that is retried elsewhere at once, never a stall.
"""

import socket
import struct
import threading
import time

from stack import BACKEND_A, BACKEND_B, wait_until

HELLO_A = "Hello from %s (Region %s)" % (BACKEND_A["name"], BACKEND_A["region"])
HELLO_B = "Hello from %s (Region %s)" % (BACKEND_B["name"], BACKEND_B["region"])


class TinyDns:
    """A UDP DNS server on 127.0.0.1: A records from a table, NXDOMAIN for the
    rest, an empty answer for other types. Counts queries per name."""

    def __init__(self, table):
        self.table = dict(table)  # name -> [ipv4, ...]
        self.queries = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.stopped = False
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        while not self.stopped:
            try:
                data, peer = self.sock.recvfrom(4096)
            except OSError:
                return
            try:
                reply = self._answer(data)
            except (ValueError, IndexError, struct.error):
                continue  # not a query we understand: no answer
            self.sock.sendto(reply, peer)

    def _answer(self, q):
        qid, _flags, qd = struct.unpack(">HHH", q[:6])
        if qd != 1:
            raise ValueError("one question")
        i, labels = 12, []
        while q[i]:
            n = q[i]
            labels.append(q[i + 1 : i + 1 + n].decode().lower())
            i += 1 + n
        name = ".".join(labels)
        qtype = struct.unpack(">H", q[i + 1 : i + 3])[0]
        question = q[12 : i + 5]
        self.queries[name] = self.queries.get(name, 0) + 1
        if name not in self.table:
            return struct.pack(">HHHHHH", qid, 0x8183, 1, 0, 0, 0) + question
        addrs = self.table[name] if qtype == 1 else []
        answers = b"".join(
            struct.pack(">HHHIH", 0xC00C, 1, 1, 30, 4) + socket.inet_aton(a) for a in addrs
        )
        return struct.pack(">HHHHHH", qid, 0x8180, 1, len(addrs), 0, 0) + question + answers

    def stop(self):
        self.stopped = True
        self.sock.close()


def test_backends_by_name(make_stack):
    dns = TinyDns(
        {
            "web.backend.test": ["127.0.0.1"],
            # the first address refuses (nothing listens on 127.0.0.2): the next one serves
            "two.backend.test": ["127.0.0.2", "127.0.0.1"],
        }
    )
    try:
        env = {"DNS_SERVERS": "127.0.0.1:%d" % dns.port}
        stack = make_stack(actor_env=env)
        port_a = stack.port_a
        named = {"id": "web", "hostname": "web.backend.test", "port": port_a, "region": "1"}
        stack.put_route("dns.test", [named])
        wait_until(lambda: stack.get("/", host="dns.test", timeout=5).status_code == 200, 10, what="served by name")
        r = stack.get("/", host="dns.test", timeout=5)
        assert r.text == HELLO_A, r.text
        assert dns.queries.get("web.backend.test", 0) >= 1

        # every address of a name: a refused one is passed over, for every request
        two = {"id": "two", "hostname": "two.backend.test", "port": port_a, "region": "1"}
        stack.put_route("two.test", [two], retries=0)
        wait_until(lambda: stack.get("/", host="two.test", timeout=5).status_code == 200, 10, what="two served")
        for _ in range(6):
            r = stack.get("/", host="two.test", timeout=5)
            assert (r.status_code, r.text) == (200, HELLO_A), (r.status_code, r.text)

        # a name that does not exist: that candidate fails at once, the other serves
        gone = {"id": "gone", "hostname": "gone.backend.test", "port": port_a, "region": "1", "weight": 100}
        stack.put_route("mixed.test", [gone, stack.backend("b", region="1")], retries=1, strategy="ROUND_ROBIN")
        wait_until(lambda: stack.get("/", host="mixed.test", timeout=5).status_code == 200, 10, what="mixed served")
        for _ in range(4):
            t0 = time.monotonic()
            r = stack.get("/", host="mixed.test", timeout=5)
            assert (r.status_code, r.text) == (200, HELLO_B), (r.status_code, r.text)
            assert time.monotonic() - t0 < 1.0
        # the gateway said why the candidate failed; healthd asked for the names too
        assert '"reason":"unresolved"' in stack.logs("gateway")
        assert "gone.backend.test" in stack.logs("healthd")
        assert dns.queries.get("gone.backend.test", 0) >= 1
    finally:
        dns.stop()
