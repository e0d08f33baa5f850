"""End-to-end tests of statsd through the gateway's admin listener: /metrics
parsed by a strict Prometheus text-format (0.0.4) parser written here
(python3-prometheus-client is not a dependency), every metric of SPEC §10
with its type and labels, process metrics for every running actor, and the
/api/v1/stats and /api/v1/stats/:vHost shapes and counts; with ADMIN_TOKEN
set, the stats API needs the token.
"""

import json
import math
import os
import re
import time

import requests

from stack import ACTORS, pause, wait_until

DEMO = "demo.test"
NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
LABEL = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
TYPES = {"counter", "gauge", "histogram", "summary", "untyped"}

# SPEC §10: name -> (type, labels every sample carries)
SPEC_METRICS = {
    "switchyard_requests_total": ("counter", {"vhost", "code"}),
    "switchyard_request_duration_seconds": ("histogram", {"vhost"}),
    "switchyard_upstream_failures_total": ("counter", {"backend"}),
    "switchyard_backend_up": ("gauge", {"vhost", "backend"}),
    "switchyard_ws_connections": ("gauge", set()),
    "switchyard_chat_sessions": ("gauge", set()),
    "switchyard_chat_messages_total": ("counter", set()),
    "switchyard_chat_rooms": ("gauge", set()),
    "switchyard_process_cpu_seconds_total": ("counter", {"actor", "instance"}),
    "switchyard_process_resident_memory_bytes": ("gauge", {"actor", "instance"}),
    "switchyard_process_open_fds": ("gauge", {"actor", "instance"}),
    "switchyard_process_start_time_seconds": ("gauge", {"actor", "instance"}),
}


class ExpositionError(AssertionError):
    pass


def _value(text, lineno):
    if text in ("NaN", "+Inf", "-Inf"):
        return float(text.replace("Inf", "inf").replace("NaN", "nan"))
    if not re.fullmatch(r"[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?", text):
        raise ExpositionError("line %d: bad value %r" % (lineno, text))
    return float(text)


def parse_exposition(text):
    """Strict parse: returns {family: {"type", "help", "samples": [(name, labels, value)]}}."""
    if not text.endswith("\n"):
        raise ExpositionError("no final line feed")
    families = {}
    order = []  # families in the order their samples appear
    seen = set()
    for lineno, line in enumerate(text[:-1].split("\n"), 1):
        if line == "":
            raise ExpositionError("line %d: blank line" % lineno)
        if line.startswith("#"):
            m = re.fullmatch(r"# (HELP|TYPE) (\S+)(?: (.*))?", line)
            if not m:
                continue  # a comment
            kind, name, rest = m.group(1), m.group(2), m.group(3) or ""
            if not NAME.fullmatch(name):
                raise ExpositionError("line %d: bad name %r" % (lineno, name))
            fam = families.setdefault(name, {"type": None, "help": None, "samples": []})
            if kind == "HELP":
                if fam["help"] is not None:
                    raise ExpositionError("line %d: second HELP of %s" % (lineno, name))
                if not re.fullmatch(r"(?:[^\\]|\\[\\n])*", rest):
                    raise ExpositionError("line %d: bad escape in HELP" % lineno)
                fam["help"] = rest
            else:
                if fam["type"] is not None or fam["samples"]:
                    raise ExpositionError("line %d: TYPE of %s repeated or after samples" % (lineno, name))
                if rest not in TYPES:
                    raise ExpositionError("line %d: bad type %r" % (lineno, rest))
                fam["type"] = rest
            continue
        m = NAME.match(line)
        if not m:
            raise ExpositionError("line %d: bad sample name" % lineno)
        name, pos = m.group(0), m.end()
        labels = {}
        if line[pos : pos + 1] == "{":
            pos += 1
            while line[pos : pos + 1] != "}":
                lm = LABEL.match(line, pos)
                if not lm or line[lm.end() : lm.end() + 2] != '="':
                    raise ExpositionError("line %d: bad label" % lineno)
                key, pos = lm.group(0), lm.end() + 2
                val = []
                while True:
                    if pos >= len(line):
                        raise ExpositionError("line %d: unterminated label value" % lineno)
                    c = line[pos]
                    if c == "\\":
                        nxt = line[pos + 1 : pos + 2]
                        if nxt not in ('\\', '"', "n"):
                            raise ExpositionError("line %d: bad escape" % lineno)
                        val.append("\n" if nxt == "n" else nxt)
                        pos += 2
                    elif c == '"':
                        pos += 1
                        break
                    else:
                        val.append(c)
                        pos += 1
                if key in labels:
                    raise ExpositionError("line %d: repeated label %s" % (lineno, key))
                labels[key] = "".join(val)
                if line[pos : pos + 1] == ",":
                    pos += 1
                elif line[pos : pos + 1] != "}":
                    raise ExpositionError("line %d: expected , or }" % lineno)
            pos += 1
        if line[pos : pos + 1] != " ":
            raise ExpositionError("line %d: expected a space" % lineno)
        parts = line[pos + 1 :].split(" ")
        if len(parts) > 2 or (len(parts) == 2 and not re.fullmatch(r"-?\d+", parts[1])):
            raise ExpositionError("line %d: bad value or timestamp" % lineno)
        value = _value(parts[0], lineno)
        family = name
        for suffix in ("_bucket", "_sum", "_count"):
            base = name[: -len(suffix)]
            if name.endswith(suffix) and families.get(base, {}).get("type") in ("histogram", "summary"):
                family = base
        fam = families.get(family)
        if fam is None or fam["type"] is None:
            raise ExpositionError("line %d: sample %s before its TYPE" % (lineno, name))
        if order and order[-1] != family and family in order:
            raise ExpositionError("line %d: family %s split in two" % (lineno, family))
        if not order or order[-1] != family:
            order.append(family)
        key = (name, tuple(sorted(labels.items())))
        if key in seen:
            raise ExpositionError("line %d: repeated series %s" % (lineno, key))
        seen.add(key)
        fam["samples"].append((name, labels, value))
    for fname, fam in families.items():
        if fam["type"] == "histogram":
            _check_histogram(fname, fam)
    return families


def _check_histogram(fname, fam):
    groups = {}
    for name, labels, value in fam["samples"]:
        rest = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
        g = groups.setdefault(rest, {"buckets": [], "count": None, "sum": None})
        if name == fname + "_bucket":
            if "le" not in labels:
                raise ExpositionError("%s: bucket without le" % fname)
            g["buckets"].append((_value(labels["le"], 0), value))
        elif name == fname + "_count":
            g["count"] = value
        elif name == fname + "_sum":
            g["sum"] = value
        else:
            raise ExpositionError("%s: stray sample %s" % (fname, name))
    for rest, g in groups.items():
        les = [le for le, _ in g["buckets"]]
        if les != sorted(les) or len(set(les)) != len(les):
            raise ExpositionError("%s%s: buckets out of order" % (fname, rest))
        counts = [c for _, c in g["buckets"]]
        if counts != sorted(counts):
            raise ExpositionError("%s%s: buckets not cumulative" % (fname, rest))
        if not les or les[-1] != math.inf or g["count"] is None or g["sum"] is None:
            raise ExpositionError("%s%s: +Inf, _count or _sum missing" % (fname, rest))
        if counts[-1] != g["count"]:
            raise ExpositionError("%s%s: +Inf bucket is not _count" % (fname, rest))


def metrics(stack):
    r = requests.get(stack.admin_url + "/metrics", timeout=10)
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4"), r.headers
    return parse_exposition(r.text)


def samples(fams, metric, **labels):
    family = fams.get(metric) or fams.get(re.sub(r"_(bucket|sum|count)$", "", metric)) or {"samples": []}
    return [(l, v) for n, l, v in family["samples"] if n == metric and all(l.get(k) == x for k, x in labels.items())]


def stats(stack, path="/api/v1/stats"):
    r = stack.api("GET", path)
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json"), r.headers
    return r.json()


def assert_stats_shape(body):
    assert set(body) >= {"requests", "rps", "errors", "latencyMs", "since"}, body
    assert set(body["errors"]) == {"4xx", "5xx"}, body
    assert set(body["latencyMs"]) == {"p50", "p95", "p99", "avg"}, body
    assert isinstance(body["requests"], int)
    assert isinstance(body["since"], str) and body["since"].endswith("Z")
    for v in list(body["latencyMs"].values()) + [body["rps"]]:
        assert isinstance(v, (int, float)) and v >= 0


def settled_requests(stack, path):
    """The request count once the gateway's batches have all arrived."""
    last = None
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        r = stack.api("GET", path)
        n = r.json()["requests"] if r.status_code == 200 else 0
        if n == last:
            return n
        last = n
        pause(0.5)
    raise AssertionError("request count never settled")


def test_metrics_and_stats(stack):
    before_all = settled_requests(stack, "/api/v1/stats")
    before = settled_requests(stack, "/api/v1/stats/" + DEMO)
    sent = 25
    for i in range(sent):
        r = stack.get("/", host=DEMO)
        assert r.status_code == 200, r.text
    r = stack.get("/", host="nobody.invalid")
    assert r.status_code == 404
    wait_until(lambda: stats(stack, "/api/v1/stats/" + DEMO)["requests"] == before + sent, 10, what="demo.test counted")
    pause(0.3)
    demo = stats(stack, "/api/v1/stats/" + DEMO)
    assert demo["requests"] == before + sent, demo
    assert_stats_shape(demo)
    assert demo["errors"]["5xx"] == 0
    assert demo["latencyMs"]["p50"] > 0 and demo["latencyMs"]["p99"] >= demo["latencyMs"]["p50"]
    assert demo["rps"] > 0
    assert isinstance(demo["backends"], dict) and demo["backends"], demo
    assert sum(b["requests"] for b in demo["backends"].values()) == demo["requests"]
    for b in demo["backends"].values():
        assert_stats_shape(b)
    total = stats(stack)
    assert_stats_shape(total)
    assert "backends" not in total
    wait_until(lambda: stats(stack)["requests"] == before_all + sent + 1, 10, what="all counted")
    assert stats(stack)["errors"]["4xx"] >= 1
    r = stack.api("GET", "/api/v1/stats/unknown.invalid")
    assert r.status_code == 404 and r.headers["Content-Type"].startswith("application/json")
    assert r.json()["error"]["code"] == "not_found"

    # /metrics: strict, SPEC §10 complete, the vhost label is the route's vHost
    def every_actor():
        fams = metrics(stack)
        have = {(l["actor"], l["instance"]) for l, _ in samples(fams, "switchyard_process_cpu_seconds_total")}
        return all((k, "%s-e2e-0" % k) in have for k in ACTORS)

    wait_until(every_actor, 15, interval=0.5, what="process metrics of every actor")
    fams = metrics(stack)
    for name, (typ, labels) in SPEC_METRICS.items():
        assert name in fams, name
        assert fams[name]["type"] == typ, (name, fams[name]["type"])
        assert fams[name]["help"], name
        for sname, l, v in fams[name]["samples"]:
            assert labels <= set(l), (sname, l)
    for kind in ACTORS:
        inst = "%s-e2e-0" % kind
        for name in (
            "switchyard_process_cpu_seconds_total",
            "switchyard_process_resident_memory_bytes",
            "switchyard_process_open_fds",
            "switchyard_process_start_time_seconds",
        ):
            assert len(samples(fams, name, actor=kind, instance=inst)) == 1, (name, kind)
        # the actor's own counters, as its pong reports them
        assert samples(fams, "switchyard_actor_counter", actor=kind, instance=inst, name="dropped.malformed"), kind
    codes = samples(fams, "switchyard_requests_total", vhost=DEMO, code="200")
    assert len(codes) == 1 and codes[0][1] >= before + sent, codes
    assert samples(fams, "switchyard_requests_total", vhost="", code="404"), "no-route requests under vhost=\"\""
    vhosts = {l["vhost"] for l, _ in samples(fams, "switchyard_requests_total")}
    assert "nobody.invalid" not in vhosts, vhosts
    count = samples(fams, "switchyard_request_duration_seconds_count", vhost=DEMO)
    assert count and count[0][1] >= before + sent
    up = samples(fams, "switchyard_backend_up", vhost=DEMO)
    assert up and all(v == 1 for _, v in up), up


def test_stats_need_the_token(make_stack):
    token = "st4ts-e2e-token"
    s = make_stack(gateway_env={"ADMIN_TOKEN": token})
    for path in ("/api/v1/stats", "/api/v1/stats/" + DEMO):
        r = requests.get(s.admin_url + path, timeout=5)
        assert r.status_code == 401, (path, r.text)
        r = requests.get(s.admin_url + path, headers={"Authorization": "Bearer wrong"}, timeout=5)
        assert r.status_code == 401
        good = {"Authorization": "Bearer " + token}
        # demo.test is known once the gateway's batch of start-up requests arrived
        wait_until(lambda: requests.get(s.admin_url + path, headers=good, timeout=5).status_code == 200, 10, what=path)
        r = requests.get(s.admin_url + path, headers=good, timeout=5)
        assert r.status_code == 200, (path, r.text)
        assert_stats_shape(r.json())


def test_parser_is_strict():
    good = "# HELP x a \\\\ b\n# TYPE x gauge\nx{a=\"q\\\"\\n\"} 1\n"
    assert parse_exposition(good)["x"]["samples"][0][1] == {"a": 'q"\n'}
    bad = [
        "x 1\n",
        "# TYPE x gauge\nx 1",
        "# TYPE x gauge\nx 1\nx 2\n",
        "# TYPE x gauge\nx{a=\"\\t\"} 1\n",
        "# TYPE x gauge\n\nx 1\n",
        "# TYPE x gauge\nx one\n",
        "# TYPE x gauge\n# TYPE y gauge\nx 1\ny 1\nx{a=\"b\"} 1\n",
        "# TYPE h histogram\nh_bucket{le=\"1\"} 2\nh_bucket{le=\"+Inf\"} 1\nh_count 1\nh_sum 0\n",
    ]
    for text in bad:
        try:
            parse_exposition(text)
        except ExpositionError:
            continue
        raise AssertionError("accepted: %r" % text)


# ------------------------------------------------------------ ops/ dashboard and alert rules

OPS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "ops")


def rule_expressions(path):
    """The expr of every rule (single line or a `|` block), without a YAML library."""
    exprs, lines = [], open(path).read().split("\n")
    i = 0
    while i < len(lines):
        m = re.match(r"^(\s*)expr:\s*(.*)$", lines[i])
        i += 1
        if not m:
            continue
        if m.group(2).strip() not in ("|", ">", "|-", ">-"):
            exprs.append(m.group(2).strip())
            continue
        block = []
        while i < len(lines) and (not lines[i].strip() or len(lines[i]) - len(lines[i].lstrip()) > len(m.group(1))):
            block.append(lines[i].strip())
            i += 1
        exprs.append(" ".join(x for x in block if x))
    return exprs


def dashboard_expressions(path):
    dash = json.load(open(path))
    exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
    for var in dash.get("templating", {}).get("list", []):
        q = var.get("query")
        exprs.append(q["query"] if isinstance(q, dict) else q)
    return exprs


def test_ops_expressions_name_only_exposed_metrics(stack):
    rules = rule_expressions(os.path.join(OPS, "prometheus", "switchyard-alerts.yml"))
    board = dashboard_expressions(os.path.join(OPS, "grafana", "switchyard-dashboard.json"))
    assert len(rules) >= 4 and len(board) >= 10
    # some traffic so that every family has samples to check labels against
    for _ in range(3):
        stack.get("/", host=DEMO)
    wait_until(lambda: samples(metrics(stack), "switchyard_backend_requests_total"), 10, what="backend samples")
    fams = metrics(stack)
    used = set()
    for expr in rules + board:
        names = re.findall(r"\b(switchyard_[A-Za-z0-9_]+)(\{[^}]*\})?", expr)
        assert names, expr
        for name, matchers in names:
            family = name
            for suffix in ("_bucket", "_sum", "_count"):
                if name.endswith(suffix) and fams.get(name[: -len(suffix)], {}).get("type") == "histogram":
                    family = name[: -len(suffix)]
            assert family in fams, "%s (in %r) is not in /metrics" % (name, expr)
            used.add(family)
            labels = {l for s, ls, _ in fams[family]["samples"] if s == name for l in ls}
            for key in re.findall(r"([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)", matchers or ""):
                assert key in labels, "%s{%s} (in %r): no such label in /metrics" % (name, key, expr)
        for group in re.findall(r"\bby\s*\(([^)]*)\)", expr):
            for key in [k.strip() for k in group.split(",") if k.strip()]:
                if key == "le":
                    continue
                assert any(key in ls for f in used for _, ls, _ in fams[f]["samples"]), (key, expr)
    for must in ("switchyard_backend_up", "switchyard_requests_total", "switchyard_process_start_time_seconds"):
        assert must in used
