#!/usr/bin/env python3
"""cpbench.py - custpulse's end-to-end benchmark (issue 7; docs/performance.md
"Benchmark"): throughput, latency, CPU, Redis commands and memory on the
local stack, one line of figures per phase, all of it also as JSON.

    python3 bench/cpbench.py --quick              # CI size, about a minute
    python3 bench/cpbench.py                      # full size, by hand
    python3 bench/cpbench.py --customers 200000 --events 2000000

The stack is tests/integration/harness.py's Stack: a redis-server (with
deploy/local/redis.conf) and a single-node Apache Kafka 3.9 broker (KRaft)
on free loopback ports, stopped at the end with everything started here.
The load is bench/cploadgen's seeded mix (orders : browsing : support =
1 : 10 : 0.3 over N Zipf-active customers, with duplicates and malformed
events) on three 3-partition input topics.

Phases:
 1. backlog drain: M events for N customers are produced first (event
    times spread over the year before yesterday), then `custpulse run`
    starts; timed until its counters account for every record (events +
    dlq = records produced).
 2. steady state: the same custpulse goes on while cploadgen produces at
    a fixed rate (default half of phase 1's events/s) for a duration, new
    events of the same customers (event times: yesterday; ids lg2-...).
    Latency = an output record's Kafka timestamp (custpulse's produce
    call) minus that of the input record named by its data.cause
    (cploadgen's produce call); records are read back after the phase
    (bench/cptimes), so reading costs nothing in the figures.
 3. due-time sweep: Redis gets S customers directly (bench/due_sweep.py's
    one-order customers and due index), 1 % of them due; `custpulse run
    --exit-at-end` on an empty 1-partition orders topic sweeps them.

custpulse runs with the product's defaults except: stats lines every
200 ms (100 ms in phase 3), no profile topic (cploadgen writes none), and
the due-time sweep off in phases 1 and 2 (due.sweep_ms = 0, as the
integration tests run: with event times a year old the sweep would mix
time-caused work into the event figures); phase 3 runs it at its default
(1 s) with fixed RFM references (due_sweep.py's template is built for
them). Churn warnings and the daily metrics are on (the product's
default topics): part of the work per event.

Figures per phase: events/s (customers/s in phase 3); CPU seconds per
million events of custpulse (/proc/<pid>/stat), Redis (INFO cpu: its
process, and apart its children, the AOF rewrites of
deploy/local/redis.conf's appendonly yes, counted too), the broker's JVM
(/proc) and cploadgen (its rusage); latency percentiles, also without
the phase's first 5 s and per second of output time (JSON); Redis
commands sent per event and round trips per batch (custpulse's own
counters); Redis used memory per customer (phase 1); custpulse's peak
and final RSS; output events/s; DLQ records next to cploadgen's
malformed count. Progress goes to stderr every few seconds.

Results: --json PATH (default bench/results/cpbench-<size>.json, size
quick, full or <N>c-<M>e), with the counters, Redis' commandstats, the
configuration and the machine.

--count-allocs runs custpulse under bench/libcpallocs.so (LD_PRELOAD;
bench/cpallocs.c) and adds, per phase, the heap allocations (malloc,
calloc, realloc, aligned) of its loop thread per event, by the library
that called them: "mallocs per event: total X (hiredis a, ...)". Phase 1
counts from process start (start-up included), phase 2 between SIGUSR2
dumps at its start and end. The counter slows custpulse: the timings of
such a run are not the benchmark's.

Binaries: --bin or CP_BIN (custpulse; default build/custpulse), and
cploadgen and cptimes from --loadgen/--cptimes, CP_LOADGEN/CP_CPTIMES or
<custpulse's dir>/bench/. CP_KAFKA_JARS as for the integration tests.
Exit status: 0 done, 1 a failure (a process failed, nothing moved for
--stall-s seconds).
"""
import argparse
import datetime
import json
import math
import os
import platform
import random
import re
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, HERE)
import harness  # noqa: E402
from harness import Custpulse, Stack, config  # noqa: E402
import due_sweep  # noqa: E402
import memwhatif  # noqa: E402

QUICK = {"customers": 20000, "events": 200000, "steady_s": 15,
         "sweep_customers": 50000}
FULL = {"customers": 1000000, "events": 10000000, "steady_s": 60,
        "sweep_customers": 1000000}
INPUTS = ("customer.orders", "customer.browsing", "customer.support")
OUTPUTS = ("customer.segment-changes", "customer.churn-warnings",
           "customer.metrics")
DLQ = "custpulse.dlq"
SWEEP = {"orders": "sweep.orders", "segments": "sweep.segment-changes",
         "churn": "sweep.churn-warnings", "metrics": "sweep.metrics",
         "dlq": "sweep.dlq"}
PROGRESS_S = 5
WARMUP_S = 5  # phase 2's latencies are also given without its first 5 s
CLK_TCK = os.sysconf("SC_CLK_TCK")
DAY_S = 86400


class BenchError(Exception):
    """A phase could not finish (the message says why)."""


def say(text):
    print(f"[cpbench {time.strftime('%H:%M:%S')}] {text}", file=sys.stderr,
          flush=True)


def per_m(value, count):
    """value per million of count (None when count is 0)."""
    return round(value * 1e6 / count, 3) if count else None


def ratio(a, b, digits=3):
    return round(a / b, digits) if b else None


# ---------------------------------------------------------------------------
# Processes and services: CPU, memory
# ---------------------------------------------------------------------------

def proc_cpu_s(pid):
    """utime + stime of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        rest = f.read().rsplit(")", 1)[1].split()
    return (int(rest[11]) + int(rest[12])) / CLK_TCK


def proc_mem_kb(pid):
    """{"VmHWM": kB, "VmRSS": kB} of a running process."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                k, v = line.split(":", 1)
                out[k] = int(v.split()[0])
    return out


# Redis INFO through bench/due_sweep.py's redis-cli helpers (r: a harness
# client, for its port).

def redis_info(r, section):
    return due_sweep.info(r.port, section)


def redis_used_memory(r):
    return int(redis_info(r, "memory")["used_memory"])


def key_lookups(r):
    return due_sweep.lookups(r.port)


def command_calls(r):
    """Calls per command since CONFIG RESETSTAT (commands that scripts run
    included), without the benchmark's own."""
    return {k: v for k, v in sorted(due_sweep.calls(r.port).items())
            if k not in ("info", "config|resetstat", "ping")}


def wait_aof_idle(r, timeout=120):
    """Waits until no AOF rewrite runs or is scheduled, so that a phase does
    not start with the previous one's rewrite child competing for the
    cores; returns the seconds waited."""
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        i = redis_info(r, "persistence")
        if i["aof_rewrite_in_progress"] == "0" and \
                i["aof_rewrite_scheduled"] == "0":
            break
        time.sleep(0.1)
    return round(time.monotonic() - t, 2)


class Cpu:
    """CPU seconds of custpulse (pid, or None), Redis and the broker at one
    moment; `-` gives the deltas. Redis' own process apart from its
    children (AOF rewrites: deploy/local/redis.conf has appendonly yes),
    with the count of rewrites."""

    def __init__(self, st, r, cp_pid=None):
        self.t = time.time()
        self.custpulse = proc_cpu_s(cp_pid) if cp_pid else 0.0
        i = redis_info(r, "cpu")
        self.redis = float(i["used_cpu_sys"]) + float(i["used_cpu_user"])
        self.redis_children = float(i["used_cpu_sys_children"]) + \
            float(i["used_cpu_user_children"])
        self.aof_rewrites = int(redis_info(r, "persistence")["aof_rewrites"])
        self.broker = proc_cpu_s(st.kafka_proc.pid)

    def __sub__(self, old):
        out = {k + "_s": round(getattr(self, k) - getattr(old, k), 3)
               for k in ("custpulse", "redis", "redis_children", "broker")}
        out["wall_s"] = round(self.t - old.t, 3)
        out["redis_aof_rewrites"] = self.aof_rewrites - old.aof_rewrites
        return out


def cpu_per_m(delta, count, loadgen_s=None):
    """CPU seconds per million of count, per process."""
    out = {k[:-2]: per_m(v, count) for k, v in delta.items()
           if k.endswith("_s") and k != "wall_s"}
    if loadgen_s is not None:
        out["cploadgen"] = per_m(loadgen_s, count)
    return out


def ts_s(text):
    """A log line's "ts" (RFC 3339, UTC, ms) as epoch seconds."""
    return datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ") \
        .replace(tzinfo=datetime.timezone.utc).timestamp()


class JsonLog:
    """A process's stderr of JSON lines, read as it grows."""

    def __init__(self, path):
        self.path, self.pos, self.lines = path, 0, []

    def poll(self):
        try:
            with open(self.path, "rb") as f:
                f.seek(self.pos)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self.pos += end
        for raw in data[:end].splitlines():
            try:
                obj = json.loads(raw)
            except ValueError:
                continue
            if isinstance(obj, dict):
                self.lines.append(obj)

    def find(self, msg, last=False):
        hits = [l for l in self.lines if l.get("msg") == msg]
        return (hits[-1] if last else hits[0]) if hits else None


# ---------------------------------------------------------------------------
# cploadgen and cptimes
# ---------------------------------------------------------------------------

class Loadgen:
    """cploadgen in the background; its rusage is taken when it is reaped.
    Started like the harness' services (harness._popen: killed with us)."""

    def __init__(self, binary, args, log_path):
        self.log = JsonLog(log_path)
        with open(log_path, "wb") as err:
            self.proc = harness._popen([binary, *args],
                                       stdout=subprocess.DEVNULL, stderr=err)
        self.t0, self.t1, self.rusage = time.time(), None, None

    def done(self):
        if self.rusage is None:
            pid, status, ru = os.wait4(self.proc.pid, os.WNOHANG)
            if pid == 0:
                return False
            self.proc.returncode = os.waitstatus_to_exitcode(status)
            self.t1, self.rusage = time.time(), ru
        return True

    def records(self):
        self.log.poll()
        p = self.log.find("progress", last=True)
        return p["records"] if p else 0

    def summary(self):
        """The summary line; raises unless cploadgen succeeded."""
        self.log.poll()
        s = self.log.find("summary", last=True)
        if self.proc.returncode != 0 or s is None:
            tail = "\n".join(json.dumps(l) for l in self.log.lines[-5:])
            raise BenchError(f"cploadgen exited {self.proc.returncode}:\n"
                             f"{tail}")
        return s

    def figures(self):
        s = self.summary()
        cpu = self.rusage.ru_utime + self.rusage.ru_stime
        return {"records": s["records"], "orders": s["orders"],
                "browsing": s["browsing"], "support": s["support"],
                "duplicates": s["duplicates"], "malformed": s["malformed"],
                "wall_s": round(self.t1 - self.t0, 3),
                "records_per_s": round(s["records_per_s"]),
                "cpu_s": round(cpu, 3),
                "cpu_s_per_m_records": per_m(cpu, s["records"]),
                "max_rss_kb": self.rusage.ru_maxrss}

    def kill(self):
        if not self.done():
            self.proc.kill()
            os.wait4(self.proc.pid, 0)


def cptimes(ctx, *args):
    """cptimes' output lines, split at tabs."""
    res = subprocess.run([ctx.tools["cptimes"], "-b", ctx.st.bootstrap,
                          *args], capture_output=True, text=True,
                         timeout=900)
    if res.returncode != 0:
        raise BenchError(f"cptimes {' '.join(args)} exited "
                         f"{res.returncode}: {res.stderr[-1000:]}")
    return [l.split("\t") for l in res.stdout.splitlines()]


def high_watermarks(ctx, topics):
    """{topic: [high of each partition]}."""
    out = {t: [] for t in topics}
    for topic, part, _low, high in cptimes(ctx, "--watermarks", *topics):
        out[topic].append(int(high))
        assert len(out[topic]) == int(part) + 1
    return out


# ---------------------------------------------------------------------------
# custpulse
# ---------------------------------------------------------------------------

# ---------------------------------------------------------------------------
# Allocation counts (--count-allocs)
# ---------------------------------------------------------------------------

# Calling objects by library, for the figures line; the rest is "other".
ALLOC_LIBS = (("hiredis", "libhiredis"), ("librdkafka", "librdkafka"),
              ("jansson", "libjansson"), ("custpulse", "custpulse"),
              ("libc", "libc.so"))
ALLOC_KINDS = ("malloc", "calloc", "realloc", "memalign")


def alloc_lib(obj):
    for lib, prefix in ALLOC_LIBS:
        if obj.startswith(prefix):
            return lib
    return "other"


class Allocs:
    """The dumps of bench/libcpallocs.so in one custpulse process: snap()
    asks for one (SIGUSR2) and returns the loop thread's (the main thread:
    tid = pid) counts {object: {kind: n, "bytes": n}}."""

    def __init__(self, path):
        self.path = path
        self.seen = 0

    def env(self, lib):
        return {"LD_PRELOAD": lib, "CPALLOCS_OUT": self.path}

    def _blocks(self):
        try:
            with open(self.path) as f:
                text = f.read()
        except FileNotFoundError:
            return []
        return [b for b in text.split("# cpallocs dump ")[1:]
                if b.endswith("\n")]

    def snap(self, pid, timeout=10):
        os.kill(pid, signal.SIGUSR2)
        deadline = time.monotonic() + timeout
        while len(self._blocks()) <= self.seen:
            if time.monotonic() > deadline:
                raise BenchError("no allocation dump from custpulse "
                                 f"({self.path})")
            time.sleep(0.05)
        blocks = self._blocks()
        self.seen = len(blocks)
        out = {}
        for line in blocks[-1].splitlines()[1:]:
            tid, _comm, obj, *n = line.split()
            if int(tid) == pid:
                out[obj] = dict(zip(ALLOC_KINDS + ("bytes",), map(int, n)))
        return out


def alloc_figures(new, old, events):
    """Allocations of the loop thread per event between two snaps: total,
    by library and by calling object."""
    by_obj = {}
    for obj, n in new.items():
        o = old.get(obj, {})
        d = {k: v - o.get(k, 0) for k, v in n.items()}
        d["calls"] = sum(d[k] for k in ALLOC_KINDS)
        by_obj[obj] = d
    by_lib = {lib: 0 for lib, _ in ALLOC_LIBS}
    by_lib["other"] = 0
    for obj, d in by_obj.items():
        by_lib[alloc_lib(obj)] += d["calls"]
    total = sum(by_lib.values())
    return {"events": events, "calls": total,
            "per_event": ratio(total, events),
            "per_event_by_lib": {k: ratio(v, events)
                                 for k, v in by_lib.items()},
            "by_object": by_obj}


def line_allocs(phase, f):
    libs = ", ".join(f"{k} {v}" for k, v in f["per_event_by_lib"].items())
    return (f"phase {phase} allocations (loop thread, under the counter: "
            f"timings not comparable): mallocs per event: total "
            f"{f['per_event']} ({libs}) over {f['events']:,} events")


class App:
    """One custpulse process of the benchmark and its stats lines."""

    def __init__(self, ctx, cfg, name, args):
        self.ctx = ctx
        lib = ctx.tools.get("cpallocs")
        self.allocs = Allocs(ctx.st.path(f"cpallocs-{name}.txt")) \
            if lib else None
        self.cp = Custpulse(ctx.st, cfg, name=name,
                            binary=ctx.tools["custpulse"],
                            env=self.allocs.env(lib) if lib else None)
        self.cp.start(args)
        self.t0 = time.time()
        self.log = JsonLog(self.cp.stderr_path)
        self.rusage = None

    @property
    def pid(self):
        return self.cp.pid

    def stats(self):
        """The latest stats line ({} before the first)."""
        self.log.poll()
        return self.log.find("stats", last=True) or {}

    def check_running(self):
        if not self.cp.running():
            self.log.poll()
            tail = "\n".join(json.dumps(l) for l in self.log.lines[-8:])
            raise BenchError(f"custpulse exited {self.cp.proc.returncode}:"
                             f"\n{tail}")

    def wait_records(self, total, what, stall_s):
        """Waits until events + dlq reach total; returns that stats line.
        Raises when custpulse exits or nothing moves for stall_s."""
        seen, moved, next_say = -1, time.monotonic(), time.monotonic()
        while True:
            self.check_running()
            s = self.stats()
            done = s.get("events", 0) + s.get("dlq", 0)
            if done >= total:
                return s
            now = time.monotonic()
            if done != seen:
                seen, moved = done, now
            elif now - moved > stall_s:
                raise BenchError(f"{what}: custpulse stuck at {done:,} of "
                                 f"{total:,} records for {stall_s} s")
            if now >= next_say:
                say(f"{what}: custpulse at {done:,} / {total:,} records")
                next_say = now + PROGRESS_S
            time.sleep(0.1)

    def reap(self, timeout):
        """Waits for exit (of run --exit-at-end) keeping the rusage."""
        deadline = time.monotonic() + timeout
        while True:
            pid, status, ru = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self.cp.proc.returncode = os.waitstatus_to_exitcode(status)
                self.t1, self.rusage = time.time(), ru
                self.cp.wait(0)  # unregisters it from the harness
                self.log.poll()
                return self.cp.proc.returncode
            if time.monotonic() > deadline:
                self.cp.kill9()
                raise BenchError(f"custpulse still running after {timeout}"
                                 " s")
            time.sleep(0.05)

    def stop(self):
        rc = self.cp.stop(timeout=60)
        self.log.poll()
        if rc != 0:
            raise BenchError(f"custpulse exited {rc} on SIGTERM")
        return self.log.find("stopped", last=True)


def counters(new, old):
    """Deltas of custpulse's counters between two stats lines."""
    keys = ("events", "applied", "duplicates", "skipped_redelivered", "dlq",
            "outputs", "batches", "writes", "redis_commands",
            "redis_round_trips", "write_conflicts", "sweeps",
            "sweep_customers", "due_evaluations")
    return {k: new.get(k, 0) - old.get(k, 0) for k in keys}


def redis_figures(c):
    return {"commands_per_event": ratio(c["redis_commands"], c["events"]),
            "round_trips_per_batch": ratio(c["redis_round_trips"],
                                           c["batches"], 2),
            "events_per_batch": ratio(c["events"], c["batches"], 1)}


# ---------------------------------------------------------------------------
# Redis memory per customer
# ---------------------------------------------------------------------------

def scan_keys(r, pattern, sample, rnd):
    """(count of keys matching pattern, a uniform sample of them)."""
    cursor, n, picked = b"0", 0, []
    while True:
        cursor, keys = r.cmd("SCAN", cursor, "MATCH", pattern, "COUNT",
                             "10000")
        for k in keys:
            n += 1
            if len(picked) < sample:
                picked.append(k)
            elif rnd.randrange(n) < sample:
                picked[rnd.randrange(sample)] = k
        if cursor == b"0":
            return n, picked


def memory_per_customer(r, used_before, prefix="cp:", sample=1000):
    """Used memory over customers, and MEMORY USAGE of a sample of
    customer hashes plus the due index's bytes per customer."""
    used = redis_used_memory(r)
    customers, picked = scan_keys(r, prefix + "c:*", sample,
                                  random.Random(7))
    usage = sorted(r.cmd("MEMORY", "USAGE", k, "SAMPLES", "0")
                   for k in picked)
    _, due_keys = scan_keys(r, prefix + "due:*", 1 << 20, random.Random(7))
    due_entries = sum(r.cmd("ZCARD", k) for k in due_keys)
    due_bytes = sum(r.cmd("MEMORY", "USAGE", k, "SAMPLES", "0")
                    for k in due_keys)
    hash_mean = sum(usage) / len(usage) if usage else 0
    fields = {}
    for k in picked:
        flat = r.cmd("HGETALL", k)
        for name, val in zip(flat[0::2], flat[1::2]):
            g = name.decode("utf-8", "replace")
            g = g.split(":")[0] + ":*" if ":" in g else g
            fields[g] = fields.get(g, 0) + len(name) + len(val)
    return {
        "customers": customers, "keys": r.cmd("DBSIZE"),
        "used_memory_delta": used - used_before,
        "used_memory_per_customer": ratio(used - used_before, customers, 1),
        "hash_sample": len(usage), "hash_mean_bytes": round(hash_mean, 1),
        "hash_median_bytes": usage[len(usage) // 2] if usage else None,
        "hash_max_bytes": usage[-1] if usage else None,
        "due_entries": due_entries,
        "due_bytes_per_entry": ratio(due_bytes, due_entries, 1),
        "hash_field_bytes": {g: round(b / len(picked), 1) for g, b in
                             sorted(fields.items(), key=lambda x: -x[1])}
        if picked else {},
        "hash_plus_due_per_customer":
            round(hash_mean + (due_bytes / customers if customers else 0), 1),
    }


# ---------------------------------------------------------------------------
# Phase 1: backlog drain
# ---------------------------------------------------------------------------

def run_loadgen(ctx, args, what):
    """Runs cploadgen to its end with progress lines; returns its figures."""
    lg = Loadgen(ctx.tools["cploadgen"],
                 ["-b", ctx.st.bootstrap, "--customers", str(ctx.a.customers),
                  "--stats-every", "1", *args],
                 ctx.st.path(f"cploadgen-{what}.stderr.log"))
    try:
        next_say = time.monotonic() + PROGRESS_S
        while not lg.done():
            if time.monotonic() >= next_say:
                say(f"{what}: cploadgen at {lg.records():,} records")
                next_say += PROGRESS_S
            time.sleep(0.1)
    finally:
        lg.kill()
    return lg


def base_config(ctx):
    """harness.config() with the product's defaults for what the tests
    turn off, except the sweep (module docstring)."""
    return config(ctx.st, **{
        "topic.churn": OUTPUTS[1], "topic.metrics": OUTPUTS[2],
        "topic.profile": "", "rfmq.mode": None,
        "due.sweep_ms": 0, "stats.interval_ms": 200})


def phase_backlog(ctx):
    a, st = ctx.a, ctx.st
    for t in INPUTS:
        st.create_topic(t, partitions=3)
    first = ctx.today - 366 * DAY_S
    say(f"phase 1: producing {a.events:,} events for {a.customers:,} "
        "customers")
    b0 = proc_cpu_s(st.kafka_proc.pid)
    lg = run_loadgen(ctx, ["--events", str(a.events), "--seed", str(a.seed),
                           "--start", day(first), "--days", "365"],
                     "preload")
    load = lg.figures()
    load["broker_cpu_s_per_m_records"] = per_m(
        proc_cpu_s(st.kafka_proc.pid) - b0, load["records"])
    records = load["records"]
    with st.redis() as r:
        used0 = redis_used_memory(r)
        r.cmd("CONFIG", "RESETSTAT")
        cpu0 = Cpu(st, r)
        say("phase 1: custpulse starts")
        app = ctx.app = App(ctx, base_config(ctx), "cpbench", ["run"])
        s1 = app.wait_records(records, "phase 1", a.stall_s)
        cpu = Cpu(st, r, app.pid) - cpu0
        allocs = app.allocs.snap(app.pid) if app.allocs else None
        mem = proc_mem_kb(app.pid)
        calls = command_calls(r)
        say("phase 1: caught up; counting Redis memory")
        memory = memory_per_customer(r, used0)
        if a.memory_whatif:
            memory["whatif"] = memwhatif.whatif(
                r, "cp:", INPUTS, os.path.join(ROOT, "deploy", "local",
                                               "redis.conf"), say)
    assigned = app.log.find("partitions assigned")
    t_end = ts_s(s1["ts"])
    drain_s = t_end - app.t0
    busy_s = t_end - ts_s(assigned["ts"]) if assigned else drain_s
    c = counters(s1, {})
    out = high_watermarks(ctx, OUTPUTS + (DLQ,))
    res = {
        "records": records, "loadgen": load,
        "drain_s": round(drain_s, 3), "consuming_s": round(busy_s, 3),
        "events_per_s": round((c["events"] + c["dlq"]) / busy_s),
        "events_per_s_with_startup": round((c["events"] + c["dlq"]) /
                                           drain_s),
        "counters": c, **redis_figures(c), "redis_commandstats": calls,
        "cpu_s": cpu, "cpu_s_per_m_events":
            cpu_per_m(cpu, records, load["cpu_s"]),
        "rss_kb": {"max": mem["VmHWM"], "end": mem["VmRSS"]},
        "load_avg_end": os.getloadavg(),
        "memory": memory,
        "outputs_per_s": round(c["outputs"] / busy_s),
        "output_records": {t: sum(v) for t, v in out.items()},
        "dlq": c["dlq"], "malformed": load["malformed"],
        "config": app.cp.cfg,
    }
    if allocs is not None:
        res["allocs"] = alloc_figures(allocs, {}, c["events"] + c["dlq"])
        ctx.marks["allocs"] = allocs
    ctx.marks.update({"records": records, "stats": s1})
    return res


def day(epoch_s):
    return time.strftime("%Y-%m-%d", time.gmtime(epoch_s))


def line_backlog(p):
    m, cpu = p["memory"], p["cpu_s_per_m_events"]
    return (f"phase 1 backlog: {p['records']:,} records in "
            f"{p['consuming_s']:.1f} s = {p['events_per_s']:,} events/s "
            f"({p['drain_s']:.1f} s, {p['events_per_s_with_startup']:,}/s "
            f"from process start) | CPU s per M events: {fmt_cpu(cpu)} | "
            f"redis cmds/event {p['commands_per_event']}, round trips/batch "
            f"{p['round_trips_per_batch']} ({p['events_per_batch']} "
            f"events/batch) | redis memory {m['used_memory_per_customer']} "
            f"B/customer ({m['customers']:,} customers; hash "
            f"{m['hash_mean_bytes']} B + due entry "
            f"{m['due_bytes_per_entry']} B) | RSS max "
            f"{p['rss_kb']['max'] / 1024:.1f} MB, end "
            f"{p['rss_kb']['end'] / 1024:.1f} MB | outputs "
            f"{p['counters']['outputs']:,} = {p['outputs_per_s']:,}/s | dlq "
            f"{p['dlq']} (cploadgen malformed {p['malformed']}) | cploadgen "
            f"{p['loadgen']['records_per_s']:,} records/s" +
            ("" if "whatif" not in m else " | memory what-if B/customer: " +
             ", ".join(f"{k} {v}" for k, v in m["whatif"].items())))


def fmt_cpu(cpu):
    return ", ".join(f"{k} {v}" for k, v in cpu.items())


# ---------------------------------------------------------------------------
# Phase 2: steady state
# ---------------------------------------------------------------------------

def percentile(sorted_values, q):
    """Nearest-rank percentile of a sorted list."""
    if not sorted_values:
        return None
    k = max(0, math.ceil(q * len(sorted_values)) - 1)
    return sorted_values[k]


def read_latencies(ctx, in_start, out_start):
    """[(output timestamp, latency ms)] sorted by latency: output timestamp
    minus its cause's input timestamp, for every output record written
    since out_start whose cause is an input record since in_start; also
    the input records read, outputs without an input cause, outputs whose
    cause was not found."""
    def spec(start):
        return [f"{t}@{','.join(map(str, offs))}" for t, offs in
                start.items()]

    inputs = {}
    for topic, part, off, ts in cptimes(ctx, *spec(in_start)):
        inputs[(topic, int(part), int(off))] = int(ts)
    lat, other, unmatched = [], 0, 0
    for row in cptimes(ctx, "--cause", *spec(out_start)):
        if row[4] == "-":
            other += 1
            continue
        t_in = inputs.get((row[4], int(row[5]), int(row[6])))
        if t_in is None:
            unmatched += 1
        else:
            lat.append((int(row[3]), int(row[3]) - t_in))
    lat.sort(key=lambda x: x[1])
    return lat, len(inputs), other, unmatched


def latency_figures(lat):
    """Percentiles of [(output ts, ms)] sorted by ms, and per second of
    output time [second, outputs, p50, p99, max] (where a tail comes
    from: contention, a stall, something periodic)."""
    ms = [v for _, v in lat]
    out = {"outputs": len(ms), "min": ms[0] if ms else None,
           "p50": percentile(ms, 0.50), "p90": percentile(ms, 0.90),
           "p99": percentile(ms, 0.99), "max": ms[-1] if ms else None}
    t0 = min((t for t, _ in lat), default=0)
    by_s = {}
    for t, v in lat:  # in latency order: each second's list stays sorted
        by_s.setdefault((t - t0) // 1000, []).append(v)
    out["by_second"] = [[s, len(v), percentile(v, 0.5), percentile(v, 0.99),
                         v[-1]] for s, v in sorted(by_s.items())]
    later = [v for t, v in lat if t - t0 >= WARMUP_S * 1000]
    out[f"after_{WARMUP_S}s"] = {
        "outputs": len(later), "p50": percentile(later, 0.50),
        "p99": percentile(later, 0.99), "max": later[-1] if later else None}
    return out


def phase_steady(ctx, backlog):
    a, st, app = ctx.a, ctx.st, ctx.app
    rate = a.rate or max(1, round(backlog["events_per_s"] / 2))
    n = int(rate * a.steady_s)
    in0 = high_watermarks(ctx, INPUTS)
    out0 = high_watermarks(ctx, OUTPUTS + (DLQ,))
    with st.redis() as r:
        aof_wait = wait_aof_idle(r)
        s0 = app.stats()
        allocs0 = app.allocs.snap(app.pid) if app.allocs else None
        used0 = redis_used_memory(r)
        r.cmd("CONFIG", "RESETSTAT")
        cpu0 = Cpu(st, r, app.pid)
        say(f"phase 2: {rate:,} events/s for {a.steady_s} s")
        lg = Loadgen(ctx.tools["cploadgen"],
                     ["-b", st.bootstrap, "--customers", str(a.customers),
                      "--events", str(n), "--rate", str(rate), "--seed",
                      str(a.seed + 1), "--id-prefix", "lg2-", "--start",
                      day(ctx.today - DAY_S), "--days", "1",
                      "--stats-every", "1"],
                     st.path("cploadgen-steady.stderr.log"))
        try:
            next_say = time.monotonic() + PROGRESS_S
            while not lg.done():
                app.check_running()
                if time.monotonic() >= next_say:
                    s = app.stats()
                    done = s.get("events", 0) + s.get("dlq", 0) - \
                        ctx.marks["records"]
                    say(f"phase 2: cploadgen at {lg.records():,} records, "
                        f"custpulse at {done:,}")
                    next_say += PROGRESS_S
                time.sleep(0.1)
        finally:
            lg.kill()
        load = lg.figures()
        total = ctx.marks["records"] + load["records"]
        s1 = app.wait_records(total, "phase 2", a.stall_s)
        cpu = Cpu(st, r, app.pid) - cpu0
        allocs1 = app.allocs.snap(app.pid) if app.allocs else None
        mem = proc_mem_kb(app.pid)
        calls = command_calls(r)
        used1 = redis_used_memory(r)
    # from cploadgen's last acknowledged record (its summary) to the stats
    # line that counted it: 0 = within one stats period
    tail_s = max(0.0, ts_s(s1["ts"]) - ts_s(lg.summary()["ts"]))
    out1 = high_watermarks(ctx, OUTPUTS + (DLQ,))
    say("phase 2: reading the records back for the latencies")
    t = time.monotonic()
    lat, n_in, other, unmatched = read_latencies(
        ctx, in0, {t: out0[t] for t in OUTPUTS})
    read_s = time.monotonic() - t
    c = counters(s1, s0)
    window = ts_s(s1["ts"]) - lg.t0
    res = {
        "rate": rate, "duration_s": a.steady_s, "records": load["records"],
        "loadgen": load, "window_s": round(window, 3),
        "caught_up_after_loadgen_s": round(tail_s, 3),
        "events_per_s": round((c["events"] + c["dlq"]) / window),
        "latency_ms": latency_figures(lat),
        "outputs_without_input_cause": other,
        "outputs_cause_not_found": unmatched,
        "input_records_read": n_in, "read_back_s": round(read_s, 2),
        "waited_for_aof_rewrite_s": aof_wait,
        "counters": c, **redis_figures(c), "redis_commandstats": calls,
        "cpu_s": cpu, "cpu_s_per_m_events":
            cpu_per_m(cpu, load["records"], load["cpu_s"]),
        "rss_kb": {"max": mem["VmHWM"], "end": mem["VmRSS"]},
        "load_avg_end": os.getloadavg(),
        "redis_used_memory_delta": used1 - used0,
        "outputs_per_s": round(c["outputs"] / window),
        "output_records": {t: sum(out1[t]) - sum(out0[t]) for t in out1},
        "dlq": c["dlq"], "malformed": load["malformed"],
    }
    if allocs1 is not None:
        res["allocs"] = alloc_figures(allocs1, allocs0,
                                      c["events"] + c["dlq"])
    stopped = app.stop()
    res["exit_stats"] = {k: v for k, v in (stopped or {}).items()
                         if k not in ("ts", "level", "msg")}
    return res


def line_steady(p):
    la = p["latency_ms"]
    lw = la[f"after_{WARMUP_S}s"]
    return (f"phase 2 steady: {p['rate']:,} events/s offered for "
            f"{p['duration_s']} s, {p['records']:,} records processed at "
            f"{p['events_per_s']:,}/s (caught up "
            f"{p['caught_up_after_loadgen_s']:.1f} s after the last) | "
            f"latency ms p50 {la['p50']} p90 {la['p90']} p99 {la['p99']} max "
            f"{la['max']} ({la['outputs']:,} outputs; after the first "
            f"{WARMUP_S} s p50 {lw['p50']} p99 {lw['p99']} max {lw['max']}) | "
            f"CPU s per M events: "
            f"{fmt_cpu(p['cpu_s_per_m_events'])} | redis cmds/event "
            f"{p['commands_per_event']}, round trips/batch "
            f"{p['round_trips_per_batch']} ({p['events_per_batch']} "
            f"events/batch) | RSS max {p['rss_kb']['max'] / 1024:.1f} MB, "
            f"end {p['rss_kb']['end'] / 1024:.1f} MB | outputs "
            f"{p['counters']['outputs']:,} = {p['outputs_per_s']:,}/s | dlq "
            f"{p['dlq']} (cploadgen malformed {p['malformed']})")


# ---------------------------------------------------------------------------
# Phase 3: due-time sweep
# ---------------------------------------------------------------------------

def sweep_window(app):
    """(start, end) epoch seconds of the sweep: from the final sweep's
    start (the input's end) to its end. When the periodic sweep had begun
    before, the start is the last stats line showing nothing swept."""
    final = app.log.find("all assigned partitions reached their end; "
                         "sweeping due customers")
    end = app.log.find("all assigned partitions reached their end")
    if final is None or end is None:
        raise BenchError("sweep: custpulse logged no start or end of its "
                         "final sweep")
    start = ts_s(final["ts"])
    stats = [l for l in app.log.lines if l.get("msg") == "stats"]
    swept = [ts_s(l["ts"]) for l in stats if l["sweep_customers"] > 0]
    if swept and swept[0] <= start:
        before = [ts_s(l["ts"]) for l in stats if ts_s(l["ts"]) < swept[0]]
        start = before[-1] if before else app.t0
    return start, ts_s(end["ts"])


def phase_sweep(ctx):
    a, st = ctx.a, ctx.st
    n, due = a.sweep_customers, a.sweep_due
    st.create_topic(SWEEP["orders"], partitions=1)
    with st.redis(timeout=120) as r:
        r.cmd("FLUSHALL")
        now_ms = int(time.time() * 1000)
        say(f"phase 3: loading {n:,} customers, {due:,} due")
        t = time.monotonic()
        due_sweep.load(st.redis_port, n, due, due_sweep.template(now_ms),
                       now_ms, say=say)
        load_s = time.monotonic() - t
        aof_wait = wait_aof_idle(r)
        used = redis_used_memory(r)
        r.cmd("CONFIG", "RESETSTAT")
        k0 = key_lookups(r)
        cpu0 = Cpu(st, r)
        cfg = config(st, **{
            "topic.orders": SWEEP["orders"], "topic.browsing": "",
            "topic.support": "", "topic.profile": "",
            "topic.segments": SWEEP["segments"],
            "topic.churn": SWEEP["churn"], "topic.metrics": SWEEP["metrics"],
            "topic.dlq": SWEEP["dlq"], "rfm.reference": "fixed",
            "rfmq.mode": "fixed", "due.sweep_ms": None,
            "stats.interval_ms": 100})
        say("phase 3: custpulse run --exit-at-end")
        app = App(ctx, cfg, "cpbench-sweep", ["run", "--exit-at-end"])
        rc = app.reap(max(120, n / 1000))
        if rc != 0:
            tail = "\n".join(json.dumps(l) for l in app.log.lines[-8:])
            raise BenchError(f"sweep: custpulse exited {rc}:\n{tail}")
        cpu = Cpu(st, r) - cpu0
        cpu["custpulse_s"] = round(app.rusage.ru_utime +
                                   app.rusage.ru_stime, 3)
        lookups = key_lookups(r) - k0
        calls = command_calls(r)
        left = r.cmd("ZCOUNT", "cp:due:0", "-inf", str(now_ms))
    stopped = app.log.find("stopped", last=True)
    start, end = sweep_window(app)
    c = counters(stopped, {})
    evaluated = c["due_evaluations"]
    return {
        "customers": n, "due": due, "load_s": round(load_s, 1),
        "waited_for_aof_rewrite_s": aof_wait,
        "redis_used_memory": used, "sweep_s": round(end - start, 3),
        "run_s": round(app.t1 - app.t0, 3),
        "customers_per_s": round(evaluated / (end - start))
        if end > start else None,
        "counters": c, "due_left": left,
        "commands_per_customer": ratio(c["redis_commands"], evaluated),
        "round_trips_per_sweep": ratio(c["redis_round_trips"], c["sweeps"],
                                       2),
        "customers_per_sweep": ratio(c["sweep_customers"], c["sweeps"], 1),
        "redis_key_lookups_per_customer": ratio(lookups, evaluated, 2),
        "redis_commandstats": calls,
        "cpu_s": cpu, "cpu_s_per_m_customers": cpu_per_m(cpu, evaluated),
        "max_rss_kb": app.rusage.ru_maxrss, "outputs": c["outputs"],
        "load_avg_end": os.getloadavg(),
        "config": app.cp.cfg,
    }


def line_sweep(p):
    return (f"phase 3 sweep: {p['customers']:,} customers, {p['due']:,} "
            f"due: {p['counters']['due_evaluations']:,} evaluated in "
            f"{p['sweep_s']:.3f} s = {p['customers_per_s']:,} customers/s "
            f"({p['due_left']} still due) | CPU s per M customers: "
            f"{fmt_cpu(p['cpu_s_per_m_customers'])} | redis cmds/customer "
            f"{p['commands_per_customer']}, round trips/sweep batch "
            f"{p['round_trips_per_sweep']} ({p['customers_per_sweep']} "
            f"customers/batch), key lookups/customer "
            f"{p['redis_key_lookups_per_customer']} | RSS max "
            f"{p['max_rss_kb'] / 1024:.1f} MB | outputs {p['outputs']:,}")


# ---------------------------------------------------------------------------
# Machine, options, main
# ---------------------------------------------------------------------------

def first_match(path, pattern):
    try:
        with open(path) as f:
            m = re.search(pattern, f.read(), re.M)
    except OSError:
        return None
    return m.group(1).strip() if m else None


def command_out(argv):
    try:
        res = subprocess.run(argv, capture_output=True, text=True,
                             timeout=30)
    except OSError:
        return None
    return (res.stdout + res.stderr).strip() or None


def machine(ctx):
    with ctx.st.redis() as r:
        redis_version = redis_info(r, "server")["redis_version"]
    jars = os.listdir(harness.JARS_DIR)
    kafka = next((m.group(1) for j in jars
                  for m in [re.match(r"kafka-server-([0-9.]+)\.jar$", j)]
                  if m),
                 None)
    mem_kb = first_match("/proc/meminfo", r"^MemTotal:\s+(\d+)")
    build = os.path.join(os.path.dirname(ctx.tools["custpulse"]),
                         "CMakeCache.txt")
    java = command_out(["java", "-version"])
    return {
        "nproc": os.cpu_count(), "usable_cpus": len(os.sched_getaffinity(0)),
        "cpu_model": first_match("/proc/cpuinfo", r"^model name\s*:(.*)$"),
        "ram_gib": round(int(mem_kb) / 1048576, 1) if mem_kb else None,
        "kernel": platform.release(),
        "redis": redis_version, "kafka": kafka,
        "java": java.splitlines()[0] if java else None,
        "librdkafka": command_out([ctx.tools["cptimes"], "--version"]),
        "custpulse_commit": command_out(["git", "-C", ROOT, "describe",
                                         "--always", "--dirty"]),
        "build_type": first_match(build, r"^CMAKE_BUILD_TYPE:STRING=(.*)$"),
        "load_avg_at_start": os.getloadavg()[0],
    }


def line_machine(m, size):
    return (f"cpbench {size}: {m['nproc']} CPUs ({m['cpu_model']}), "
            f"{m['ram_gib']} GiB RAM, Linux {m['kernel']}; redis "
            f"{m['redis']}, Kafka {m['kafka']} ({m['java']}), "
            f"{m['librdkafka']}; custpulse {m['custpulse_commit']} "
            f"({m['build_type']})")


def find_tools(a):
    def pick(name, *cands):
        for p in cands:
            if p and os.path.isfile(p) and os.access(p, os.X_OK):
                return os.path.abspath(p)
        sys.exit(f"cpbench: {name} not found (tried {[c for c in cands if c]})")

    cp = pick("custpulse", a.bin, os.environ.get("CP_BIN"),
              os.path.join(ROOT, "build", "custpulse"))
    bench = os.path.join(os.path.dirname(cp), "bench")
    tools = {}
    if a.count_allocs:
        lib = os.path.join(bench, "libcpallocs.so")
        if not os.path.isfile(lib):
            sys.exit(f"cpbench: {lib} not found (a build without "
                     "sanitizers makes it)")
        tools["cpallocs"] = lib
    return {**tools, "custpulse": cp,
            "cploadgen": pick("cploadgen", a.loadgen,
                              os.environ.get("CP_LOADGEN"),
                              os.path.join(bench, "cploadgen")),
            "cptimes": pick("cptimes", a.cptimes,
                            os.environ.get("CP_CPTIMES"),
                            os.path.join(bench, "cptimes"))}


def parse_args(argv=None):
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help=f"CI size: {QUICK}")
    ap.add_argument("--customers", type=int, help="N (1,000,000)")
    ap.add_argument("--events", type=int, help="M of phase 1 (10,000,000)")
    ap.add_argument("--steady-s", type=float,
                    help="phase 2 duration in s (60)")
    ap.add_argument("--rate", type=int,
                    help="phase 2 events/s (half of phase 1's)")
    ap.add_argument("--sweep-customers", type=int,
                    help="phase 3 customers (1,000,000)")
    ap.add_argument("--sweep-due", type=int,
                    help="phase 3 customers due (1 %% of them)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--phases", default="1,2,3",
                    help="phases to run (2 needs 1)")
    ap.add_argument("--memory-whatif", action="store_true",
                    help="phase 1: also measure other encodings of the "
                    "same state in a scratch Redis (bench/memwhatif.py)")
    ap.add_argument("--stall-s", type=float, default=120,
                    help="fail when custpulse's counters stand still this "
                    "long (120)")
    ap.add_argument("--json", help="results file (bench/results/"
                    "cpbench-<size>.json)")
    ap.add_argument("--bin", help="custpulse (CP_BIN, build/custpulse)")
    ap.add_argument("--loadgen", help="cploadgen")
    ap.add_argument("--cptimes", help="cptimes")
    ap.add_argument("--count-allocs", action="store_true",
                    help="count custpulse's heap allocations per event "
                    "(bench/libcpallocs.so next to cploadgen; slows it)")
    a = ap.parse_args(argv)
    base = QUICK if a.quick else FULL
    custom = any(getattr(a, k) is not None for k in base)
    for k, v in base.items():
        if getattr(a, k) is None:
            setattr(a, k, v)
    if a.sweep_due is None:
        a.sweep_due = max(1, a.sweep_customers // 100)
    a.size = ("quick" if a.quick else "full") if not custom else \
        f"{a.customers}c-{a.events}e"
    a.phases = {int(p) for p in a.phases.split(",")}
    if 2 in a.phases and 1 not in a.phases:
        ap.error("phase 2 runs on phase 1's customers and custpulse")
    a.json = a.json or os.path.join(HERE, "results",
                                    f"cpbench-{a.size}.json")
    return a


class Ctx:
    """What the phases share."""

    def __init__(self, a, tools, st):
        self.a, self.tools, self.st = a, tools, st
        self.today = int(time.time()) // DAY_S * DAY_S
        self.app = None
        self.marks = {}


def run(a):
    tools = find_tools(a)
    t0 = time.monotonic()
    res = {"size": a.size, "sizes": {
        "customers": a.customers, "events": a.events,
        "steady_s": a.steady_s, "rate": a.rate,
        "sweep_customers": a.sweep_customers, "sweep_due": a.sweep_due,
        "seed": a.seed}, "tools": tools, "phases": {}}
    with Stack(kafka="own") as st:
        ctx = Ctx(a, tools, st)
        res["machine"] = machine(ctx)
        print(line_machine(res["machine"], a.size), flush=True)
        phases = res["phases"]
        if 1 in a.phases:
            phases["backlog"] = phase_backlog(ctx)
            print(line_backlog(phases["backlog"]), flush=True)
            if "allocs" in phases["backlog"]:
                print(line_allocs(1, phases["backlog"]["allocs"]),
                      flush=True)
        if 2 in a.phases:
            phases["steady"] = phase_steady(ctx, phases["backlog"])
            print(line_steady(phases["steady"]), flush=True)
            if "allocs" in phases["steady"]:
                print(line_allocs(2, phases["steady"]["allocs"]), flush=True)
        elif ctx.app is not None:
            ctx.app.stop()
        if 3 in a.phases:
            phases["sweep"] = phase_sweep(ctx)
            print(line_sweep(phases["sweep"]), flush=True)
    res["wall_s"] = round(time.monotonic() - t0, 1)
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump(res, f, indent=2)
    print(f"cpbench: {a.size} done in {res['wall_s']} s; results in "
          f"{a.json}", flush=True)
    return res


def main():
    a = parse_args()
    try:
        run(a)
    except BenchError as e:
        print(f"cpbench: FAILED: {e}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
