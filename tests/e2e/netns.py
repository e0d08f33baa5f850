"""netns.py - hosts in network namespaces, made and removed by a test (needs root).

    net = Network(["r1a", "r1b", "cl"])      # names unique per run: sy<pid>x<rand>-<host>
    net.build()                              # a "switch" namespace with a bridge, a veth per host
    net.addr("r1a")                          # 10.211.X.11 ... on one private /24
    net.start_dns({"router": ["r1a"], ...})  # dnsmasq on the bridge; every host's resolver points at it
    p = net.spawn("r1a", "router", [binary], env, logdir)   # a stack.Proc, its pid the program's own
    with net.inside("cl"):                   # the calling thread's sockets in that namespace
        requests.get("http://%s:8080/" % net.addr("r1a"))
    net.link("r1b", up=False)                # r1b's cable pulled at the switch (and put back)
    net.destroy()                            # processes stopped by pid, namespaces and files removed

Topology: the namespace `<tag>-switch` holds the bridge `br0` (address .1, where
dnsmasq answers); each host namespace `<tag>-<host>` has `eth0`, one end of a veth
whose other end `p-<host>` is a port of the bridge (created directly in the
namespaces: no interface ever appears in the machine's own namespace), and lo up.
The /24 is 10.211.X.0/24 with X random among those that no route or address of the
machine's own namespace overlaps.

DNS: `ip netns exec NAME` bind-mounts every file of /etc/netns/NAME/ over /etc/
for the program it runs; so /etc/netns/<tag>-<host>/resolv.conf (nameserver = the
bridge's address) is what c-ares (the bus's `dns:` peers, backends by name) and
glibc read there. dnsmasq (Debian's dnsmasq-base: the binary, no system service)
answers from one addn-hosts file with a line per address: it returns EVERY address
that has a name, as Docker's DNS returns every container of a service.

Programs in a namespace are started as `ip netns exec NS PROGRAM ...`: ip execs the
program in place (no fork), so the pid Popen gives is the program's own, and it is
stopped by that pid (stack.Proc: SIGTERM, a deadline, SIGKILL).

Everything is undone by destroy(), which the test's fixture calls from its
finalizer whatever happened: every process still running stopped by pid, the
namespaces deleted (their veths and the bridge go with them), /etc/netns/<name>
directories removed (and /etc/netns itself when this run made it and it is empty).
"""

import contextlib
import ctypes
import ctypes.util
import ipaddress
import os
import random
import shutil
import signal
import subprocess
import tempfile
import threading

from stack import Proc, wait_until

CLONE_NEWNET = 0x40000000
NETNS_ETC = "/etc/netns"
DNSMASQ = "/usr/sbin/dnsmasq"

_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

# Programs the namespaced hosts need, and the Debian package of each (scripts/deps.sh test).
TOOLS = {
    "ip": "iproute2",
    "dnsmasq": "dnsmasq-base",
    "setpriv": "util-linux",
    "getent": "libc-bin",
}


def missing_tools():
    """Names of TOOLS (and their packages) not found: [] when all are there."""
    out = []
    for tool, pkg in TOOLS.items():
        found = shutil.which(tool) or (tool == "dnsmasq" and os.access(DNSMASQ, os.X_OK))
        if not found:
            out.append("%s (%s)" % (tool, pkg))
    return out


def _ip(*args, check=True):
    p = subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    if check and p.returncode != 0:
        raise RuntimeError("ip %s: exit %d: %s" % (" ".join(args), p.returncode, p.stderr.strip()))
    return p


def _taken_networks():
    """Every IPv4 network of the machine's own namespace: routes of all tables, addresses."""
    nets = []
    for args in (("-4", "route", "show", "table", "all"), ("-4", "-o", "addr", "show")):
        out = _ip(*args, check=False).stdout
        for line in out.splitlines():
            for word in line.split():
                if word[0].isdigit() and ("/" in word or word.count(".") == 3):
                    try:
                        nets.append(ipaddress.ip_network(word, strict=False))
                    except ValueError:
                        pass
    return nets


def pick_subnet(rng=None):
    """10.211.X.0/24 with X random, overlapping nothing the machine routes or has."""
    rng = rng or random.Random()
    taken = _taken_networks()
    choices = list(range(1, 255))
    rng.shuffle(choices)
    for x in choices:
        net = ipaddress.ip_network("10.211.%d.0/24" % x)
        if not any(net.overlaps(t) for t in taken if t.prefixlen > 0):
            return net
    raise RuntimeError("no free 10.211.X.0/24: every one overlaps a route or address of this machine")


@contextlib.contextmanager
def thread_in_netns(path):
    """The calling thread in the network namespace at `path` (a /run/netns file) for
    the block: sockets it makes there stay there (usable from any thread), and so do
    processes it starts meanwhile. Back to its own namespace afterwards."""
    saved = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
    target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(target, CLONE_NEWNET) != 0:
            e = ctypes.get_errno()
            raise OSError(e, "setns(%s): %s" % (path, os.strerror(e)))
        try:
            yield
        finally:
            if _libc.setns(saved, CLONE_NEWNET) != 0:
                e = ctypes.get_errno()
                raise OSError(e, "setns back: %s" % os.strerror(e))
    finally:
        os.close(target)
        os.close(saved)


class Network:
    """A bridge and hosts in network namespaces (module docstring)."""

    SWITCH = "switch"

    def __init__(self, hosts, octets=None, tag=None):
        self.tag = tag or "sy%dx%04x" % (os.getpid(), random.randrange(0x10000))
        self.hosts = list(hosts)
        self.subnet = None
        self.octets = dict(octets or {})
        for i, h in enumerate(self.hosts):
            self.octets.setdefault(h, 10 + i)
        self.made_ns = []  # namespaces created (deleted by destroy)
        self.made_etc = []  # /etc/netns/<name> directories created
        self.made_etc_root = False
        self.procs = []  # every process started in a namespace (stack.Proc)
        self.dns_proc = None
        self.dns_file = None
        self.down = set()
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ names

    def ns(self, host):
        return "%s-%s" % (self.tag, host)

    def ns_path(self, host):
        return "/run/netns/" + self.ns(host)

    def addr(self, host):
        if host == self.SWITCH:
            return str(self.subnet.network_address + 1)
        return str(self.subnet.network_address + self.octets[host])

    def argv(self, host, argv):
        """argv run inside host's namespace (and its /etc/netns files)."""
        return ["ip", "netns", "exec", self.ns(host)] + list(argv)

    # ------------------------------------------------------------------ building

    def build(self):
        """Namespaces, bridge, veths, addresses. On failure what was made is left for
        destroy() (the caller's finalizer) to remove."""
        self.subnet = pick_subnet()
        prefix = self.subnet.prefixlen
        sw = self.ns(self.SWITCH)
        for host in [self.SWITCH] + self.hosts:
            _ip("netns", "add", self.ns(host))
            self.made_ns.append(self.ns(host))
            _ip("-n", self.ns(host), "link", "set", "lo", "up")
        _ip("-n", sw, "link", "add", "br0", "type", "bridge")
        _ip("-n", sw, "addr", "add", "%s/%d" % (self.addr(self.SWITCH), prefix), "dev", "br0")
        _ip("-n", sw, "link", "set", "br0", "up")
        for host in self.hosts:
            port = "p-" + host
            _ip("-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", self.ns(host))
            _ip("-n", sw, "link", "set", port, "master", "br0")
            _ip("-n", sw, "link", "set", port, "up")
            _ip("-n", self.ns(host), "addr", "add", "%s/%d" % (self.addr(host), prefix), "dev", "eth0")
            _ip("-n", self.ns(host), "link", "set", "eth0", "up")
        # each host's resolver: the bridge's address (dnsmasq, started by start_dns)
        if not os.path.isdir(NETNS_ETC):
            os.makedirs(NETNS_ETC, exist_ok=True)
            self.made_etc_root = True
        for host in self.hosts:
            d = os.path.join(NETNS_ETC, self.ns(host))
            os.makedirs(d)
            self.made_etc.append(d)
            with open(os.path.join(d, "resolv.conf"), "w") as f:
                f.write("# %s: written by tests/e2e/netns.py, removed at the end\n" % self.ns(host))
                f.write("nameserver %s\noptions timeout:1 attempts:2\n" % self.addr(self.SWITCH))
        return self

    def start_dns(self, names, logdir):
        """dnsmasq in the switch namespace on the bridge's address, answering each name
        with the address of every host listed for it: names = {name: [host, ...]}."""
        by_host = {}
        for name, hosts in sorted(names.items()):
            for h in hosts:
                by_host.setdefault(h, []).append(name)
        self.dns_file = os.path.join(logdir, "hosts.dns")
        with open(self.dns_file, "w") as f:
            for h in self.hosts:
                if by_host.get(h):
                    f.write("%s %s\n" % (self.addr(h), " ".join(by_host[h])))
        dnsmasq = shutil.which("dnsmasq") or DNSMASQ
        argv = [
            dnsmasq,
            "--keep-in-foreground",
            "--conf-file=/dev/null",
            "--no-resolv",
            "--no-hosts",
            "--addn-hosts=" + self.dns_file,
            "--listen-address=" + self.addr(self.SWITCH),
            "--bind-interfaces",
            "--log-facility=-",
            "--pid-file=",
            "--user=root",
            "--group=root",
            "--local-ttl=1",
        ]
        self.dns_proc = self.spawn(self.SWITCH, "dnsmasq", argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, logdir)
        probe_host = self.hosts[0]
        probe_name = sorted(names)[0]
        want = {self.addr(h) for h in names[probe_name]}

        def answers():
            assert self.dns_proc.alive(), "dnsmasq exited: %s" % self.dns_proc.stderr_text()[-800:]
            got = self.resolve(probe_host, probe_name)
            return got == want

        wait_until(answers, 10, interval=0.05, what="dnsmasq answering %s" % probe_name)
        return self.dns_proc

    def resolve(self, host, name):
        """The IPv4 addresses `name` has seen from `host` (getent through its resolv.conf)."""
        p = subprocess.run(
            self.argv(host, ["getent", "ahostsv4", name]),
            capture_output=True,
            text=True,
            timeout=10,
            stdin=subprocess.DEVNULL,
        )
        return {line.split()[0] for line in p.stdout.splitlines() if line.strip()}

    # ------------------------------------------------------------------ processes

    def spawn(self, host, name, argv, env, logdir, cwd=None):
        """A program in host's namespace (a stack.Proc: logs in logdir/<name>.out|.err)."""
        with self._lock:
            gen = sum(1 for p in self.procs if p.name == name)
        proc = Proc(name, self.argv(host, argv), env, cwd or logdir, logdir, gen)
        proc.host = host
        with self._lock:
            self.procs.append(proc)
        return proc

    def run(self, host, argv, env=None, timeout=30, **kw):
        """subprocess.run of argv in host's namespace."""
        return subprocess.run(
            self.argv(host, argv),
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
            stdin=subprocess.DEVNULL,
            **kw,
        )

    # ------------------------------------------------------------------ clients and faults

    def inside(self, host):
        """Context manager: the calling thread in host's namespace (thread_in_netns)."""
        return thread_in_netns(self.ns_path(host))

    def link(self, host, up):
        """The switch's port to host down (the host cut off: no carrier on its eth0,
        nothing sent or received, nobody told) or up again."""
        _ip("-n", self.ns(self.SWITCH), "link", "set", "p-" + host, "up" if up else "down")
        if up:
            self.down.discard(host)
        else:
            self.down.add(host)

    def carrier(self, host):
        """True when host's eth0 has carrier (its switch port is up)."""
        out = _ip("-n", self.ns(host), "-o", "link", "show", "eth0").stdout
        return "NO-CARRIER" not in out and "LOWER_UP" in out

    # ------------------------------------------------------------------ teardown

    def stop_all(self, first=()):
        """Stop every process still running by pid: names in `first` first (in that
        order), dnsmasq last. Returns their problems (stack.Proc.problems)."""
        order = []
        for name in first:
            order += [p for p in self.procs if p.name == name and p not in order]
        order += [p for p in self.procs if p not in order and p is not self.dns_proc]
        if self.dns_proc is not None:
            order.append(self.dns_proc)
        problems = []
        for p in order:
            if p.alive():
                sig = getattr(p, "stop_signal", signal.SIGTERM)
                if sig != signal.SIGTERM:  # e.g. postgres: SIGINT is its fast shutdown
                    try:
                        os.kill(p.pid, sig)
                        p.popen.wait(timeout=15)
                    except (ProcessLookupError, subprocess.TimeoutExpired):
                        pass
                p.stop()  # SIGTERM, a deadline, SIGKILL (a no-op for one that has exited)
        for p in order:
            problems += p.problems()
        return problems

    def destroy(self):
        """Everything made undone (module docstring). Returns a list of what could not be."""
        left = []
        for p in self.procs:
            if p.alive():  # stop_all not called, or failed half-way: never leave one behind
                try:
                    p.stop()
                except Exception as e:  # noqa: BLE001
                    left.append("%s (pid %d): %r" % (p.name, p.pid, e))
        for name in reversed(self.made_ns):
            r = _ip("netns", "del", name, check=False)
            if r.returncode != 0 and os.path.exists("/run/netns/" + name):
                left.append("netns %s: %s" % (name, r.stderr.strip()))
        self.made_ns = []
        for d in self.made_etc:
            shutil.rmtree(d, ignore_errors=True)
            if os.path.exists(d):
                left.append("could not remove " + d)
        self.made_etc = []
        if self.made_etc_root:
            with contextlib.suppress(OSError):
                os.rmdir(NETNS_ETC)  # only when empty: another run may be using it
            self.made_etc_root = False
        return left


# ---------------------------------------------------------------------- services on a host

PG_BIN = os.environ.get("PG_BIN", "/usr/lib/postgresql/15/bin")


def _as_postgres(argv):
    """argv run as the `postgres` user (PostgreSQL refuses root); setpriv execs in place."""
    return ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", "--"] + list(argv)


def start_postgres(net, host, logdir, port=5432, timeout=30):
    """A throwaway PostgreSQL 15 cluster in host's namespace, listening on host's address
    (tests/lib/pgtmp.sh's choices: initdb as `postgres`, trust, fsync off; but the
    private network, not 127.0.0.1, and the postmaster as our own child so that it is
    stopped by its pid). Returns (proc, url, datadir's parent): remove that directory
    after stopping the process."""
    d = tempfile.mkdtemp(prefix="mhpg", dir="/tmp")  # short: the unix socket lives here
    shutil.chown(d, "postgres", "postgres")
    os.chmod(d, 0o700)
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LANG": "C.UTF-8", "HOME": d}
    r = subprocess.run(
        _as_postgres([PG_BIN + "/initdb", "-D", d + "/data", "-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]),
        cwd=d,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    if r.returncode != 0:
        raise RuntimeError("initdb in %s: exit %d\n%s%s" % (d, r.returncode, r.stdout, r.stderr))
    with open(d + "/data/pg_hba.conf", "a") as f:
        f.write("# the test's private network (tests/e2e/netns.py)\nhost all all %s trust\n" % net.subnet)
    addr = net.addr(host)
    argv = [PG_BIN + "/postgres", "-D", d + "/data", "-p", str(port), "-k", d, "-c", "listen_addresses=" + addr]
    argv += ["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
    proc = net.spawn(host, "postgres", _as_postgres(argv), env, logdir, cwd=d)
    proc.stop_signal = signal.SIGINT  # fast shutdown: clients (routers) are gone by then

    def ready():
        assert proc.alive(), "postgres exited: %s" % proc.stderr_text()[-1500:]
        return net.run(host, [PG_BIN + "/pg_isready", "-q", "-h", addr, "-p", str(port), "-t", "1"]).returncode == 0

    wait_until(ready, timeout, interval=0.1, what="postgres on %s:%d" % (addr, port))
    r = net.run(host, [PG_BIN + "/createdb", "-h", addr, "-p", str(port), "-U", "postgres", "switchyard"])
    if r.returncode != 0:
        raise RuntimeError("createdb: %s" % r.stderr)
    return proc, "postgres://postgres@%s:%d/switchyard" % (addr, port), d


def start_redis(net, host, logdir, port=6379, timeout=10):
    """redis-server in host's namespace on host's address (no persistence). Returns (proc, url)."""
    d = os.path.join(logdir, "redis-data")
    os.makedirs(d, exist_ok=True)
    addr = net.addr(host)
    argv = ["redis-server", "--port", str(port), "--bind", addr, "--protected-mode", "no"]
    argv += ["--save", "", "--appendonly", "no", "--dir", d]
    proc = net.spawn(host, "redis", argv, {"PATH": os.environ.get("PATH", "/usr/bin:/bin")}, logdir)

    def ready():
        assert proc.alive(), "redis-server exited: %s" % proc.stdout_text()[-800:]
        r = net.run(host, ["redis-cli", "-h", addr, "-p", str(port), "PING"], timeout=5)
        return r.stdout.strip() == "PONG"

    wait_until(ready, timeout, interval=0.05, what="redis-server on %s:%d" % (addr, port))
    return proc, "redis://%s:%d" % (addr, port)
