"""harness.py - real services and helpers for custpulse's integration tests.

Python 3 standard library only. A test is a plain script:

    from harness import Stack, Custpulse, Redis, config, wait_until

    def main():
        with Stack() as st:                       # Redis + Kafka, own ports
            st.create_topic("customer.orders", partitions=3)
            st.produce("customer.orders", [{"key": "c-1", "value": {...}}])
            cp = Custpulse(st, config(st, **{"topic.orders": "customer.orders"}))
            res = cp.run(["run", "--exit-at-end"], timeout=60)
            assert res.returncode == 0, res.stderr
            assert st.redis().hgetall("cp:c:{c-1}")["o"] == "1"

    if __name__ == "__main__":
        main()

Stack starts its own redis-server and single-node Kafka 3.9 broker (KRaft)
on free loopback ports in a fresh temp dir, from the same templates as
deploy/local/stack.sh (server.properties.in, log4j.properties, redis.conf).
Everything it or Custpulse starts is stopped on exit, on an exception, on
SIGTERM/SIGINT/SIGHUP (ctest's timeout) and, through PR_SET_PDEATHSIG, even
when the test process is SIGKILLed.

Environment:
    CP_SOURCE_DIR   repository root (default: two levels above this file)
    CP_BIN          custpulse binary (default <root>/build/custpulse)
    CP_KAFKATOOL    cpkafka (default <root>/build/tests/tools/cpkafka)
    CP_KAFKA_JARS   Kafka jars (default <root>/deploy/local/jars; fetched
                    with `deploy/local/stack.sh fetch` when missing)
    CP_KAFKA_HEAP   broker max heap (default 512m)
    CP_KEEP_TMP=1   keep the temp dir (logs, data) after the test
    CP_SHARED_KAFKA host:port of a running broker that Stack() uses instead
                    of starting its own (see "Shared broker" below)
    CP_SHARED_KAFKA_DIR  set by ctest: the broker of the ctest fixture
                    cp_shared_kafka (shared_kafka.py) is in
                    <dir>/<ctest pid>/bootstrap

Shared broker. ctest starts one broker per run (fixture cp_shared_kafka,
tests/integration/shared_kafka.py) for the integration tests that do not
need a broker of their own (tests/CMakeLists.txt lists those that do).
Stack() uses it when CP_SHARED_KAFKA or that file gives an address, unless
the test asks for broker_props or Stack(kafka="own"); Redis stays per
Stack. Each test process then has its own topic namespace: topic_name(base)
is "<base>.<test>-<8 hex>" (just base without a shared broker), config()
sets every topic.* name custpulse would default to that way, and a Stack on
the shared broker refuses topic names outside the namespace and starts with
none of them left (a second Stack of the process sees no topics of the
first). Without either variable (python3 test_x.py by hand) nothing
changes: own broker, the plain topic names.
"""
import atexit
import base64
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import time
import uuid

SOURCE_DIR = os.path.abspath(
    os.environ.get("CP_SOURCE_DIR")
    or os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
DEPLOY_DIR = os.path.join(SOURCE_DIR, "deploy", "local")
JARS_DIR = os.environ.get("CP_KAFKA_JARS") or os.path.join(DEPLOY_DIR, "jars")
CP_BIN = os.environ.get("CP_BIN") or os.path.join(SOURCE_DIR, "build",
                                                  "custpulse")
CP_KAFKATOOL = os.environ.get("CP_KAFKATOOL") or os.path.join(
    SOURCE_DIR, "build", "tests", "tools", "cpkafka")
KAFKA_HEAP = os.environ.get("CP_KAFKA_HEAP", "512m")
TMP_PREFIX = "cp-it-"

STOP_TIMEOUT_S = 15
REDIS_START_TIMEOUT_S = 15
KAFKA_START_TIMEOUT_S = 60


# ---------------------------------------------------------------------------
# Small helpers
# ---------------------------------------------------------------------------

def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n):
    """n distinct free loopback ports (all held until all are chosen)."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            socks.append(s)
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def wait_until(fn, timeout=30.0, what="condition", interval=0.1):
    """Calls fn until it returns something truthy and returns that; raises
    TimeoutError naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = fn()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def unique_name(prefix):
    """prefix-<test script>-<8 hex>: group ids, topic names."""
    test = os.path.splitext(os.path.basename(sys.argv[0] or "py"))[0]
    return f"{prefix}-{test}-{uuid.uuid4().hex[:8]}"


def log(msg):
    print(f"[harness {time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr,
          flush=True)


def _tail(path, lines=40):
    try:
        with open(path, "rb") as f:
            data = f.read().decode("utf-8", "replace").splitlines()
    except OSError:
        return ""
    return "\n".join(data[-lines:])


# ---------------------------------------------------------------------------
# Shared broker and topic namespace (see the module docstring)
# ---------------------------------------------------------------------------

def shared_kafka_dir(base=None, owner=None):
    """<CP_SHARED_KAFKA_DIR>/<owner: the ctest pid, our parent> or None."""
    base = base or os.environ.get("CP_SHARED_KAFKA_DIR")
    if not base:
        return None
    return os.path.join(base, str(owner or os.getppid()))


def _shared_kafka_address():
    addr = os.environ.get("CP_SHARED_KAFKA", "").strip()
    if addr:
        return addr
    d = shared_kafka_dir()
    if d is None:
        return None
    try:
        with open(os.path.join(d, "bootstrap")) as f:
            return f.read().strip() or None
    except FileNotFoundError:
        # Not started by the ctest that runs the fixture, or its broker
        # died (shared_kafka.py then removes the file): a broker of our own.
        print(f"[harness] CP_SHARED_KAFKA_DIR is set but {d}/bootstrap is "
              "missing: own brokers, plain topic names", file=sys.stderr,
              flush=True)
        return None


SHARED_KAFKA = _shared_kafka_address()


def _namespace():
    test = os.path.splitext(os.path.basename(sys.argv[0] or "py"))[0]
    test = re.sub(r"[^a-zA-Z0-9-]", "-", test)
    return f"{test}-{uuid.uuid4().hex[:8]}"


# The topic namespace of this process: set iff a shared broker was given.
TOPIC_NS = _namespace() if SHARED_KAFKA else None


def topic_name(base):
    """The name of the test's topic base: base itself, or "<base>.<test>-<8
    hex>" when this process may share its broker with other tests."""
    return f"{base}.{TOPIC_NS}" if TOPIC_NS else base


def in_namespace(name):
    return TOPIC_NS is None or name.endswith("." + TOPIC_NS)


_topic_defaults = None


def topic_defaults():
    """{key: default name} of custpulse's topic-name settings (the string
    topic.* keys of `custpulse config --list`), so that a new one is
    namespaced too."""
    global _topic_defaults
    if _topic_defaults is None:
        res = subprocess.run([CP_BIN, "config", "--list"], text=True,
                             capture_output=True, timeout=60,
                             stdin=subprocess.DEVNULL)
        rows = re.findall(r"^\| `(topic\.[^`]+)` \| string \| `([^`]*)` \|",
                          res.stdout, re.M)
        if res.returncode != 0 or not rows:
            raise RuntimeError(f"{CP_BIN} config --list (exit "
                               f"{res.returncode}) lists no string topic.* "
                               f"keys:\n{res.stdout[:2000]}{res.stderr}")
        _topic_defaults = dict(rows)
    return dict(_topic_defaults)


# ---------------------------------------------------------------------------
# Child processes: die with us, stopped on exit and on signals
# ---------------------------------------------------------------------------

_PR_SET_PDEATHSIG = 1
try:
    _libc = ctypes.CDLL(None, use_errno=True)
except OSError:  # not Linux/glibc: rely on atexit and signal handlers only
    _libc = None


def _child_setup(parent_pid):
    """preexec_fn: SIGKILL the child when the harness dies, even by SIGKILL
    (ctest may kill a timed-out test that way), and start its own session so
    a terminal's Ctrl-C reaches only the harness, which stops things in
    order."""
    def setup():
        os.setsid()
        if _libc is not None:
            _libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
            if os.getppid() != parent_pid:  # parent died before prctl
                os._exit(1)
    return setup


def _popen(argv, **kw):
    return subprocess.Popen(argv, preexec_fn=_child_setup(os.getpid()),
                            stdin=subprocess.DEVNULL, **kw)


def _stop_process(proc, sig=signal.SIGTERM, timeout=STOP_TIMEOUT_S):
    """Sends sig (SIGCONT first, so a paused process can act on it), waits up
    to timeout, then SIGKILLs. Returns the exit status."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.kill(proc.pid, signal.SIGCONT)
        proc.send_signal(sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log(f"pid {proc.pid} still running {timeout}s after signal {sig}, "
            "SIGKILL")
        proc.kill()
        return proc.wait()


_stacks = []        # live Stack objects
_apps = []          # live Custpulse objects
_handlers_set = False


def _cleanup_all():
    for app in list(_apps):
        app.kill9()
    for st in list(_stacks):
        st.close()


def _on_signal(signum, frame):
    # Unwind through the test's `with` blocks (which stop everything); a
    # second signal during that cleanup is ignored, atexit sweeps the rest.
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, signal.SIG_IGN)
    log(f"signal {signum}: stopping services")
    raise SystemExit(128 + signum)


def _install_handlers():
    global _handlers_set
    if _handlers_set:
        return
    _handlers_set = True
    atexit.register(_cleanup_all)
    try:
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, _on_signal)
    except ValueError:  # not the main thread: atexit and PDEATHSIG remain
        pass


def _remove_stale_dirs():
    """Temp dirs of harness processes that died without cleaning up (SIGKILL);
    their services died with them (PDEATHSIG)."""
    tmp = tempfile.gettempdir()
    for name in os.listdir(tmp):
        path = os.path.join(tmp, name)
        if not name.startswith(TMP_PREFIX) or not os.path.isdir(path):
            continue
        try:
            with open(os.path.join(path, "owner.pid")) as f:
                owner = int(f.read())
        except (OSError, ValueError):
            continue
        if not os.path.exists(f"/proc/{owner}"):
            shutil.rmtree(path, ignore_errors=True)


# ---------------------------------------------------------------------------
# Redis client (RESP2)
# ---------------------------------------------------------------------------

class RedisError(Exception):
    """An error reply (-ERR ...)."""


class Redis:
    """Minimal blocking RESP2 client. cmd() returns int, bytes (bulk), str
    (simple status such as "OK"/"PONG"), list or None; an error reply raises
    RedisError (inside an array it is returned as a RedisError value)."""

    def __init__(self, port, host="127.0.0.1", timeout=10.0):
        self.host, self.port, self.timeout = host, port, timeout
        self._sock = self._rf = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def connect(self):
        if self._sock is None:
            self._sock = socket.create_connection((self.host, self.port),
                                                  timeout=self.timeout)
            self._rf = self._sock.makefile("rb")
        return self

    def close(self):
        if self._sock is not None:
            self._rf.close()
            self._sock.close()
        self._sock = self._rf = None

    @staticmethod
    def _arg(a):
        if isinstance(a, bytes):
            return a
        if isinstance(a, str):
            return a.encode()
        if isinstance(a, bool):
            raise TypeError("bool is ambiguous in a Redis command")
        if isinstance(a, (int, float)):
            return repr(a).encode()
        raise TypeError(f"cannot send {type(a).__name__} to Redis")

    def cmd(self, *args):
        """Sends one command and returns its reply. A broken connection is
        closed (the next cmd reconnects) and the error re-raised: whether
        the command ran is then unknown."""
        parts = [self._arg(a) for a in args]
        out = [b"*%d\r\n" % len(parts)]
        for p in parts:
            out.append(b"$%d\r\n%s\r\n" % (len(p), p))
        try:
            self.connect()
            self._sock.sendall(b"".join(out))
            reply = self._read()
        except (OSError, EOFError):
            self.close()
            raise
        if isinstance(reply, RedisError):
            raise reply
        return reply

    def _read(self):
        line = self._rf.readline()
        if not line.endswith(b"\r\n"):
            raise EOFError("connection closed by Redis")
        kind, rest = line[:1], line[1:-2]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            return RedisError(rest.decode("utf-8", "replace"))
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            if n < 0:
                return None
            data = self._rf.read(n + 2)
            if len(data) != n + 2:
                raise EOFError("connection closed by Redis")
            return data[:-2]
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self._read() for _ in range(n)]
        raise RedisError(f"protocol error: unexpected {line!r}")

    # -- conveniences -------------------------------------------------------
    def ping(self):
        return self.cmd("PING")

    def get(self, key):
        return self.cmd("GET", key)

    def set(self, key, value):
        return self.cmd("SET", key, value)

    def hgetall_bytes(self, key):
        flat = self.cmd("HGETALL", key)
        return dict(zip(flat[::2], flat[1::2]))

    def hgetall(self, key):
        """Fields and values as str. Bytes that are not UTF-8 (internal
        binary fields) decode with surrogateescape, so nothing raises and
        v.encode("utf-8", "surrogateescape") gives the bytes back."""
        return {k.decode("utf-8", "surrogateescape"):
                v.decode("utf-8", "surrogateescape")
                for k, v in self.hgetall_bytes(key).items()}

    def dbsize(self):
        return self.cmd("DBSIZE")

    def keys(self, pattern="*"):
        return sorted(k.decode("utf-8", "surrogateescape")
                      for k in self.cmd("KEYS", pattern))


# ---------------------------------------------------------------------------
# Kafka readiness probe (Metadata v0 over a raw socket)
# ---------------------------------------------------------------------------

def _kstr(buf, off):
    (n,) = struct.unpack_from(">h", buf, off)
    off += 2
    if n < 0:
        return None, off
    return buf[off:off + n].decode("utf-8", "replace"), off + n


def kafka_metadata(port, host="127.0.0.1", timeout=2.0):
    """One Metadata v0 request (all topics). Returns (brokers, topics):
    brokers = [(node_id, host, port)], topics = {name: (error, [(partition,
    error, leader)])}. Raises OSError/EOFError while the broker is not up.
    The broker accepts connections before it serves requests, so an answer
    means it is ready; v0 is supported by every Kafka 3.x."""
    client = b"cp-harness"
    body = struct.pack(">hhih", 3, 0, 1, len(client)) + client
    body += struct.pack(">i", 0)  # no topics = all topics (v0)
    with socket.create_connection((host, port), timeout=timeout) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        head = _recv_exact(s, 4)
        (size,) = struct.unpack(">i", head)
        buf = _recv_exact(s, size)
    off = 4  # correlation id
    (nb,) = struct.unpack_from(">i", buf, off)
    off += 4
    brokers = []
    for _ in range(nb):
        (node,) = struct.unpack_from(">i", buf, off)
        bhost, off = _kstr(buf, off + 4)
        (bport,) = struct.unpack_from(">i", buf, off)
        off += 4
        brokers.append((node, bhost, bport))
    (nt,) = struct.unpack_from(">i", buf, off)
    off += 4
    topics = {}
    for _ in range(nt):
        (terr,) = struct.unpack_from(">h", buf, off)
        name, off = _kstr(buf, off + 2)
        (np_,) = struct.unpack_from(">i", buf, off)
        off += 4
        parts = []
        for _ in range(np_):
            perr, pid, leader = struct.unpack_from(">hii", buf, off)
            off += 10
            for _ in range(2):  # replicas, isr
                (n,) = struct.unpack_from(">i", buf, off)
                off += 4 + 4 * n
            parts.append((pid, perr, leader))
        topics[name] = (terr, parts)
    return brokers, topics


def _recv_exact(s, n):
    data = b""
    while len(data) < n:
        chunk = s.recv(n - len(data))
        if not chunk:
            raise EOFError("connection closed by Kafka")
        data += chunk
    return data


def _kafka_ready(port, host="127.0.0.1"):
    """True when the broker answers and every partition has a leader."""
    try:
        brokers, topics = kafka_metadata(port, host)
    except (OSError, EOFError, struct.error):
        return False
    if not brokers:
        return False
    return all(terr == 0 and all(perr == 0 and leader >= 0
                                 for _, perr, leader in parts)
               for terr, parts in topics.values())


# ---------------------------------------------------------------------------
# cpkafka
# ---------------------------------------------------------------------------

def kafkatool(*args, input=None, timeout=120, check=True):
    """Runs cpkafka; returns CompletedProcess (text). With check, a non-zero
    exit raises RuntimeError carrying its stderr."""
    if not os.access(CP_KAFKATOOL, os.X_OK):
        raise RuntimeError(f"cpkafka not found at {CP_KAFKATOOL}: build it "
                           "(cmake --build build --target cpkafka) or set "
                           "CP_KAFKATOOL")
    res = subprocess.run([CP_KAFKATOOL, *args], input=input, text=True,
                         capture_output=True, timeout=timeout,
                         preexec_fn=_child_setup(os.getpid()))
    if check and res.returncode != 0:
        raise RuntimeError(f"cpkafka {' '.join(args)} exited "
                           f"{res.returncode}: {res.stderr.strip()}")
    return res


def _b64(b):
    return base64.b64encode(b).decode()


def _encode_bytes_field(rec, out, name):
    if name + "_b64" in rec:
        out[name + "_b64"] = rec[name + "_b64"]
        return
    if name not in rec:
        return
    v = rec[name]
    if isinstance(v, (dict, list)):
        v = json.dumps(v, separators=(",", ":"))
    if isinstance(v, bytes):
        out[name + "_b64"] = _b64(v)
    elif v is None or isinstance(v, str):
        out[name] = v
    else:
        raise TypeError(f"{name} must be str, bytes, dict, list or None")


def _encode_record(rec):
    """A test record -> one cpkafka produce input line."""
    out = {}
    _encode_bytes_field(rec, out, "key")
    _encode_bytes_field(rec, out, "value")
    hdrs = rec.get("headers")
    if isinstance(hdrs, dict):
        hdrs = list(hdrs.items())
    if hdrs:
        # All as base64, so text and binary values keep their order.
        out["headers_b64"] = [
            [n, None if v is None else
             _b64(v if isinstance(v, bytes) else v.encode())]
            for n, v in hdrs]
    if "headers_b64" in rec:
        out["headers_b64"] = rec["headers_b64"]
    for k in ("partition", "timestamp"):
        if rec.get(k) is not None:
            out[k] = rec[k]
    return json.dumps(out, separators=(",", ":"))


def _decode_row(row):
    def dec(v):
        return None if v is None else base64.b64decode(v)
    return {
        "partition": row["partition"],
        "offset": row["offset"],
        "timestamp": row["timestamp"],
        "key": dec(row["key_b64"]),
        "value": dec(row["value_b64"]),
        "headers": [(h["name"], dec(h["value_b64"])) for h in row["headers"]],
    }


# ---------------------------------------------------------------------------
# Stack: Redis + Kafka
# ---------------------------------------------------------------------------

def ensure_jars():
    """Fetches the Kafka jars once (stack.sh fetch serialises concurrent
    callers on a lock and renames a complete set into place)."""
    if os.path.exists(os.path.join(JARS_DIR, ".complete")):
        return
    log(f"Kafka jars missing in {JARS_DIR}; fetching with Maven")
    env = dict(os.environ, CP_KAFKA_JARS=JARS_DIR)
    subprocess.run([os.path.join(DEPLOY_DIR, "stack.sh"), "fetch"],
                   check=True, env=env)


def _render(template, out, **values):
    with open(template) as f:
        text = f.read()
    for k, v in values.items():
        text = text.replace(f"@{k}@", str(v))
    with open(out, "w") as f:
        f.write(text)


def _cluster_id():
    while True:
        u = base64.urlsafe_b64encode(os.urandom(16)).rstrip(b"=").decode()
        if not u.startswith("-"):
            return u


def kafka_prepare(kdir, kafka_port, controller_port, broker_props=None):
    """Renders kdir/server.properties (data in kdir/data) from the template
    plus broker_props and formats the storage."""
    ensure_jars()
    os.makedirs(kdir, exist_ok=True)
    props = os.path.join(kdir, "server.properties")
    _render(os.path.join(DEPLOY_DIR, "server.properties.in"), props,
            KAFKA_PORT=kafka_port, CONTROLLER_PORT=controller_port,
            LOG_DIR=os.path.join(kdir, "data"))
    if broker_props:
        with open(props, "a") as f:
            f.write("\n# Stack(broker_props=...) of this test\n")
            for k, v in broker_props.items():
                f.write(f"{k}={_prop(v)}\n")
    res = subprocess.run(
        _java(["-Xmx128m"], "tools-log4j.properties") +
        ["kafka.tools.StorageTool", "format", "-t", _cluster_id(),
         "-c", props],
        capture_output=True, text=True, timeout=120)
    if res.returncode != 0:
        raise RuntimeError("kafka storage format failed:\n" + res.stdout
                           + res.stderr)


def _java(opts, log4j):
    java = os.path.join(os.environ["JAVA_HOME"], "bin", "java") \
        if os.environ.get("JAVA_HOME") else "java"
    return [java, *opts, "-Djava.awt.headless=true",
            "-Dlog4j.configuration=file:" + os.path.join(DEPLOY_DIR, log4j),
            "-cp", os.path.join(JARS_DIR, "*")]


def kafka_argv(kdir):
    """The command line of the broker that kafka_prepare(kdir) set up (its
    log4j files go to kdir)."""
    heap = [f"-Xmx{KAFKA_HEAP}", "-Xms128m", "-XX:+UseG1GC",
            "-XX:MaxGCPauseMillis=20", f"-Dkafka.logs.dir={kdir}"]
    return _java(heap, "log4j.properties") + [
        "kafka.Kafka", os.path.join(kdir, "server.properties")]


class Stack:
    """A Redis of our own and a Kafka broker: our own or, under ctest, the
    shared one (kafka below). Attributes: dir (temp dir),
    redis_port, bootstrap ("127.0.0.1:port"), kafka_port, controller_port,
    kafka_start_s (seconds the last Kafka start took).

    broker_props: extra broker properties ({name: value}), appended to the
    rendered server.properties (a later line wins), e.g.
    {"group.min.session.timeout.ms": 500} for a test that restarts group
    members often. None: the template as it is.

    kafka: True = the shared broker when there is one (SHARED_KAFKA) and no
    broker_props were given, else one of our own; "own" = always our own
    (a test that stops, restarts or pauses it, or needs an empty broker);
    False = none. shared tells which; a shared broker cannot be stopped,
    started or paused from here, and only this process's topic namespace
    may be used on it (topic_name())."""

    def __init__(self, redis=True, kafka=True, broker_props=None):
        if kafka not in (True, False, "own"):
            raise ValueError(f"kafka={kafka!r}: True, False or 'own'")
        self.want_redis, self.want_kafka = redis, bool(kafka)
        self.broker_props = dict(broker_props or {})
        self.shared = bool(kafka is True and SHARED_KAFKA
                           and not self.broker_props)
        self.dir = None
        self.redis_proc = self.kafka_proc = None
        self.redis_paused = False
        self.kafka_start_s = None
        self.kafka_host = "127.0.0.1"
        if self.shared:
            host, _, port = SHARED_KAFKA.rpartition(":")
            self.kafka_host, self.kafka_port = host, int(port)
            self.controller_port = None
            self.redis_port = free_port()
        else:
            self.redis_port, self.kafka_port, self.controller_port = \
                free_ports(3)
        self.bootstrap = f"{self.kafka_host}:{self.kafka_port}"

    # -- lifecycle ----------------------------------------------------------
    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        failed = exc_type is not None and not (
            issubclass(exc_type, SystemExit) and not exc.code)
        if failed:
            self.dump_logs()
        self.close(keep=os.environ.get("CP_KEEP_TMP") == "1")
        return False

    def start(self):
        _install_handlers()
        _remove_stale_dirs()
        self.dir = tempfile.mkdtemp(prefix=TMP_PREFIX)
        with open(os.path.join(self.dir, "owner.pid"), "w") as f:
            f.write(str(os.getpid()))
        _stacks.append(self)
        if self.shared:
            self._attach_shared()
        own_kafka = self.want_kafka and not self.shared
        if own_kafka:
            self._prepare_kafka()
        # Start both, then wait: the broker's JVM start dominates.
        if self.want_redis:
            self.start_redis(wait=False)
        if own_kafka:
            self.start_kafka(wait=False)
        if self.want_redis:
            self._wait_redis()
        if own_kafka:
            self._wait_kafka()
        if self.shared:
            kafka = (f"kafka {self.bootstrap} (shared; topic namespace "
                     f"{TOPIC_NS})")
        elif self.want_kafka:
            kafka = (f"kafka {self.bootstrap} (kafka ready in "
                     f"{self.kafka_start_s:.1f}s)")
        else:
            kafka = "no kafka"
        log(f"stack up in {self.dir}: redis 127.0.0.1:{self.redis_port}, "
            f"{kafka}")
        return self

    def _attach_shared(self):
        """Checks that the shared broker answers (else falls back to a
        broker of our own, still with namespaced topic names) and deletes
        this namespace's topics an earlier Stack of this process left, so
        the test sees no topics of its own yet, as on a new broker."""
        try:
            wait_until(lambda: _kafka_ready(self.kafka_port, self.kafka_host),
                       10, f"shared kafka {self.bootstrap}", 0.1)
        except TimeoutError as e:
            log(f"{e}: starting a broker of our own")
            self.shared = False
            self.kafka_host = "127.0.0.1"
            self.kafka_port, self.controller_port = free_ports(2)
            self.bootstrap = f"127.0.0.1:{self.kafka_port}"
            return
        left = self._namespace_topics()
        for name in left:
            res = kafkatool("delete-topic", "-b", self.bootstrap, "-t", name,
                            check=False)
            if res.returncode not in (0, 3):  # 3: already gone
                raise RuntimeError(f"cpkafka delete-topic {name} exited "
                                   f"{res.returncode}: {res.stderr.strip()}")
        if left:
            log(f"deleted {len(left)} topics of namespace {TOPIC_NS} left "
                "by an earlier Stack: " + ", ".join(left))
            still = self._namespace_topics()
            if still:
                raise RuntimeError(f"topics of {TOPIC_NS} still listed "
                                   f"after deletion: {still}")

    def _namespace_topics(self):
        _, topics = kafka_metadata(self.kafka_port, self.kafka_host)
        return sorted(t for t in topics if t.endswith("." + TOPIC_NS))

    def _own_topic(self, name):
        """On the shared broker only this process's namespace is ours."""
        if self.shared and not in_namespace(name):
            raise ValueError(
                f"topic {name!r} on the shared broker {self.bootstrap}: "
                f"name it topic_name({name!r}) (namespace {TOPIC_NS}), or "
                "give the test a broker of its own (Stack(kafka='own'), "
                "tests/CMakeLists.txt)")
        return name

    def _no_shared(self, what):
        if self.shared:
            raise RuntimeError(
                f"{what}: this Stack uses the shared broker "
                f"{self.bootstrap}, which is not the test's to control; use "
                "Stack(kafka='own') and list the test among the own-broker "
                "tests in tests/CMakeLists.txt")

    def close(self, keep=False):
        """Stops every service (SIGTERM, then SIGKILL after 15 s) and removes
        the temp dir unless keep. Safe to call twice."""
        for app in [a for a in _apps if a.stack is self]:
            app.kill9()
        if self.kafka_proc is not None:
            _stop_process(self.kafka_proc)
            self.kafka_proc = None
        if self.redis_proc is not None:
            _stop_process(self.redis_proc)
            self.redis_proc = None
        if self in _stacks:
            _stacks.remove(self)
        if self.dir and os.path.isdir(self.dir):
            if keep:
                log(f"kept {self.dir}")
            else:
                shutil.rmtree(self.dir, ignore_errors=True)

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def dump_logs(self, lines=40):
        """Prints the tails of the service and custpulse logs to stderr."""
        if not self.dir:
            return
        logs = ["redis.log", "kafka.log"] + sorted(
            f for f in os.listdir(self.dir) if f.endswith(".stderr.log"))
        for name in logs:
            text = _tail(self.path(name), lines)
            if text:
                print(f"----- {name} (last {lines} lines) -----\n{text}",
                      file=sys.stderr)
        if self.shared and shared_kafka_dir():
            path = os.path.join(shared_kafka_dir(), "kafka.log")
            text = _tail(path, lines)
            if text:
                print(f"----- shared broker {path} (last {lines} lines; "
                      f"every test's) -----\n{text}", file=sys.stderr)
        sys.stderr.flush()

    # -- Redis --------------------------------------------------------------
    def start_redis(self, wait=True):
        """Starts redis-server on redis_port with its data in dir/redis (the
        AOF brings data back across stop/start)."""
        assert self.redis_proc is None, "redis already running"
        os.makedirs(self.path("redis"), exist_ok=True)
        with open(self.path("redis.log"), "ab") as logf:
            self.redis_proc = _popen(
                ["redis-server", os.path.join(DEPLOY_DIR, "redis.conf"),
                 "--port", str(self.redis_port), "--dir", self.path("redis")],
                cwd=self.path("redis"), stdout=logf,
                stderr=subprocess.STDOUT)
        self.redis_paused = False
        if wait:
            self._wait_redis()

    def _wait_redis(self):
        def ready():
            if self.redis_proc.poll() is not None:
                raise RuntimeError("redis-server exited "
                                   f"{self.redis_proc.returncode}:\n"
                                   + _tail(self.path("redis.log")))
            try:
                with Redis(self.redis_port, timeout=1.0) as r:
                    return r.ping() == "PONG"  # not -LOADING
            except (OSError, EOFError, RedisError):
                return False
        wait_until(ready, REDIS_START_TIMEOUT_S, "redis PONG", 0.05)

    def stop_redis(self, sig=signal.SIGTERM):
        """SIGTERM: clean shutdown (AOF flushed). SIGKILL: a crash (up to a
        second of writes may be lost, appendfsync everysec)."""
        assert self.redis_proc is not None, "redis not running"
        _stop_process(self.redis_proc, sig)
        self.redis_proc = None
        self.redis_paused = False

    def pause_redis(self):
        """SIGSTOP: connections stay open, nothing answers."""
        self.redis_proc.send_signal(signal.SIGSTOP)
        self.redis_paused = True

    def resume_redis(self):
        self.redis_proc.send_signal(signal.SIGCONT)
        self.redis_paused = False

    def redis(self, timeout=10.0):
        """A new client connected to this stack's Redis."""
        return Redis(self.redis_port, timeout=timeout)

    # -- Kafka --------------------------------------------------------------
    def _prepare_kafka(self):
        kafka_prepare(self.path("kafka"), self.kafka_port,
                      self.controller_port, self.broker_props)

    def start_kafka(self, wait=True):
        """Starts the broker with the same ports and data as before."""
        self._no_shared("start_kafka")
        assert self.kafka_proc is None, "kafka already running"
        self._kafka_t0 = time.monotonic()
        with open(self.path("kafka.log"), "ab") as logf:
            self.kafka_proc = _popen(kafka_argv(self.path("kafka")),
                                     cwd=self.path("kafka"), stdout=logf,
                                     stderr=subprocess.STDOUT)
        if wait:
            self._wait_kafka()

    def _wait_kafka(self):
        def ready():
            if self.kafka_proc.poll() is not None:
                raise RuntimeError("kafka exited "
                                   f"{self.kafka_proc.returncode}:\n"
                                   + _tail(self.path("kafka.log")))
            return _kafka_ready(self.kafka_port)
        wait_until(ready, KAFKA_START_TIMEOUT_S, "kafka metadata", 0.1)
        self.kafka_start_s = time.monotonic() - self._kafka_t0

    def stop_kafka(self, sig=signal.SIGTERM):
        """SIGTERM: controlled shutdown. SIGKILL: a crash (log recovery on
        the next start)."""
        self._no_shared("stop_kafka")
        assert self.kafka_proc is not None, "kafka not running"
        _stop_process(self.kafka_proc, sig)
        self.kafka_proc = None

    def kafka_metadata(self):
        """(brokers, topics) as kafka_metadata(); on the shared broker every
        test's topics."""
        return kafka_metadata(self.kafka_port, self.kafka_host)

    # -- topics and records (through cpkafka) -------------------------------
    def create_topic(self, name, partitions=1, config=None):
        """Creates the topic (an existing one with the same partition count
        is fine) and waits until every partition has a leader."""
        args = ["create-topic", "-b", self.bootstrap, "-t",
                self._own_topic(name), "-p", str(partitions)]
        for k, v in (config or {}).items():
            args += ["--config", f"{k}={v}"]
        kafkatool(*args)

    def delete_topic(self, name):
        """Deletes the topic and waits until the broker no longer lists it."""
        kafkatool("delete-topic", "-b", self.bootstrap, "-t",
                  self._own_topic(name))

    def produce(self, topic, records, partitioner=None):
        """Produces records (dicts: key, value, headers, partition,
        timestamp; key/value as str, bytes, None or - for value - a dict/list
        sent as compact JSON; headers as [(name, str|bytes|None)] or a dict).
        Returns the count; raises if any delivery failed."""
        lines = "".join(_encode_record(r) + "\n" for r in records)
        args = ["produce", "-b", self.bootstrap, "-t",
                self._own_topic(topic)]
        if partitioner:
            args += ["--partitioner", partitioner]
        kafkatool(*args, input=lines)
        return len(records)

    def produce_lines(self, topic, lines):
        """Produces already-encoded cpkafka input lines (e.g. from
        tests/data/cdnow_events.py)."""
        if not isinstance(lines, str):
            lines = "".join(l if l.endswith("\n") else l + "\n"
                            for l in lines)
        kafkatool("produce", "-b", self.bootstrap, "-t",
                  self._own_topic(topic), input=lines)

    def consume(self, topic, timeout=60):
        """Every record of the topic up to the high watermarks at the call,
        ordered by partition then offset: dicts with partition, offset,
        timestamp, key (bytes|None), value (bytes|None), headers [(name,
        bytes|None)]."""
        res = kafkatool("consume", "-b", self.bootstrap, "-t",
                        self._own_topic(topic), "--timeout-ms", str(int(timeout * 1000)),
                        timeout=timeout + 30)
        return [_decode_row(json.loads(l)) for l in res.stdout.splitlines()
                if l.strip()]

    def consume_json(self, topic, timeout=60):
        """consume() with each value parsed as JSON (None for a null value)."""
        rows = self.consume(topic, timeout)
        for r in rows:
            r["json"] = None if r["value"] is None else json.loads(r["value"])
        return rows

    def committed(self, group, topic):
        """{partition: committed offset or None}."""
        res = kafkatool("committed", "-b", self.bootstrap, "-g", group,
                        "-t", self._own_topic(topic))
        offs = json.loads(res.stdout)["offsets"]
        return {int(p): o for p, o in offs.items()}


# ---------------------------------------------------------------------------
# custpulse
# ---------------------------------------------------------------------------

def config(stack, **overrides):
    """The base custpulse config for a stack, with overrides applied (dotted
    keys through **{"topic.orders": "x"}; a None value removes a key).
    In a topic namespace (TOPIC_NS) it also names every topic custpulse
    would default to: topic.X = topic_name(default of topic.X).
    The quantile RFM runs in fixed mode (rfmq.mode = fixed, the default
    thresholds: cpmodel.DEFAULT_RFMQ): live snapshots depend on when they
    are taken, which would make exact CloudEvent comparisons (and clean
    vs. crashed runs) depend on timing; a test of live mode overrides it.
    Churn warnings are off (topic.churn = ""): a test of them sets the
    topic (cpmodel.replay(churn=True) mirrors them). Time-driven
    evaluation is off (due.sweep_ms = 0: results change only with events,
    as cpmodel.replay mirrors them); test_time_driven turns it on.
    Population metrics are off (topic.metrics = ""): no mk field, no
    counters; test_metrics turns them on."""
    cfg = {
        "kafka.bootstrap.servers": stack.bootstrap,
        "redis.host": "127.0.0.1",
        "redis.port": stack.redis_port,
        "kafka.group.id": unique_name("cp"),
        "log.level": "info",
        "rfmq.mode": "fixed",
    }
    if TOPIC_NS:
        for k, v in topic_defaults().items():
            cfg[k] = topic_name(v)
    # Churn warnings off unless a test turns them on (test_churn_events):
    # the exact-output tests mirror segment changes, not warnings.
    cfg["topic.churn"] = ""
    cfg["due.sweep_ms"] = "0"
    cfg["topic.metrics"] = ""
    for k, v in overrides.items():
        if v is None:
            cfg.pop(k, None)
        else:
            cfg[k] = v
    _check_topic_settings(stack, cfg, "config()")
    return cfg


def _check_topic_settings(stack, settings, where):
    """On the shared broker every topic name custpulse is given must be in
    the namespace (an empty one switches an input off)."""
    if not getattr(stack, "shared", False):
        return
    keys = topic_defaults()
    for k, v in settings.items():
        if k in keys and str(v) and not in_namespace(str(v)):
            raise ValueError(
                f"{where}: {k} = {v!r} on the shared broker "
                f"{stack.bootstrap}: use topic_name({str(v)!r}) (namespace "
                f"{TOPIC_NS}), or give the test a broker of its own")


def _prop(v):
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


class Custpulse:
    """The custpulse binary with a generated properties file (in the stack's
    temp dir) and optional -X overrides.

        cp = Custpulse(st, config(st), overrides={"batch.size": 10})
        res = cp.run(["config", "--list"])        # CompletedProcess (text)
        cp.start(["run"]); ...; rc = cp.stop()    # background instance
        cp.log_lines()                            # its stderr, parsed

    args start with the subcommand; -c FILE and -X k=v go right after it.
    cfg=None runs without -c (config from env/-X only)."""

    _count = 0

    def __init__(self, stack, cfg=None, overrides=None, name="custpulse",
                 binary=None, env=None):
        Custpulse._count += 1
        self.stack = stack
        self.name = f"{name}-{Custpulse._count}"
        self.binary = binary or CP_BIN
        self.overrides = dict(overrides or {})
        self.env = env
        self.proc = None
        self.cfg_path = None
        self.stderr_path = stack.path(f"{self.name}.stderr.log")
        self.stdout_path = stack.path(f"{self.name}.stdout.log")
        _check_topic_settings(stack, dict(cfg or {}, **self.overrides),
                              "Custpulse")
        if cfg is not None:
            self.cfg_path = stack.path(f"{self.name}.properties")
            with open(self.cfg_path, "w") as f:
                f.write(f"# generated by harness.py for {self.name}\n")
                for k, v in cfg.items():
                    f.write(f"{k} = {_prop(v)}\n")
        self.cfg = dict(cfg or {})

    def argv(self, args):
        if not args:
            raise ValueError("args must start with a subcommand")
        out = [self.binary, args[0]]
        if self.cfg_path:
            out += ["-c", self.cfg_path]
        for k, v in self.overrides.items():
            out += ["-X", f"{k}={_prop(v)}"]
        return out + list(args[1:])

    def _env(self, env):
        e = dict(os.environ)
        e.update(self.env or {})
        e.update(env or {})
        return e

    def run(self, args, timeout=120, input=None, env=None):
        """Runs to completion; returns CompletedProcess with text stdout and
        stderr (stderr also appended to the log file)."""
        res = subprocess.run(self.argv(args), input=input, text=True,
                             capture_output=True, timeout=timeout,
                             env=self._env(env), cwd=self.stack.dir,
                             preexec_fn=_child_setup(os.getpid()))
        with open(self.stderr_path, "a") as f:
            f.write(res.stderr)
        return res

    def start(self, args, env=None):
        """Starts in the background; stderr goes to <name>.stderr.log."""
        assert self.proc is None or self.proc.poll() is not None, \
            "already running"
        with open(self.stderr_path, "ab") as err, \
                open(self.stdout_path, "ab") as out:
            self.proc = _popen(self.argv(args), stdout=out, stderr=err,
                               env=self._env(env), cwd=self.stack.dir)
        _apps.append(self)
        return self

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _done(self):
        if self in _apps:
            _apps.remove(self)

    def wait(self, timeout=60):
        """Waits for exit; returns the exit status (negative = signal).
        Raises subprocess.TimeoutExpired, leaving it running."""
        rc = self.proc.wait(timeout)
        self._done()
        return rc

    def stop(self, sig=signal.SIGTERM, timeout=30):
        """Sends sig and waits up to timeout; returns the exit status. If it
        has not exited by then it is SIGKILLed and TimeoutError raised."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.kill9()
                raise TimeoutError(f"{self.name} did not exit within "
                                   f"{timeout}s of signal {sig}")
        self._done()
        return self.proc.returncode

    def kill9(self):
        """SIGKILL (a crash); returns the exit status."""
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.kill()
        rc = self.proc.wait()
        self._done()
        return rc

    def stderr_text(self):
        try:
            with open(self.stderr_path, encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stdout_text(self):
        try:
            with open(self.stdout_path, encoding="utf-8",
                      errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def log_lines(self):
        """stderr as parsed JSON log lines; a line that is not JSON becomes
        {"raw": line}."""
        out = []
        for line in self.stderr_text().splitlines():
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = None
            out.append(obj if isinstance(obj, dict) else {"raw": line})
        return out

    def wait_log(self, pred, timeout=30, what="log line"):
        """Waits until a log line satisfies pred (a dict -> bool, or a msg
        string to match exactly); returns that line."""
        if isinstance(pred, str):
            msg = pred
            pred = lambda l: l.get("msg") == msg  # noqa: E731
        return wait_until(
            lambda: next((l for l in self.log_lines() if pred(l)), None),
            timeout, what)
