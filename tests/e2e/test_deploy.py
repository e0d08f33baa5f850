"""test_deploy.py - the deployment files checked against each other, the contract and
the binaries: Dockerfile, compose.yaml, deploy/k8s (docs/deploy.md).

No Docker engine and no cluster run here, so:
- compose.yaml is resolved by Debian's `docker-compose config` (it must exit 0; a missing
  docker-compose FAILS the test: run scripts/deps.sh test) and checked: every actor is a
  service, nothing is pinned (no container_name, no fixed host port), every setting is a
  SPEC §2 name or one documented in README.md's configuration table (or a BUS_CURVE_*
  setting of the bus) and known to the program it is given to, BUS_PEERS_<KIND> name
  services that run that kind, health checks everywhere;
- deploy/k8s is parsed and checked the same way, and against compose.yaml (ports, probes,
  settings), with a headless `<kind>-bus` Service per kind, a PodDisruptionBudget for the
  gateways and placeholder-only Secrets (each refused by the actor that reads it);
- the Dockerfile's runtime stage installs the libraries the binaries link (readelf) and
  no build package, and lays out what apid and the demo backend look for;
- the command lines the containers run are run here against the local binaries
  (SWITCHYARD_BIN_DIR, laid out as the image lays them out): the `keys` one-shot, every
  long-running service scaled as `docker compose up --scale router=2 --scale balancer=2
  --scale chatd=2 --scale gateway=2` with its compose environment (addresses moved to
  127.0.0.1 and free ports, DNS peers to the matching tcp lists, PostgreSQL and Redis
  local), every health check command until it passes, the `setup` one-shot (demo routes),
  requests through every gateway, SIGTERM with exit 0; then the same with the
  Kubernetes environment and probes.
"""

import base64
import json
import os
import random
import re
import shutil
import socket
import subprocess
import sys
import tempfile

import pytest
import requests
import yaml

sys.path.insert(0, os.path.dirname(__file__))

from pg import PgTmp  # noqa: E402
from stack import BIN_DIR, REPO, Proc, sanitizer_env, wait_until  # noqa: E402

SHARED = os.path.join(os.path.dirname(REPO), "shared")
COMPOSE_FILE = os.path.join(REPO, "compose.yaml")
K8S_DIR = os.path.join(REPO, "deploy", "k8s")
DOCKERFILE = os.path.join(REPO, "Dockerfile")

ACTORS = ("gateway", "router", "balancer", "healthd", "statsd", "chatd", "apid")
PROGRAMS = ACTORS + ("switchyard", "demo-backend")
# `docker compose up --scale ...` of issue 13
SCALE = {"router": 2, "balancer": 2, "chatd": 2, "gateway": 2}
ONE_SHOTS = ("keys", "setup")
IMAGE_PREFIX = "/usr/local"  # where the Dockerfile installs (bin/, share/switchyard/)
# The bus's CURVE settings (docs/bus-security.md); README's table lists them once CURVE lands.
CURVE_NAMES = {
    "BUS_CURVE_SERVER_SECRET",
    "BUS_CURVE_SERVER_PUBLIC",
    "BUS_CURVE_CLIENT_SECRET",
    "BUS_CURVE_CLIENT_PUBLIC",
    "BUS_CURVE_CLIENTS",
}
# In debian:bookworm-slim already (Essential / required)
BASE_IMAGE_PACKAGES = {"libc6", "libcrypt1", "libgcc-s1", "zlib1g"}
PLACEHOLDER = re.compile(r"^<REPLACE\b[^>]*>$")
Z85_KEY = re.compile(r"^[0-9a-zA-Z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}$")
START_TIMEOUT = 25.0  # a whole scaled stack under ASan, health checks passing


# --------------------------------------------------------------------------- helpers


def _read(path):
    with open(path, encoding="utf-8") as f:
        return f.read()


def _section(text, heading):
    """The text of the markdown section whose heading line matches `heading` (a regex)."""
    m = re.search(r"^(#+) " + heading + r"\s*$", text, re.M)
    assert m, "no section %r" % heading
    level = len(m.group(1))
    rest = text[m.end() :]
    end = re.search(r"^#{1,%d} " % level, rest, re.M)
    return rest[: end.start()] if end else rest


def _table_names(section):
    """Setting names in the first column of a markdown table: `NAME`, `A`, `B`, `X_<KIND>`."""
    names = set()
    for line in section.splitlines():
        if not line.startswith("| `"):
            continue
        first = line.split("|")[1]
        names.update(re.findall(r"`([A-Z][A-Z0-9_<>]*)`", first))
    return names


def _name_matcher(names):
    """A predicate for setting names; `<KIND>` in a name stands for any actor kind."""
    exact = {n for n in names if "<" not in n}
    patterns = []
    for n in names - exact:
        rx = re.escape(n).replace(re.escape("<KIND>"), "(%s)" % "|".join(k.upper() for k in ACTORS))
        rx = re.sub(r"\\<[A-Z_]+\\>|<[A-Z_]+>", "[A-Z0-9_]+", rx)
        patterns.append(re.compile("^" + rx + "$"))
    return lambda name: name in exact or any(p.match(name) for p in patterns)


def _known_settings(program):
    """The settings (environment names) `program --help` lists, for `switchyard CMD` too."""
    argv = [os.path.join(BIN_DIR, program.split()[0])] + program.split()[1:] + ["--help"]
    out = subprocess.run(argv, capture_output=True, text=True, timeout=10, stdin=subprocess.DEVNULL).stdout
    return set(re.findall(r"\s([A-Z][A-Z0-9_]{2,})\s+\(default:", out))


def _addr_port(value):
    return int(value.rsplit(":", 1)[1])


def _host_port(value):
    m = re.match(r"^tcp://([^:]+):(\d+)$", value)
    assert m, "not tcp://HOST:PORT: %r" % value
    return m.group(1), int(m.group(2))


def _compose_ports(spec):
    """(host_ip, published, target) of one entry of a service's `ports` (either syntax)."""
    if isinstance(spec, dict):
        return spec.get("host_ip"), spec.get("published"), int(spec["target"])
    text = str(spec).split("/", 1)[0]
    parts = text.split(":")
    if len(parts) == 1:
        return None, None, int(parts[0])
    if len(parts) == 2:
        return None, parts[0] or None, int(parts[1])
    return parts[0] or None, parts[1] or None, int(parts[2])


class _Ports:
    """Free ports on 127.0.0.1, held (bound, not listening) until release(), so that two
    picks never meet; taken below the kernel's ephemeral range, so that no outgoing
    connection of another process (tests running beside this one) takes one meanwhile."""

    def __init__(self):
        try:
            with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
                ephemeral = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            ephemeral = 32768
        self.low, self.high = 10000, max(10100, ephemeral - 1)
        self.held = []
        self.rng = random.Random()

    def _hold(self, port):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            sock.close()
            return False
        self.held.append(sock)
        return True

    def one(self):
        for _ in range(1000):
            p = self.rng.randrange(self.low, self.high)
            if self._hold(p):
                return p
        raise AssertionError("no free port in %d-%d" % (self.low, self.high))

    def pair(self):
        """A port p with p + 1 free too (a bus: ROUTER on p, XPUB on p + 1)."""
        for _ in range(1000):
            p = self.rng.randrange(self.low, self.high - 1)
            if self._hold(p):
                if self._hold(p + 1):
                    return p
                self.held.pop().close()
        raise AssertionError("no two consecutive free ports in %d-%d" % (self.low, self.high))

    def release(self):
        for sock in self.held:
            sock.close()
        self.held = []


def _dockerfile_stages():
    """[(from_line, [instruction lines])] with continuation lines joined, comments dropped."""
    lines, cur = [], ""
    for raw in _read(DOCKERFILE).splitlines():
        s = raw.strip()
        if not s or s.startswith("#"):
            continue
        cur = (cur + " " + s[:-1]) if s.endswith("\\") else (cur + " " + s)
        if not s.endswith("\\"):
            lines.append(cur.strip())
            cur = ""
    stages = []
    for line in lines:
        if line.upper().startswith("FROM "):
            stages.append((line, []))
        elif stages:
            stages[-1][1].append(line)
    return stages


def _apt_packages(instructions):
    pkgs = []
    for line in instructions:
        for m in re.finditer(r"apt-get install ([^&;|]*)", line):
            pkgs += [w for w in m.group(1).split() if not w.startswith("-")]
    return pkgs


def _image_copies():
    """(source in the build context or build stage, destination) of the runtime stage's COPYs."""
    copies = []
    for line in _dockerfile_stages()[-1][1]:
        if not line.upper().startswith("COPY "):
            continue
        words = [w for w in line.split()[1:] if not w.startswith("--")]
        from_build = "--from=" in line
        for src in words[:-1]:
            copies.append((src, words[-1], from_build))
    return copies


def _linked_packages(paths):
    """Debian packages of the shared libraries the binaries name (ELF NEEDED)."""
    sonames = set()
    for path in paths:
        out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True, check=True).stdout
        sonames.update(re.findall(r"\(NEEDED\).*\[(.+)\]", out))
    cache = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True, check=True).stdout
    where, native = {}, set()
    for line in cache.splitlines():
        m = re.match(r"\s*(\S+) \(([^)]*)\) => (\S+)", line)
        if not m or m.group(1) in native:
            continue
        if "64" in m.group(2):  # this machine's own ABI (x86-64, AArch64) before any other
            where[m.group(1)] = m.group(3)
            native.add(m.group(1))
        else:
            where.setdefault(m.group(1), m.group(3))
    pkgs = {}
    for so in sorted(sonames):
        assert so in where, "%s: not in ldconfig's cache" % so
        path = where[so]
        real = os.path.realpath(path)
        candidates = [real, path]
        for p in list(candidates):
            candidates += [p[4:]] if p.startswith("/usr/") else ["/usr" + p]
        pkg = None
        for c in candidates:
            r = subprocess.run(["dpkg", "-S", c], capture_output=True, text=True)
            if r.returncode == 0:
                pkg = r.stdout.split(":", 1)[0].strip()
                break
        assert pkg, "%s (%s): no Debian package owns it" % (so, path)
        pkgs[so] = pkg
    return pkgs


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def compose():
    """compose.yaml as `docker-compose config` resolves it (interpolation with defaults)."""
    exe = shutil.which("docker-compose")
    if exe is None:
        pytest.fail("docker-compose is missing: run scripts/deps.sh test (Debian's docker-compose)", pytrace=False)
    env = {k: v for k, v in os.environ.items() if k not in ("ADMIN_TOKEN", "POSTGRES_PASSWORD")}
    env.pop("COMPOSE_FILE", None)
    r = subprocess.run(
        [exe, "-f", COMPOSE_FILE, "config"], cwd=REPO, env=env, capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 0, "docker-compose config exited %d:\n%s" % (r.returncode, r.stderr)
    return yaml.safe_load(r.stdout)


@pytest.fixture(scope="module")
def k8s():
    """Every document of deploy/k8s, as {kind: {name: doc}}, and the kustomization."""
    kust = yaml.safe_load(_read(os.path.join(K8S_DIR, "kustomization.yaml")))
    files = sorted(f for f in os.listdir(K8S_DIR) if f.endswith((".yaml", ".yml")) and f != "kustomization.yaml")
    assert sorted(kust["resources"]) == files, "kustomization.yaml lists %s, the files are %s" % (
        kust["resources"],
        files,
    )
    by_kind = {}
    for f in files:
        for doc in yaml.safe_load_all(_read(os.path.join(K8S_DIR, f))):
            if doc is None:
                continue
            name = doc["metadata"]["name"]
            assert name not in by_kind.setdefault(doc["kind"], {}), "%s %s defined twice" % (doc["kind"], name)
            by_kind[doc["kind"]][name] = doc
    return by_kind


@pytest.fixture(scope="module")
def allowed():
    """Predicate: a setting name SPEC §2 or README's configuration table documents, or CURVE's."""
    spec = _table_names(_section(_read(os.path.join(SHARED, "SPEC.md")), r"2\. Configuration"))
    readme = _table_names(_section(_read(os.path.join(REPO, "README.md")), r"Configuration"))
    assert "GATEWAY_HTTP_ADDR" in spec and "REGION" in readme, "the configuration tables did not parse"
    return _name_matcher(spec | readme | CURVE_NAMES)


def _image_services(compose):
    return {n: s for n, s in compose["services"].items() if s.get("image", "").startswith("switchyard")}


def _kind_of(svc):
    cmd = svc.get("command") or []
    return cmd[0] if cmd and cmd[0] in ACTORS else None


def _actor_services(compose):
    return {n: s for n, s in _image_services(compose).items() if _kind_of(s)}


def _dns_names(compose):
    """DNS name -> services answering to it (the service name and its network aliases)."""
    names = {}
    for n, s in compose["services"].items():
        names.setdefault(n, []).append(n)
        for net in (s.get("networks") or {}).values():
            for alias in (net or {}).get("aliases") or []:
                names.setdefault(alias, []).append(n)
    return names


def _deployments(k8s):
    """kind -> its Deployment (the one whose container runs that actor)."""
    out = {}
    for d in k8s.get("Deployment", {}).values():
        c = d["spec"]["template"]["spec"]["containers"][0]
        assert c.get("command") and c["command"][0] in ACTORS, "Deployment %s runs %r" % (
            d["metadata"]["name"],
            c.get("command"),
        )
        assert c["command"][0] not in out, "two Deployments run %s" % c["command"][0]
        out[c["command"][0]] = d
    return out


def _pod_labels(dep):
    return dep["spec"]["template"]["metadata"]["labels"]


def _selects(selector, labels):
    return all(labels.get(k) == v for k, v in selector.items())


def _configmap_env(k8s):
    (cm,) = k8s["ConfigMap"].values()
    return {k: str(v) for k, v in cm["data"].items()}


def _secret_values(secret):
    vals = dict(secret.get("stringData") or {})
    for k, v in (secret.get("data") or {}).items():
        vals[k] = base64.b64decode(v).decode()
    return vals


def _container_port(container, port):
    if isinstance(port, int):
        return port
    for p in container.get("ports", []):
        if p.get("name") == port:
            return p["containerPort"]
    raise AssertionError("no container port named %r" % port)


# --------------------------------------------------------------------------- compose


def test_compose_services(compose):
    services = compose["services"]
    actors = _actor_services(compose)
    kinds = {_kind_of(s) for s in actors.values()}
    assert kinds == set(ACTORS), "actors without a service: %s" % (set(ACTORS) - kinds)
    for name in ACTORS:
        assert name in services and _kind_of(services[name]) == name, "service %s must run %s" % (name, name)
    for name in ("redis", "postgres", "keys", "setup"):
        assert name in services, "no service %s" % name
    demo = [s for s in services.values() if (s.get("command") or [None])[0] == "demo-backend"]
    regions = sorted(s["command"][s["command"].index("--region") + 1] for s in demo)
    assert regions == ["1", "2"], "two demo backends, regions 1 and 2 (as switchyard run): %s" % regions
    builds = {json.dumps(s.get("build"), sort_keys=True) for s in _image_services(compose).values()}
    images = {s["image"] for s in _image_services(compose).values()}
    assert len(images) == 1 and len(builds) == 1, "one image for every program: %s %s" % (images, builds)
    build = next(iter(_image_services(compose).values()))["build"]
    assert os.path.realpath(build["context"]) == REPO and build.get("dockerfile", "Dockerfile") == "Dockerfile"


def test_compose_nothing_pinned(compose):
    """--scale works by DNS alone: no container_name, no fixed host port, no INSTANCE_ID."""
    for name, svc in compose["services"].items():
        assert "container_name" not in svc, "%s: container_name" % name
        assert "hostname" not in svc, "%s: hostname (INSTANCE_ID defaults to hostname-pid)" % name
        for spec in svc.get("ports") or []:
            host_ip, published, target = _compose_ports(spec)
            assert not published, "%s: fixed host port %s for %s" % (name, published, target)
        assert "INSTANCE_ID" not in (svc.get("environment") or {}), "%s: INSTANCE_ID" % name
    gw = compose["services"]["gateway"]
    env = gw["environment"]
    targets = {_compose_ports(p)[2] for p in gw.get("ports") or []}
    wanted = {_addr_port(env[k]) for k in ("GATEWAY_HTTP_ADDR", "GATEWAY_HTTPS_ADDR", "GATEWAY_ADMIN_ADDR")}
    assert targets == wanted, "gateway publishes %s, listens on %s" % (targets, wanted)
    admin = [p for p in gw["ports"] if _compose_ports(p)[2] == _addr_port(env["GATEWAY_ADMIN_ADDR"])]
    assert _compose_ports(admin[0])[0] == "127.0.0.1", "the admin port is published on the host's loopback only"


def test_compose_settings(compose, allowed):
    """Every setting is documented and known to the program that gets it."""
    known = {}
    for name, svc in _image_services(compose).items():
        env = svc.get("environment") or {}
        bad = sorted(k for k in env if not allowed(k))
        assert not bad, "%s: settings documented nowhere (SPEC §2, README's table): %s" % (name, bad)
        cmd = svc.get("command") or []
        program = cmd[0] if cmd and cmd[0] in PROGRAMS else ("switchyard routes" if name == "setup" else None)
        if program and env:
            if program not in known:
                known[program] = _known_settings(program)
            unknown = sorted(k for k in env if k not in known[program])
            assert not unknown, "%s: %s does not read %s" % (name, program, unknown)
        assert "BUS_INSECURE" not in env, "%s: BUS_INSECURE (the bus is CURVE)" % name
    for name, svc in _actor_services(compose).items():
        env = svc["environment"]
        assert env.get("BUS_BIND") == "tcp://0.0.0.0:7100", "%s: BUS_BIND %r" % (name, env.get("BUS_BIND"))
        for k in ACTORS:
            assert "BUS_PEERS_%s" % k.upper() in env, "%s: no BUS_PEERS_%s" % (name, k.upper())
        for k in ("SERVER_SECRET", "SERVER_PUBLIC", "CLIENT_SECRET", "CLIENT_PUBLIC"):
            value = env.get("BUS_CURVE_" + k, "")
            assert value.startswith("file:/keys/"), "%s: BUS_CURVE_%s=%r" % (name, k, value)
        assert "keys:/keys:ro" in (svc.get("volumes") or []), "%s: the keys volume, read-only" % name
        dep = (svc.get("depends_on") or {}).get("keys") or {}
        assert dep.get("condition") == "service_completed_successfully", "%s: must wait for keys" % name
    gw = compose["services"]["gateway"]["environment"]
    admin_host = gw["GATEWAY_ADMIN_ADDR"].rsplit(":", 1)[0]
    if admin_host not in ("127.0.0.1", "::1", "[::1]", "localhost"):
        assert gw.get("ADMIN_TOKEN"), "a non-loopback admin listener needs ADMIN_TOKEN (SPEC §2)"
    assert compose["services"]["setup"]["environment"]["ADMIN_TOKEN"] == gw["ADMIN_TOKEN"]
    assert "${ADMIN_TOKEN:-" in _read(COMPOSE_FILE), "ADMIN_TOKEN comes from the environment"
    assert compose["services"]["router"]["environment"]["DATABASE_URL"].startswith("postgres://")


def test_compose_peers_exist(compose):
    """BUS_PEERS_<KIND>=dns:NAME:PORT: NAME answers with services that run KIND on PORT."""
    names = _dns_names(compose)
    services = compose["services"]
    for name, svc in _actor_services(compose).items():
        for key, value in svc["environment"].items():
            if not key.startswith("BUS_PEERS_"):
                continue
            kind = key[len("BUS_PEERS_") :].lower()
            m = re.match(r"^dns:([a-z0-9-]+):(\d+)$", value)
            assert m, "%s: %s=%r is not dns:NAME:PORT" % (name, key, value)
            targets = names.get(m.group(1))
            assert targets, "%s: %s names %r, no such service" % (name, key, m.group(1))
            for t in targets:
                runs = _kind_of(services[t])
                assert runs == kind, "%s: %s reaches %s, which runs %r" % (name, key, t, runs)
                bind = services[t]["environment"]["BUS_BIND"]
                assert _host_port(bind)[1] == int(m.group(2)), "%s: %s port != %s's BUS_BIND" % (name, key, t)


def _ping_check(test, kind, bus_port):
    """True when a health check is `switchyard ping` at the container's own actor only."""
    cmd = test[1:]
    unset = {cmd[i + 1] for i, w in enumerate(cmd[:-1]) if w == "-u"}
    return (
        cmd[0] == "env"
        and unset == {"BUS_PEERS_%s" % k.upper() for k in ACTORS}
        and "switchyard" in cmd
        and cmd[cmd.index("switchyard") + 1] == "ping"
        and "--bus-peers-%s" % kind in cmd
        and cmd[cmd.index("--bus-peers-%s" % kind) + 1] == "tcp://127.0.0.1:%d" % bus_port
        and sum(1 for w in cmd if w.startswith("--bus-peers-")) == 1
    )


def test_compose_healthchecks(compose):
    for name, svc in compose["services"].items():
        if name in ONE_SHOTS:
            assert svc.get("restart") == "no", "%s: a one-shot must not restart" % name
            continue
        test = (svc.get("healthcheck") or {}).get("test")
        assert test and test[0] in ("CMD", "CMD-SHELL"), "%s: no health check" % name
    for name, svc in _actor_services(compose).items():
        kind = _kind_of(svc)
        test = svc["healthcheck"]["test"]
        if kind == "gateway":
            admin = _addr_port(svc["environment"]["GATEWAY_ADMIN_ADDR"])
            text = " ".join(test)
            assert "/dev/tcp/127.0.0.1/%d" % admin in text and "GET /ready " in text, "gateway: /ready, admin port"
        else:
            bus = _host_port(svc["environment"]["BUS_BIND"])[1]
            assert _ping_check(test, kind, bus), "%s: not `switchyard ping` at its own actor: %s" % (name, test)
    setup = compose["services"]["setup"]["depends_on"]
    assert setup["gateway"]["condition"] == "service_healthy", "setup waits for the gateway's /ready"


def _script_programs(cmd):
    """Programs of ours a command line runs: argv[0], or those named in a sh -c script."""
    if cmd[0] in ("sh", "bash") and "-c" in cmd:
        script = cmd[cmd.index("-c") + 1]
        return [p for p in PROGRAMS if re.search(r"(^|[\s;&|(])%s(\s|$)" % re.escape(p), script)]
    if cmd[0] == "env":
        return [w for w in cmd if w in PROGRAMS][:1]
    return [cmd[0]]


def test_compose_commands_name_binaries(compose):
    """Each command and health check of the image names a program that exists and that the
    Dockerfile installs."""
    installed = set()
    for src, dst, from_build in _image_copies():
        if from_build and src.startswith("/src/bin/"):
            installed.add(os.path.basename(src))
    for name, svc in _image_services(compose).items():
        lines = [svc.get("command") or []]
        test = (svc.get("healthcheck") or {}).get("test") or []
        if test and test[0] == "CMD":
            lines.append(test[1:])
        assert svc.get("command"), "%s: no command (the image's default is --help)" % name
        for cmd in lines:
            programs = _script_programs(cmd)
            if cmd[0] == "bash" and "/dev/tcp/" in " ".join(cmd):
                continue  # an HTTP check in bash itself
            assert programs, "%s: %s runs none of our programs" % (name, cmd)
            for p in programs:
                assert p in installed, "%s: %s is not installed by the Dockerfile" % (name, p)
                assert os.access(os.path.join(BIN_DIR, p), os.X_OK), "%s: %s not in %s" % (name, p, BIN_DIR)


# --------------------------------------------------------------------------- Dockerfile


def test_dockerfile():
    stages = _dockerfile_stages()
    assert len(stages) == 2, "two stages (build, runtime): %s" % [s[0] for s in stages]
    (build_from, build), (run_from, runtime) = stages
    assert re.match(r"FROM debian:bookworm-slim AS build$", build_from, re.I), build_from
    assert re.match(r"FROM debian:bookworm-slim$", run_from, re.I), run_from
    assert any("scripts/deps.sh build" in line for line in build), "build stage: scripts/deps.sh build"
    assert any(line.startswith("RUN make") and "build-rel" in line for line in build), "build stage: make build-rel"
    everything = build + runtime
    assert not any(line.upper().startswith("HEALTHCHECK") for line in everything), "health checks are per service"
    assert any(re.match(r"USER switchyard\b", line) for line in runtime), "runtime runs as user switchyard"
    assert any("useradd" in line and "switchyard" in line for line in runtime)

    deps = _read(os.path.join(REPO, "scripts", "deps.sh"))
    build_pkgs = set(re.search(r"build_pkgs=\(([^)]*)\)", deps).group(1).split())
    runtime_pkgs = set(_apt_packages(runtime))
    tools = sorted(p for p in runtime_pkgs if p in build_pkgs or p.endswith("-dev"))
    assert not tools, "build packages in the runtime image: %s" % tools

    copies = _image_copies()
    bins = {os.path.basename(s): d for s, d, fb in copies if fb and s.startswith("/src/bin/")}
    assert set(bins) == set(PROGRAMS), "programs installed: %s" % sorted(bins)
    assert set(bins.values()) == {IMAGE_PREFIX + "/bin/"}
    dests = {s.rstrip("/"): d.rstrip("/") for s, d, fb in copies if not fb}
    # apid: share/switchyard/web beside its binary's folder (apid/README.md, APID_WEB_DIR)
    assert dests.get("web") == IMAGE_PREFIX + "/share/switchyard/web", dests
    assert os.path.isdir(os.path.join(REPO, "web", "dashboard"))
    assert dests.get("client") == IMAGE_PREFIX + "/share/switchyard/client", dests

    # the runtime libraries: every package of a library the release binaries link
    rel = os.path.join(REPO, "bin")
    paths = [os.path.join(rel, p) for p in PROGRAMS]
    missing = [p for p in paths if not os.access(p, os.X_OK)]
    assert not missing, "release binaries missing (make build-rel): %s" % missing
    linked = _linked_packages(paths)
    present = runtime_pkgs | BASE_IMAGE_PACKAGES
    lacking = sorted({"%s (%s)" % (pkg, so) for so, pkg in linked.items() if pkg not in present})
    assert not lacking, "runtime stage lacks the packages of linked libraries: %s" % lacking

    ignore = _read(os.path.join(REPO, ".dockerignore")).split()
    for out in ("bin", "build", ".env", "var", "run"):
        assert out in ignore, ".dockerignore must keep %s out of the build context" % out


# --------------------------------------------------------------------------- Kubernetes


def test_k8s_actors(k8s, compose):
    deps = _deployments(k8s)
    assert set(deps) == set(ACTORS), "Deployments: %s" % sorted(deps)
    services = k8s["Service"]
    bus_port = _host_port(_configmap_env(k8s)["BUS_BIND"])[1]
    for kind, dep in deps.items():
        labels = _pod_labels(dep)
        assert _selects(dep["spec"]["selector"]["matchLabels"], labels)
        svc = services.get("%s-bus" % kind)
        assert svc, "no headless Service %s-bus" % kind
        assert svc["spec"].get("clusterIP") == "None", "%s-bus must be headless" % kind
        ports = {(p["port"], p.get("targetPort", p["port"])) for p in svc["spec"]["ports"]}
        assert ports == {(bus_port, bus_port), (bus_port + 1, bus_port + 1)}, "%s-bus ports %s" % (kind, ports)
        sel = svc["spec"]["selector"]
        chosen = [k for k, d in deps.items() if _selects(sel, _pod_labels(d))]
        assert chosen == [kind], "%s-bus selects %s" % (kind, chosen)
        pod = dep["spec"]["template"]["spec"]
        c = pod["containers"][0]
        cports = {p["containerPort"] for p in c.get("ports", [])}
        assert {bus_port, bus_port + 1} <= cports, "%s: bus ports" % kind
        mounts = {m["mountPath"]: m for m in c.get("volumeMounts", [])}
        assert mounts.get("/keys", {}).get("readOnly") is True, "%s: the CURVE keys at /keys, read-only" % kind
        vols = {v["name"]: v for v in pod.get("volumes", [])}
        assert vols[mounts["/keys"]["name"]]["secret"]["secretName"] in k8s["Secret"]
        assert pod["securityContext"].get("runAsNonRoot") is True
        assert pod.get("enableServiceLinks") is False, "%s: no Service link variables in the env" % kind


def test_k8s_settings(k8s, compose, allowed):
    cm = _configmap_env(k8s)
    bad = sorted(k for k in cm if not allowed(k))
    assert not bad, "ConfigMap: settings documented nowhere: %s" % bad
    for k in ("INSTANCE_ID", "BUS_INSECURE"):
        assert k not in cm, "ConfigMap: %s" % k
    secrets = {n: _secret_values(s) for n, s in k8s["Secret"].items()}
    bus_port = _host_port(cm["BUS_BIND"])[1]
    assert cm["BUS_BIND"] == compose["services"]["router"]["environment"]["BUS_BIND"]
    for kind in ACTORS:
        value = cm.get("BUS_PEERS_%s" % kind.upper())
        assert value == "dns:%s-bus:%d" % (kind, bus_port), "BUS_PEERS_%s=%r" % (kind.upper(), value)
        assert "%s-bus" % kind in k8s["Service"]
    # the same settings as compose where both have them (the bus, the gateway's listeners)
    comp = compose["services"]["gateway"]["environment"]
    for k, v in comp.items():
        if k.startswith(("BUS_CURVE_", "GATEWAY_")) or k in ("REGION", "LOG_LEVEL"):
            assert cm.get(k) == str(v), "ConfigMap %s=%r, compose %r" % (k, cm.get(k), v)
    for k in ("SERVER_SECRET", "SERVER_PUBLIC", "CLIENT_SECRET", "CLIENT_PUBLIC"):
        assert cm["BUS_CURVE_" + k].startswith("file:/keys/")
    key_files = {os.path.basename(v[len("file:") :]) for k, v in cm.items() if k.startswith("BUS_CURVE_")}
    for kind, dep in _deployments(k8s).items():
        c = dep["spec"]["template"]["spec"]["containers"][0]
        assert [e["configMapRef"]["name"] for e in c.get("envFrom", [])] == list(k8s["ConfigMap"]), kind
        known = _known_settings(kind)
        for e in c.get("env", []):
            assert allowed(e["name"]), "%s: %s documented nowhere" % (kind, e["name"])
            assert e["name"] in known, "%s does not read %s" % (kind, e["name"])
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if ref:
                assert ref["key"] in secrets.get(ref["name"], {}), "%s: %s from no secret key" % (kind, e["name"])
        pod = dep["spec"]["template"]["spec"]
        vol = [v for v in pod["volumes"] if "secret" in v][0]
        assert set(secrets[vol["secret"]["secretName"]]) == key_files, "the key Secret holds %s" % key_files
        if kind == "gateway":
            names = {e["name"] for e in c.get("env", [])}
            assert "ADMIN_TOKEN" in names, "a non-loopback admin listener needs ADMIN_TOKEN"
        if kind == "router":
            assert "DATABASE_URL" in {e["name"] for e in c.get("env", [])}, "routers share PostgreSQL"


def test_k8s_probes_and_ports(k8s, compose):
    cm = _configmap_env(k8s)
    deps = _deployments(k8s)
    admin = _addr_port(cm["GATEWAY_ADMIN_ADDR"])
    for kind, dep in deps.items():
        c = dep["spec"]["template"]["spec"]["containers"][0]
        ready, live = c.get("readinessProbe"), c.get("livenessProbe")
        assert ready and live, "%s: readiness and liveness probes" % kind
        if kind == "gateway":
            assert ready["httpGet"]["path"] == "/ready" and live["httpGet"]["path"] == "/live"
            for probe in (ready, live):
                assert _container_port(c, probe["httpGet"]["port"]) == admin, "gateway probes on the admin port"
        else:
            test = compose["services"][kind]["healthcheck"]["test"]
            for probe in (ready, live):
                assert probe["exec"]["command"] == test[1:], "%s: probe != compose health check" % kind
    # the gateway's ports are compose's
    gw = deps["gateway"]["spec"]["template"]["spec"]["containers"][0]
    cports = {p["containerPort"] for p in gw["ports"]}
    compose_ports = {_compose_ports(p)[2] for p in compose["services"]["gateway"]["ports"]}
    bus = _host_port(cm["BUS_BIND"])[1]
    assert cports == compose_ports | {bus, bus + 1}, "gateway ports %s, compose %s" % (cports, compose_ports)
    for k in ("GATEWAY_HTTP_ADDR", "GATEWAY_HTTPS_ADDR", "GATEWAY_ADMIN_ADDR"):
        assert _addr_port(cm[k]) in cports
    public = [s for n, s in k8s["Service"].items() if s["spec"].get("type") in ("LoadBalancer", "NodePort")]
    assert len(public) == 1, "one public Service for the gateways"
    (public,) = public
    assert _selects(public["spec"]["selector"], _pod_labels(deps["gateway"]))
    targets = {_container_port(gw, p.get("targetPort", p["port"])) for p in public["spec"]["ports"]}
    assert targets == {_addr_port(cm["GATEWAY_HTTP_ADDR"]), _addr_port(cm["GATEWAY_HTTPS_ADDR"])}, targets
    # a PodDisruptionBudget for the gateways, and only them
    pdbs = list(k8s.get("PodDisruptionBudget", {}).values())
    assert pdbs, "no PodDisruptionBudget"
    for pdb in pdbs:
        sel = pdb["spec"]["selector"]["matchLabels"]
        assert [k for k, d in deps.items() if _selects(sel, _pod_labels(d))] == ["gateway"]
        assert "minAvailable" in pdb["spec"] or "maxUnavailable" in pdb["spec"]
    assert deps["gateway"]["spec"]["replicas"] >= 2, "a PDB of one gateway blocks every drain"


def test_k8s_secrets_are_placeholders(k8s):
    for name, secret in k8s["Secret"].items():
        for key, value in _secret_values(secret).items():
            assert PLACEHOLDER.match(value), "Secret %s/%s holds %r, not <REPLACE...>" % (name, key, value)
            assert not Z85_KEY.match(value.strip()), "Secret %s/%s looks like a real key" % (name, key)


def test_k8s_placeholders_fail_closed(k8s, tmp_path):
    """An unedited Secret stops the actor that reads it (exit 2), never runs with it."""
    env_secret = _secret_values(k8s["Secret"]["switchyard-env"])
    checked = set()
    for kind, dep in _deployments(k8s).items():
        c = dep["spec"]["template"]["spec"]["containers"][0]
        for e in c.get("env", []):
            ref = e.get("valueFrom", {}).get("secretKeyRef")
            if not ref or ref["name"] != "switchyard-env":
                continue
            # the placeholder alone, so that the refusal is about it and nothing else
            env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LOG_FORMAT": "json"}
            env.update(sanitizer_env())
            env[e["name"]] = env_secret[ref["key"]]
            r = subprocess.run(
                [os.path.join(BIN_DIR, kind)], env=env, cwd=str(tmp_path), capture_output=True, text=True, timeout=20
            )
            assert r.returncode == 2 and e["name"] in r.stderr, "%s with the placeholder %s: exit %d\n%s" % (
                kind,
                e["name"],
                r.returncode,
                r.stderr[-800:],
            )
            checked.add(e["name"])
    assert checked == set(env_secret), "placeholders not tried: %s" % (set(env_secret) - checked)


# --------------------------------------------------------------------------- the command lines, run


def _run_keys(compose, keydir, env):
    cmd = [w.replace("$$", "$") for w in compose["services"]["keys"]["command"]]
    cmd = [re.sub(r"/keys(?=/|\b)", keydir, w) for w in cmd]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)


class _Image:
    """The runtime image's layout over the local binaries: PREFIX/bin (links to BIN_DIR's
    programs, so apid looks for PREFIX/share/switchyard/web as in the image) and PREFIX/share
    from the Dockerfile's COPY lines."""

    def __init__(self, root):
        self.prefix = os.path.join(root, "usr-local")
        os.makedirs(os.path.join(self.prefix, "bin"))
        for src, dst, from_build in _image_copies():
            assert dst.startswith(IMAGE_PREFIX + "/"), dst
            local = os.path.join(self.prefix, dst[len(IMAGE_PREFIX) + 1 :])
            if from_build:
                prog = os.path.join(BIN_DIR, os.path.basename(src))
                target = os.path.join(local, os.path.basename(src))
                try:
                    os.link(prog, target)
                except OSError:
                    shutil.copy2(prog, target)
            else:
                shutil.copytree(os.path.join(REPO, src.rstrip("/")), local.rstrip("/"), symlinks=True)
        self.bin = os.path.join(self.prefix, "bin")

    def path(self, text):
        return text.replace(IMAGE_PREFIX + "/", self.prefix + "/")


class _Instance:
    """One container: its service, command, environment and port mapping (container -> local)."""

    def __init__(self, service, index, command, env, ports, checks, workdir):
        self.service = service
        self.index = index
        self.name = "%s.%d" % (service, index + 1)
        self.command = command
        self.env = env
        self.ports = ports
        self.checks = checks  # [("cmd", argv) | ("http", port, path)]
        self.workdir = workdir
        self.proc = None


class _LocalStack:
    """Containers as local processes: rewrite what a container sees (0.0.0.0:PORT, DNS
    names, /keys, the image's paths) into what works on this machine."""

    def __init__(self, root, image, keydir, pg_url, redis_port):
        self.root = root
        self.image = image
        self.keydir = keydir
        self.pg_url = pg_url
        self.redis_port = redis_port
        self.instances = []
        self.procs = []
        self.ports = _Ports()

    def by_name(self, dns_name, resolve):
        return [i for i in self.instances if i.service in (resolve(dns_name) or [])]

    def rewrite(self, inst, text, resolve=None):
        text = text.replace("$$", "$")
        for cport, lport in inst.ports.items():
            text = re.sub(r"(0\.0\.0\.0|127\.0\.0\.1):%d(?!\d)" % cport, "127.0.0.1:%d" % lport, text)
            text = re.sub(r"/dev/tcp/127\.0\.0\.1/%d(?!\d)" % cport, "/dev/tcp/127.0.0.1/%d" % lport, text)
        text = re.sub(r"file:/keys/", "file:%s/" % self.keydir, text)
        text = self.image.path(text)
        if resolve:

            def url(m):
                targets = self.by_name(m.group(1), resolve)
                if not targets:
                    return m.group(0)
                return "http://127.0.0.1:%d" % targets[0].ports[int(m.group(2))]

            text = re.sub(r"http://([a-z][a-z0-9-]*):(\d+)", url, text)
        return text

    def env_for(self, inst, env, resolve):
        out = {"PATH": "%s:%s" % (self.image.bin, os.environ.get("PATH", "/usr/bin:/bin")), "HOME": inst.workdir}
        out.update(sanitizer_env())
        for k, v in env.items():
            v = str(v)
            m = re.match(r"^dns:([a-z0-9-]+):(\d+)$", v)
            if k.startswith("BUS_PEERS_") and m:
                targets = self.by_name(m.group(1), resolve)
                assert targets, "%s: %s=%s reaches nothing" % (inst.name, k, v)
                v = ",".join("tcp://127.0.0.1:%d" % t.ports[int(m.group(2))] for t in targets)
            elif k == "DATABASE_URL":
                v = self.pg_url
            elif k == "REDIS_URL":
                v = "redis://127.0.0.1:%d" % self.redis_port
            else:
                v = self.rewrite(inst, v)
            out[k] = v
        return out

    def start(self, inst):
        self.ports.release()  # every port picked: let the processes have them
        inst.proc = Proc(inst.name, inst.command, inst.env, inst.workdir, self.root, 0)
        self.procs.append(inst.proc)

    def run_check(self, inst, check):
        if check[0] == "http":
            r = requests.get("http://127.0.0.1:%d%s" % (inst.ports[check[1]], check[2]), timeout=3)
            return r.status_code == 200
        r = subprocess.run(
            check[1],
            env=inst.env,
            cwd=inst.workdir,
            capture_output=True,
            text=True,
            timeout=15,
            stdin=subprocess.DEVNULL,
        )
        inst.last_check = r
        return r.returncode == 0

    def wait_healthy(self, timeout):
        pending = list(self.instances)
        dead = []

        def all_healthy():
            for inst in list(pending):
                if not inst.proc.alive():
                    dead.append(inst)
                    return True  # no use waiting: said below
                if all(self.run_check(inst, c) for c in inst.checks):
                    pending.remove(inst)
            return not pending

        try:
            wait_until(all_healthy, timeout, interval=0.1, what="every health check")
        except AssertionError as exc:
            detail = []
            for inst in pending:
                r = getattr(inst, "last_check", None)
                text = (r.stdout + r.stderr) if r is not None else inst.proc.stderr_text()
                detail.append("%s: %s" % (inst.name, text[-600:]))
            raise AssertionError("%s\n%s" % (exc, "\n".join(detail)))
        for inst in dead:
            raise AssertionError(
                "%s exited %r before its health check passed:\n%s%s"
                % (inst.name, inst.proc.popen.poll(), inst.proc.stdout_text()[-1500:], inst.proc.stderr_text()[-1500:])
            )

    def stop(self):
        problems = []
        # gateways first, as a compose down would (any order works)
        for p in sorted(self.procs, key=lambda p: 0 if p.name.startswith("gateway") else 1):
            p.stop()
        for p in self.procs:
            problems += p.problems()
        return problems


@pytest.fixture(scope="module")
def backing(tmp_path_factory):
    """PostgreSQL (throwaway cluster) and Redis, in place of compose's images / k8s's external ones."""
    redis = shutil.which("redis-server")
    assert redis, "redis-server missing: run scripts/deps.sh test"
    root = str(tmp_path_factory.mktemp("backing"))
    pg = PgTmp()
    pg.start()
    ports = _Ports()
    port = ports.one()
    ports.release()
    rp = subprocess.Popen(
        [redis, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", root],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )

    def redis_up():
        with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")

    try:
        wait_until(redis_up, 10, what="redis-server")
        yield pg.url, port
    finally:
        rp.terminate()
        rp.wait(timeout=10)
        pg.stop()


def _keygen_env(image):
    env = {"PATH": "%s:%s" % (image.bin, os.environ.get("PATH", "/usr/bin:/bin"))}
    env.update(sanitizer_env())
    return env


def test_keys_one_shot(compose, tmp_path):
    """The `keys` service's command: a key set the first time, the same files kept after."""
    image = _Image(str(tmp_path))
    keydir = str(tmp_path / "keys")
    os.mkdir(keydir, 0o700)
    r = _run_keys(compose, keydir, _keygen_env(image))
    assert r.returncode == 0, "keys: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr)
    files = sorted(os.listdir(keydir))
    assert files == ["client.public", "client.secret", "server.public", "server.secret"], files
    before = {f: _read(os.path.join(keydir, f)) for f in files}
    for f, text in before.items():
        assert Z85_KEY.match(text.strip()), "%s: %r is not a Z85 key" % (f, text)
    for f in ("client.secret", "server.secret"):
        assert os.stat(os.path.join(keydir, f)).st_mode & 0o077 == 0, "%s readable by others" % f
    r = _run_keys(compose, keydir, _keygen_env(image))
    assert r.returncode == 0, "keys, second run: exit %d\n%s" % (r.returncode, r.stderr)
    assert {f: _read(os.path.join(keydir, f)) for f in files} == before, "a second run changed the keys"


def _compose_instances(stack, compose, image):
    services = compose["services"]
    resolve_map = _dns_names(compose)
    run = {n: s for n, s in _image_services(compose).items() if n not in ONE_SHOTS}
    for name, svc in sorted(run.items()):
        env = svc.get("environment") or {}
        for index in range(SCALE.get(name, 1)):
            ports = {}
            if "BUS_BIND" in env:
                p = stack.ports.pair()
                bus = _host_port(env["BUS_BIND"])[1]
                ports[bus], ports[bus + 1] = p, p + 1
            for k in ("GATEWAY_HTTP_ADDR", "GATEWAY_HTTPS_ADDR", "GATEWAY_ADMIN_ADDR"):
                if k in env:
                    ports[_addr_port(env[k])] = stack.ports.one()
            cmd = svc["command"]
            if "--port" in cmd:
                ports[int(cmd[cmd.index("--port") + 1])] = stack.ports.one()
            workdir = os.path.join(stack.root, "%s.%d" % (name, index + 1))
            os.makedirs(workdir)
            inst = _Instance(name, index, None, None, ports, [], workdir)
            stack.instances.append(inst)
    for inst in stack.instances:
        svc = services[inst.service]
        cmd = list(svc["command"])
        if "--port" in cmd:
            i = cmd.index("--port") + 1
            cmd[i] = str(inst.ports[int(cmd[i])])
        inst.command = [stack.rewrite(inst, w) for w in cmd]
        inst.command[0] = os.path.join(image.bin, inst.command[0])
        inst.env = stack.env_for(inst, svc.get("environment") or {}, resolve_map.get)
        test = svc["healthcheck"]["test"]
        assert test[0] == "CMD"
        inst.checks = [("cmd", [stack.rewrite(inst, w) for w in test[1:]])]
    return resolve_map


def test_compose_stack_runs(compose, backing):
    """Every long-running service of compose.yaml, scaled, as local processes with its
    compose command and environment; health checks, setup, traffic, SIGTERM."""
    pg_url, redis_port = backing
    root = tempfile.mkdtemp(prefix="dp", dir="/tmp")
    image = _Image(root)
    keydir = os.path.join(root, "keys")
    os.mkdir(keydir, 0o700)
    stack = _LocalStack(root, image, keydir, pg_url, redis_port)
    r = _run_keys(compose, keydir, _keygen_env(image))
    assert r.returncode == 0, "the keys one-shot failed: %s" % r.stderr
    resolve_map = _compose_instances(stack, compose, image)
    problems = []
    try:
        for inst in stack.instances:
            stack.start(inst)
        stack.wait_healthy(START_TIMEOUT)

        # the setup one-shot: the demo routes through the first gateway's admin listener,
        # its file's backends moved to the local demo backends
        setup = compose["services"]["setup"]
        routes_src, routes_dst = None, None
        for v in setup.get("volumes") or []:
            src, dst = v.split(":")[:2]
            if src.endswith(".json"):
                routes_src, routes_dst = src, dst
        assert routes_src and os.path.isfile(routes_src), "setup mounts the demo routes file"
        routes = json.loads(_read(routes_src))
        for route in routes:
            for b in route["backends"]:
                targets = stack.by_name(b["hostname"], resolve_map.get)
                assert targets, "demo route %s: backend %s is no service" % (route["vHost"], b["hostname"])
                b["hostname"], b["port"] = "127.0.0.1", targets[0].ports[b["port"]]
        local_routes = os.path.join(root, "demo-routes.json")
        with open(local_routes, "w") as f:
            json.dump(routes, f)
        first_gw = [i for i in stack.instances if i.service == "gateway"][0]
        cmd = [stack.rewrite(first_gw, w, resolve_map.get).replace(routes_dst, local_routes) for w in setup["command"]]
        env = stack.env_for(first_gw, setup.get("environment") or {}, resolve_map.get)
        r = subprocess.run(cmd, env=env, cwd=root, capture_output=True, text=True, timeout=90, stdin=subprocess.DEVNULL)
        assert r.returncode == 0, "setup: exit %d\n%s%s" % (r.returncode, r.stdout, r.stderr)
        assert r.stdout.count("created") + r.stdout.count("updated") == len(routes), r.stdout

        # every gateway serves the demo: region 1 -> Server A, region 2 -> Server B, the chat page
        gateways = [i for i in stack.instances if i.service == "gateway"]
        http = _addr_port(compose["services"]["gateway"]["environment"]["GATEWAY_HTTP_ADDR"])
        admin = _addr_port(compose["services"]["gateway"]["environment"]["GATEWAY_ADMIN_ADDR"])
        for gw in gateways:
            base = "http://127.0.0.1:%d" % gw.ports[http]
            for region, server in (("1", "Server A"), ("2", "Server B")):

                def served():
                    r = requests.get(base + "/", headers={"Host": "localhost", "x-region": region}, timeout=5)
                    return r.status_code == 200 and server in r.text

                wait_until(served, 10, interval=0.05, what="%s: region %s -> %s" % (gw.name, region, server))
            r = requests.get(base + "/chat.html", headers={"Host": "localhost"}, timeout=5)
            assert r.status_code == 200 and "<html" in r.text.lower(), "%s: /chat.html %d" % (gw.name, r.status_code)
            # the dashboard from the image's share/switchyard/web (apid, through the admin listener)
            token = gw.env["ADMIN_TOKEN"]
            url = "http://127.0.0.1:%d/dashboard/" % gw.ports[admin]
            r = requests.get(url, headers={"Authorization": "Bearer " + token}, timeout=5)
            assert r.status_code == 200, "%s: /dashboard/ %d (no share/switchyard/web?)" % (gw.name, r.status_code)
        # every instance of every kind is on the bus (ping through the first gateway's peers)
        env = dict(first_gw.env)
        r = subprocess.run(
            ["switchyard", "ping", "--timeout", "3s"],
            env=env,
            cwd=first_gw.workdir,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        want = sum(1 for i in stack.instances if _kind_of(compose["services"][i.service]))
        assert "%d of %d instances answered" % (want, want) in r.stdout, r.stdout
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)
    shutil.rmtree(root, ignore_errors=True)


def test_k8s_env_runs(k8s, backing):
    """Each Deployment's container with the ConfigMap and (working stand-ins for) the
    Secret, its probes until they pass, SIGTERM."""
    pg_url, redis_port = backing
    root = tempfile.mkdtemp(prefix="dk", dir="/tmp")
    image = _Image(root)
    keydir = os.path.join(root, "keys")
    r = subprocess.run(
        ["switchyard", "keygen", "--out", keydir], env=_keygen_env(image), capture_output=True, text=True, timeout=30
    )
    assert r.returncode == 0, r.stderr
    stack = _LocalStack(root, image, keydir, pg_url, redis_port)
    cm = _configmap_env(k8s)
    deps = _deployments(k8s)
    bus = _host_port(cm["BUS_BIND"])[1]
    standins = {"ADMIN_TOKEN": "k8s-test-token"}  # DATABASE_URL, REDIS_URL: env_for's local ones

    def resolve(name):
        m = re.match(r"^([a-z]+)-bus$", name)
        return [m.group(1)] if m else []

    for kind, dep in sorted(deps.items()):
        c = dep["spec"]["template"]["spec"]["containers"][0]
        ports = {}
        p = stack.ports.pair()
        ports[bus], ports[bus + 1] = p, p + 1
        for cp in c["ports"]:
            if cp["containerPort"] not in ports:
                ports[cp["containerPort"]] = stack.ports.one()
        for index in range(dep["spec"].get("replicas", 1)):
            workdir = os.path.join(root, "%s.%d" % (kind, index + 1))
            os.makedirs(workdir)
            inst_ports = dict(ports) if index == 0 else {}
            if index:
                q = stack.ports.pair()
                inst_ports[bus], inst_ports[bus + 1] = q, q + 1
                for cp in c["ports"]:
                    if cp["containerPort"] not in inst_ports:
                        inst_ports[cp["containerPort"]] = stack.ports.one()
            stack.instances.append(_Instance(kind, index, None, None, inst_ports, [], workdir))
    for inst in stack.instances:
        c = deps[inst.service]["spec"]["template"]["spec"]["containers"][0]
        env = dict(cm)
        for e in c.get("env", []):
            env[e["name"]] = standins.get(e["name"], "")
        inst.env = stack.env_for(inst, env, resolve)
        inst.command = [os.path.join(image.bin, c["command"][0])] + c["command"][1:]
        for probe in (c["readinessProbe"], c["livenessProbe"]):
            if "httpGet" in probe:
                inst.checks.append(("http", _container_port(c, probe["httpGet"]["port"]), probe["httpGet"]["path"]))
            else:
                inst.checks.append(("cmd", [stack.rewrite(inst, w) for w in probe["exec"]["command"]]))
    problems = []
    try:
        for inst in stack.instances:
            stack.start(inst)
        stack.wait_healthy(START_TIMEOUT)
    finally:
        problems = stack.stop()
    assert not problems, "\n".join(problems)
    shutil.rmtree(root, ignore_errors=True)
