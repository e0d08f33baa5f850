#!/usr/bin/python3
"""gen_proto_seeds - write the seed corpus of fuzz_proto into tests/fuzz/corpus/proto/.

One valid message per type of protocol/messages.def (envelope last, as the first encoder
wrote it, or first, as the current one does: the decoder takes keys in any order), then a
few malformed ones. The msgpack packer is written out here on purpose, independent of
proto.c's, and needs nothing but python3. Run from the repository root:

    /usr/bin/python3 tests/fuzz/gen_proto_seeds.py

A new message type in messages.def needs an entry in MESSAGES.
"""
import os
import struct
import sys

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpus", "proto")


class Bin(bytes):
    """A msgpack bin (bytes are packed as str otherwise)."""


class F32(float):
    """A float packed as float32."""


def pack(v):
    if v is None:
        return b"\xc0"
    if v is True:
        return b"\xc3"
    if v is False:
        return b"\xc2"
    if isinstance(v, int):
        if 0 <= v <= 0x7F:
            return bytes([v])
        if -32 <= v < 0:
            return struct.pack("b", v)
        if 0 <= v <= 0xFF:
            return b"\xcc" + struct.pack(">B", v)
        if 0 <= v <= 0xFFFF:
            return b"\xcd" + struct.pack(">H", v)
        if 0 <= v <= 0xFFFFFFFF:
            return b"\xce" + struct.pack(">I", v)
        if v >= 0:
            return b"\xcf" + struct.pack(">Q", v)
        return b"\xd3" + struct.pack(">q", v)
    if isinstance(v, F32):
        return b"\xca" + struct.pack(">f", v)
    if isinstance(v, float):
        return b"\xcb" + struct.pack(">d", v)
    if isinstance(v, Bin):
        n = len(v)
        head = b"\xc4" + bytes([n]) if n <= 0xFF else b"\xc5" + struct.pack(">H", n)
        return head + bytes(v)
    if isinstance(v, (str, bytes)):
        b = v.encode() if isinstance(v, str) else v
        n = len(b)
        if n <= 31:
            head = bytes([0xA0 | n])
        elif n <= 0xFF:
            head = b"\xd9" + bytes([n])
        else:
            head = b"\xda" + struct.pack(">H", n)
        return head + b
    if isinstance(v, list):
        n = len(v)
        head = bytes([0x90 | n]) if n <= 15 else b"\xdc" + struct.pack(">H", n)
        return head + b"".join(pack(x) for x in v)
    if isinstance(v, (dict, tuple)):
        items = v.items() if isinstance(v, dict) else v  # a tuple of pairs may repeat keys
        items = list(items)
        n = len(items)
        head = bytes([0x80 | n]) if n <= 15 else b"\xde" + struct.pack(">H", n)
        return head + b"".join(pack(k) + pack(x) for k, x in items)
    raise TypeError(type(v))


COUNTERS = [{"name": "dropped.malformed", "value": 3}, {"name": "peers.router", "value": 1}]
BACKEND = {"id": "b1", "host": "10.0.0.5", "port": 8080, "weight": 2, "region": "eu-west",
           "maint": False}
CANDIDATE = {"id": "b1", "host": "10.0.0.5", "port": 8080, "weight": 1, "region": "eu-west",
             "hop": True}
REQINFO = {"rid": "r-1", "method": "GET", "vhost": "api.example.com", "route": "api",
           "path": "/v1/items?id=1", "status": 200, "bytes": 512, "duration_us": 1500,
           "backend": "b1", "upstream_us": 900, "region": "eu-west", "client": "192.0.2.1",
           "attempts": 1}

MESSAGES = {
    "ping": {"sent_us": 123456789},
    "pong": {"kind": "router", "instance": "router-1", "pid": 4242, "version": "0.1.0",
             "region": "eu-west", "uptime_ms": 60000, "sent_us": 123456789, "msgs_in": 10,
             "msgs_out": 12, "counters": COUNTERS},
    "proc.stats": {"kind": "gateway", "instance": "gw-1", "pid": 77, "cpu_seconds": 1.25,
                   "rss_bytes": 10485760, "open_fds": 12, "start_time": F32(1700000000.0),
                   "uptime_ms": 5000, "counters": COUNTERS},
    "decide": {"host": "api.example.com", "region": "eu-west", "gw_region": "us-east",
               "client": "[2001:db8::1]:5555"},
    "pick": {"route": "api", "vhost": "*.example.com", "strategy": "ROUND_ROBIN",
             "version": 7, "region": "eu-west", "gw_region": "eu-west",
             "backends": [BACKEND, dict(BACKEND, id="b2", port=8081, maint=True)],
             "regions": [{"id": "eu-west", "address": "eu.example.com:443"},
                         {"id": "us-east"}]},
    "lease": {"status": "ok", "route": "api", "vhost": "api.example.com", "version": 7,
              "ttl_ms": 1000, "strategy": "IP_HASH", "region": "eu-west",
              "candidates": [CANDIDATE], "retries": 2, "timeout_ms": 30000,
              "queue_timeout_ms": 500, "req_active": 100, "req_queue": 50,
              "max_body": 1048576, "headers": {"X-Env": "prod", "X-Region": "eu"}},
    "request.done": {"items": [REQINFO, {"rid": "r-2", "method": "POST", "status": 502,
                                         "duration_us": 10}]},
    "upstream.failed": {"route": "api", "backend": "b1", "reason": "refused"},
    "config.get": {"what": "diff", "key": "3:7"},
    "config.put": {"what": "route", "key": "api.example.com", "sub": "", "create_only": 1,
                   "body": '{"vHost":"api.example.com","backends":[]}', "by": "admin"},
    "config.delete": {"what": "backend", "key": "api.example.com", "sub": "b1",
                      "by": "local"},
    "config.reply": {"status": 400, "version": 7, "body": "",
                     "error": "port: out of range", "field": "backends[0].port"},
    "config.changed": {"version": 8, "what": "route", "key": "api.example.com"},
    "backend.state": {"route": "api", "backend": "b1", "up": False, "reason": "timeout",
                      "failures": 3, "since_ms": 1700000000000},
    "admin.request": {"method": "POST", "path": "/api/v1/routes", "query": "dry=1",
                      "headers": {"content-type": "application/json"},
                      "body": Bin(b'{"vHost":"a.example.com"}'), "client": "127.0.0.1",
                      "principal": "ops"},
    "admin.response": {"status": 201, "headers": {"content-type": "application/json"},
                       "body": Bin(b'{"ok":true}')},
    "socket.event": {"kind": "router", "instance": "router-1", "socket": "dealer.balancer",
                     "event": "connected", "endpoint": "tcp://127.0.0.1:5601", "value": 9},
    "error": {"code": "unavailable", "message": "no balancer"},
}


def s_nested(depth):
    """An array nested depth deep: past proto_mp's PROTO_MP_MAX_DEPTH (32)."""
    v = []
    for _ in range(depth):
        v = [v]
    return v


def envelope(t, rid="", src="router/router-1"):
    return [("v", 1), ("t", t), ("id", 42), ("rid", rid), ("src", src),
            ("ts", 1700000000123)]


def message(t, body, env_first):
    env = envelope(t, rid="req-1" if t in ("decide", "lease", "admin.request") else "")
    items = list(body.items())
    return tuple(env + items) if env_first else tuple(items + env)


def main():
    os.makedirs(OUT, exist_ok=True)
    seeds = {}
    for i, (t, body) in enumerate(MESSAGES.items()):
        # alternate the two key orders the encoders have used
        seeds["valid-" + t] = pack(message(t, body, env_first=i % 2 == 0))
    ping = MESSAGES["ping"]
    seeds["valid-ping-body-first"] = pack(message("ping", ping, env_first=False))
    seeds["valid-unknown-key-nil"] = pack(tuple(envelope("error") + [
        ("code", "x"), ("message", None), ("future", {"a": [1, 2.5, Bin(b"\0")]})]))
    bad = {
        "bad-truncated": seeds["valid-pong"][:-3],
        "bad-trailing": seeds["valid-ping"] + b"\xc0",
        "bad-not-a-map": pack([1, 2, 3]),
        "bad-version": pack(tuple([("v", 2)] + envelope("ping")[1:])),
        "bad-unknown-type": pack(tuple(envelope("nope"))),
        "bad-missing-src": pack(tuple(x for x in envelope("ping") if x[0] != "src")),
        "bad-dup-key": pack(tuple(envelope("error") + [("code", "a"), ("code", "b")])),
        "bad-dup-t": pack(tuple(envelope("ping") + [("t", "ping")])),
        "bad-type": pack(tuple(envelope("upstream.failed") + [
            ("route", 1), ("backend", "b"), ("reason", "reset")])),
        "bad-bound": pack(tuple(envelope("error") + [("code", "c" * 33)])),
        "bad-nul-in-str": pack(tuple(envelope("error") + [("code", "a\0b")])),
        "bad-negative-u16": pack(tuple(envelope("admin.response") + [("status", -1)])),
        "bad-weight": pack(tuple(envelope("pick") + list(dict(
            MESSAGES["pick"], backends=[dict(BACKEND, weight=1000001)]).items()))),
        "bad-huge-array": b"\x8f" + pack("t") + pack("ping") + b"\xdd\xff\xff\xff\xff",
        "bad-deep": pack(tuple(envelope("ping") + [("x", s_nested(40))])),
        "bad-empty": b"",
    }
    seeds.update(bad)
    for name, data in seeds.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)
    print("%d seeds in %s" % (len(seeds), OUT))


if __name__ == "__main__":
    sys.exit(main())
