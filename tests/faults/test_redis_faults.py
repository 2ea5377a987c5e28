"""Redis faults under load: a stalled, script-less, crashed or un-replicated
Redis while events keep coming, and the state still exact.

test_outages.py covers single aimed faults on a one-partition stream that
is produced in chunks. Here a producer thread (loadgen.SteadyProducer)
feeds valid order events to a 3-partition input topic at a steady rate
the whole time custpulse runs, and the fault lands wherever the stream
happens to be. Four scenarios share one Stack (Redis + Kafka 3.9), each
with its own topics, Redis key prefix and group id:

  1 pause    Redis SIGSTOPped for PAUSE_S (3 s) with redis.timeout_ms 500:
             the per-command deadline must drop the connection; the final
             counters (the "stopped" line, docs/fault-tolerance.md) show
             redis_timeouts >= 1.
  2 flush    SCRIPT FLUSH sent every 300 ms for 5 s: every EVALSHA in the
             pipelines (customer writes, outbox clears, partition epochs)
             may get NOSCRIPT; Redis's errorstat_NOSCRIPT must grow (the
             path ran) and nothing may be counted twice or lost.
  3 crash    redis-server SIGKILLed, down DOWN_S (2 s), started again from
             its AOF: redis_restarts_seen >= 1 (run_id changed).
  4 wait     custpulse with redis.wait_replicas=1 (wait_timeout_ms 300,
             timeout_ms 2000, stats.interval_ms 500) and NO replica for
             NO_REPLICA_S (5 s) with events available: nothing committed,
             nothing on the output topic, the periodic stats show
             wait_short > 0 and events == 0. Then a second redis-server is
             started with --replicaof (own port and dir, stopped by the
             test); once it is synced custpulse must catch up. At the end
             the replica holds byte-identical keys under the scenario's
             prefix (customer hashes with v, e, r; epochs; the WAIT key).

Every scenario ends the same way (loadgen.check_end_state): the producer
stops, the group's committed offsets reach the end offsets, SIGTERM (exit
0), then
  - every customer hash equals cpmodel.replay(input topic) on lv, o, m, n,
    f, l, s, q, sl, sv and the watermarks (w), no outbox (key or x/xq) left,
    no customer missing or extra (v, e, r not compared: batching /
    internal encoding);
  - the output topic holds every CloudEvent cpmodel expects with exactly
    the expected content, key, header and partition, nothing else; a
    repeated id only as a byte-identical copy (counted, printed);
  - the DLQ is empty; committed offsets == end offsets;
  - the "stopped" counters: events == events produced (one instance, never
    restarted: every event's batch finished exactly once).
loadgen.EventStream keeps every event time on one UTC day, so with clock =
event the segments (and the CloudEvents) depend only on each customer's
own events: exact whatever the batching was.

Redis durability in scenario 3. The harness's redis.conf
(deploy/local/redis.conf) has "appendonly yes" and leaves appendfsync at
its default, everysec. A SIGKILL of the process (the machine stays up)
keeps what Redis already write(2)s to the AOF, and Redis normally writes
its AOF buffer before replying - but with everysec, while the background
fsync of the previous second is still running, flushAppendOnlyFile
postpones the write(2) for up to 2 s and the replies go out anyway. A kill
in that window loses writes Redis acknowledged; custpulse, having
committed their offsets, would never redo them (architecture.md, "Known
gaps": Redis durability is the deployment's). That is a deployment
choice, not a custpulse fault, so the test sets appendfsync always with
CONFIG SET after every start of Redis (not persisted), as test_outages.py
does: every write is written and fsynced before its reply.

CI size: ~200 events/s, one fault per scenario (about 75 s with the
Stack on 2 cores). CP_LONG=1: 400 events/s, 1500 customers, each fault 3
times (the replica stopped and started again in between; about 2.5 min).

    python3 test_redis_faults.py [pause flush crash wait]  # all, or some
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadgen  # noqa: E402
import harness  # noqa: E402
from cpcheck import CheckFailed, Stopwatch, expect  # noqa: E402
from harness import Custpulse, Redis, RedisError, Stack, config  # noqa: E402
from itest_util import (all_hashes, checks_made,  # noqa: E402
                        customer_hashes, say)

LONG = loadgen.LONG
PARTITIONS = 3
OUT_PARTITIONS = 3
N_CUSTOMERS = 1500 if LONG else 300
RATE = 400 if LONG else 200        # events per second
REPEATS = 3 if LONG else 1         # faults per scenario
WARM_S = 4.0                       # load before the first fault
AFTER_S = 4.0                      # load after each fault
PAUSE_S = 3.0
PAUSE_TIMEOUT_MS = 500
FLUSH_EVERY_S = 0.3
FLUSH_FOR_S = 5.0
DOWN_S = 2.0
NO_REPLICA_S = 5.0
DRAIN_TIMEOUT_S = 120
SIGTERM_WAIT_S = 30                # shutdown.timeout_ms is 10 s
SEEDS = {"pause": 20240501, "flush": 20240502, "crash": 20240503,
         "wait": 20240504}
TITLES = {"pause": "Redis SIGSTOP > redis.timeout_ms",
          "flush": "SCRIPT FLUSH every 300 ms",
          "crash": "Redis SIGKILL + AOF restart",
          "wait": "WAIT: no replica, then one"}
NEED = ("events", "applied", "skipped_redelivered", "duplicates", "outputs",
        "batches", "writes", "write_conflicts", "epochs_acquired",
        "redis_commands", "redis_round_trips", "redis_timeouts",
        "redis_disconnects", "redis_restarts_seen", "wait_short")
SHOW = ("events", "applied", "skipped_redelivered", "duplicates", "batches",
        "writes", "write_conflicts", "epochs_acquired", "redis_timeouts",
        "redis_disconnects", "redis_restarts_seen", "wait_short", "outputs")


def info(r, section):
    """INFO <section> as {field: value (str)}."""
    text = r.cmd("INFO", section)
    text = text.decode() if isinstance(text, bytes) else text
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#") and ":" in line:
            k, v = line.split(":", 1)
            out[k] = v.strip()
    return out


def noscript_errors(r):
    """Redis's count of NOSCRIPT error replies so far (INFO errorstats)."""
    v = info(r, "errorstats").get("errorstat_NOSCRIPT", "count=0")
    return int(dict(kv.split("=") for kv in v.split(","))["count"])


def appendfsync_always(st):
    """See the module docstring (Redis durability in scenario 3)."""
    with st.redis() as r:
        expect(r.cmd("CONFIG", "SET", "appendfsync", "always") == "OK",
               "CONFIG SET appendfsync always")


class Scenario:
    """One scenario's topics, prefix, group, custpulse and producer."""

    live = []   # created and not yet cleaned up

    def __init__(self, st, tag, **cfg_extra):
        Scenario.live.append(self)
        self.st, self.tag, self.title = st, tag, TITLES[tag]
        self.topic = f"orders.{tag}"
        self.segments = f"segments.{tag}"
        self.dlq = f"dlq.{tag}"
        self.prefix = f"{tag}:"
        st.create_topic(self.topic, partitions=PARTITIONS)
        self.cfg = config(st, clock="event", **loadgen.REF.config(), **{
            "topic.orders": self.topic, "topic.segments": self.segments,
            "topic.dlq": self.dlq, "redis.key_prefix": self.prefix,
            "topic.partitions": OUT_PARTITIONS,
            "shutdown.timeout_ms": 10000, **cfg_extra})
        self.group = self.cfg["kafka.group.id"]
        self.cp = Custpulse(st, self.cfg, name=f"custpulse-{tag}")
        self.stream = loadgen.EventStream(SEEDS[tag], N_CUSTOMERS)
        self.prod = loadgen.SteadyProducer(st, self.topic, self.stream, RATE)
        self.clock = Stopwatch()
        self.produced = None
        self.fig = {}

    def note(self, s):
        say(f"  [{self.tag} {self.clock.s():5.1f}s] {s}")

    def alive(self):
        loadgen.expect_alive([self.cp])

    def start(self, load=True):
        self.cp.start(["run"])
        self.cp.wait_log(lambda l: l.get("msg") == "partitions assigned"
                         and l.get("count") == PARTITIONS, 60,
                         f"{self.cp.name}: {PARTITIONS} partitions assigned")
        self.note(f"custpulse up (pid {self.cp.pid}), {PARTITIONS} "
                  "partitions assigned")
        if load:
            self.start_load()

    def start_load(self):
        self.prod.start()
        self.note(f"load: {RATE} events/s for {N_CUSTOMERS} customers")

    def progress(self):
        """{partition: highest applied input offset} (customer hashes)."""
        with self.st.redis(timeout=5) as r:
            return loadgen.max_watermarks(r, self.topic, self.prefix)

    def sleep_alive(self, secs):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            self.alive()
            time.sleep(min(0.25, max(0.0, end - time.monotonic())))

    def finish(self):
        """Stops the load, waits for committed = end, SIGTERM, the end
        checks. Returns (figures, stopped counters)."""
        self.alive()
        self.produced = self.prod.stop()
        self.note(f"load stopped: {self.produced} events in "
                  f"{self.prod.elapsed():.1f}s")
        ends, _ = loadgen.end_offsets_of(self.st, self.topic, PARTITIONS)
        waited = loadgen.wait_committed(self.st, self.group, self.topic, ends,
                                        DRAIN_TIMEOUT_S, alive=self.alive)
        self.fig["drain_s"] = waited
        self.note(f"committed = end ({sum(ends.values())}) {waited:.1f}s "
                  "after the load stopped")
        t0 = time.monotonic()
        try:
            rc = self.cp.stop(signal.SIGTERM, timeout=SIGTERM_WAIT_S)
        except TimeoutError as e:  # SIGKILLed by Custpulse.stop
            tail = [l for l in self.cp.log_lines()
                    if l.get("msg") != "librdkafka"][-4:]
            raise CheckFailed(
                f"{self.tag}: {e} (shutdown.timeout_ms 10000); its last log "
                "lines: " + " | ".join(json.dumps(l)[:240] for l in tail))
        self.fig["exit_s"] = time.monotonic() - t0
        expect(rc == 0, f"{self.tag}: exit status after SIGTERM",
               f"{rc}\n{self.cp.stderr_text()[-2000:]}")
        self.note(f"SIGTERM: exit 0 after {self.fig['exit_s']:.2f}s")
        c = loadgen.stopped_counters(self.cp, NEED)
        fig = loadgen.check_end_state(
            self.st, self.topic, self.segments, self.dlq, self.group,
            self.produced, PARTITIONS, OUT_PARTITIONS, self.prefix)
        expect(c["events"] == self.produced,
               f"{self.tag}: stopped line events == events produced (one "
               "instance: each event's batch finished once)",
               f"{c['events']} != {self.produced}; {json.dumps(c)}")
        self.fig.update(fig)
        self.note(f"end state exact: {fig['customers']} customer hashes = "
                  f"cpmodel on lv, o, m, n, f, l, s, q, sl, sv, w:* "
                  f"(no outbox left), "
                  f"{fig['orders']} counted orders; {fig['outputs']} "
                  f"CloudEvents as {fig['records']} records "
                  f"({fig['dups']} byte-identical duplicates); DLQ empty; "
                  f"committed = end {fig['ends']}")
        self.note("stopped: " + ", ".join(f"{k}={c.get(k)}" for k in SHOW))
        return c

    def first_warn(self, contains):
        for l in self.cp.log_lines():
            if l.get("level") == "warn" and contains in l.get("msg", ""):
                return l
        return None

    def cleanup(self):
        self.prod.kill()
        if self.cp.running():
            self.cp.kill9()


# ---- 1: Redis paused longer than redis.timeout_ms --------------------------

def scenario_pause(st):
    sc = Scenario(st, "pause", **{"redis.timeout_ms": PAUSE_TIMEOUT_MS})
    sc.start()
    sc.sleep_alive(WARM_S)
    pauses = []
    for k in range(REPEATS):
        before = sc.progress()
        t0 = time.monotonic()
        st.pause_redis()
        sc.note(f"redis SIGSTOP #{k + 1} (highest applied offsets "
                f"{dict(sorted(before.items()))})")
        try:
            sc.sleep_alive(PAUSE_S)
        finally:
            st.resume_redis()
        pauses.append(time.monotonic() - t0)
        sc.note(f"redis SIGCONT after {pauses[-1]:.1f}s "
                f"(> redis.timeout_ms {PAUSE_TIMEOUT_MS})")
        sc.sleep_alive(AFTER_S)
    c = sc.finish()
    expect(c["redis_timeouts"] >= 1, "pause: stopped line redis_timeouts >= "
           "1 (the per-command deadline dropped the connection)",
           json.dumps(c))
    expect(c["redis_disconnects"] >= 1, "pause: redis_disconnects >= 1",
           json.dumps(c))
    w = sc.first_warn("redis unavailable")
    sc.note(f"first warn: {json.dumps(w)[:200]}")
    sc.fig.update(fault=f"{len(pauses)}x SIGSTOP "
                  f"{max(pauses):.1f}s", key=f"timeouts={c['redis_timeouts']}"
                  f" disconnects={c['redis_disconnects']}")
    return sc, c


# ---- 2: SCRIPT FLUSH under load ----------------------------------------------

def scenario_flush(st):
    sc = Scenario(st, "flush")
    with st.redis() as r:
        nos0 = noscript_errors(r)
    sc.start()
    sc.sleep_alive(WARM_S)
    flushes = 0
    for k in range(REPEATS):
        t0 = time.monotonic()
        with st.redis(timeout=5) as r:
            while time.monotonic() - t0 < FLUSH_FOR_S:
                expect(r.cmd("SCRIPT", "FLUSH") == "OK", "SCRIPT FLUSH")
                flushes += 1
                sc.alive()
                time.sleep(FLUSH_EVERY_S)
        sc.note(f"SCRIPT FLUSH round {k + 1}: {flushes} flushes so far, "
                f"every {FLUSH_EVERY_S * 1000:.0f} ms for {FLUSH_FOR_S:.0f}s")
        sc.sleep_alive(AFTER_S)
    with st.redis() as r:
        nos = noscript_errors(r) - nos0
    c = sc.finish()
    sc.note(f"Redis answered NOSCRIPT {nos} times (INFO errorstats)")
    expect(nos >= 1, "flush: Redis answered NOSCRIPT at least once (the "
           "path was exercised)", f"{nos} NOSCRIPT replies after {flushes} "
           "SCRIPT FLUSHes")
    sc.fig.update(fault=f"{flushes} SCRIPT FLUSH",
                  key=f"NOSCRIPT={nos} conflicts={c['write_conflicts']}")
    return sc, c


# ---- 3: Redis SIGKILL and restart from the AOF -------------------------------

def scenario_crash(st):
    sc = Scenario(st, "crash")
    appendfsync_always(st)
    sc.start()
    sc.sleep_alive(WARM_S)
    restarts = []
    for k in range(REPEATS):
        before = sc.progress()
        t0 = time.monotonic()
        st.stop_redis(signal.SIGKILL)
        sc.note(f"redis SIGKILL #{k + 1} (highest applied offsets "
                f"{dict(sorted(before.items()))})")
        sc.sleep_alive(DOWN_S)
        st.start_redis()
        appendfsync_always(st)
        restarts.append(time.monotonic() - t0)
        sc.note(f"redis started again from its AOF {restarts[-1]:.1f}s "
                "after the kill (appendfsync always)")
        sc.sleep_alive(AFTER_S)
    c = sc.finish()
    expect(c["redis_restarts_seen"] >= 1, "crash: stopped line "
           "redis_restarts_seen >= 1", json.dumps(c))
    w = sc.first_warn("redis restarted")
    expect(w is not None, "crash: a 'redis restarted or failed over' warn "
           "line")
    sc.note(f"warn: {json.dumps(w)[:200]}")
    sc.fig.update(fault=f"{len(restarts)}x SIGKILL, down "
                  f"{max(restarts):.1f}s",
                  key=f"restarts_seen={c['redis_restarts_seen']}")
    return sc, c


# ---- 4: WAIT for a replica -----------------------------------------------------

class Replica:
    """A second redis-server replicating the stack's, on its own port and
    dir, started and stopped through the harness's process helpers (dies
    with the test through PDEATHSIG; stop() in a finally)."""

    def __init__(self, st):
        self.st = st
        self.port = harness.free_port()
        self.dir = st.path("redis-replica")
        self.proc = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        # *.stderr.log: Stack.dump_logs shows it when the test fails.
        with open(self.st.path("redis-replica.stderr.log"), "ab") as logf:
            self.proc = harness._popen(
                ["redis-server", os.path.join(harness.DEPLOY_DIR,
                                              "redis.conf"),
                 "--port", str(self.port), "--dir", self.dir,
                 "--replicaof", "127.0.0.1", str(self.st.redis_port)],
                cwd=self.dir, stdout=logf, stderr=subprocess.STDOUT)
        return self

    def client(self, timeout=5.0):
        return Redis(self.port, timeout=timeout)

    def synced(self):
        if self.proc.poll() is not None:
            raise RuntimeError(f"replica exited {self.proc.returncode}")
        try:
            with self.client(1.0) as r:
                i = info(r, "replication")
        except (OSError, EOFError, RedisError):
            return False
        return (i.get("master_link_status") == "up"
                and i.get("master_sync_in_progress") == "0")

    def stop(self):
        if self.proc is not None:
            harness._stop_process(self.proc)
            self.proc = None


def scenario_wait(st):
    sc = Scenario(st, "wait", **{
        "redis.wait_replicas": 1, "redis.wait_timeout_ms": 300,
        "redis.timeout_ms": 2000, "stats.interval_ms": 500})
    with st.redis() as r:
        expect(info(r, "replication").get("connected_slaves") == "0",
               "wait: the primary has no replica at the start")
        # Diskless full sync waits 5 s by default for more replicas.
        r.cmd("CONFIG", "SET", "repl-diskless-sync-delay", "0")
    replica = Replica(st)
    try:
        sc.start()
        t_load = time.monotonic()
        checks = 0
        last = {}
        while time.monotonic() - t_load < NO_REPLICA_S:
            sc.alive()
            committed = st.committed(sc.group, sc.topic)
            expect(all(v is None for v in committed.values()),
                   "wait: nothing committed without a replica",
                   f"committed {committed}")
            out = st.consume(sc.segments, timeout=10)
            expect(out == [], "wait: no output without a replica",
                   f"{len(out)} records, e.g. {out[:1]}")
            checks += 1
            time.sleep(0.5)
        stats = [l for l in sc.cp.log_lines() if l.get("msg") == "stats"]
        expect(stats, "wait: periodic stats lines (stats.interval_ms 500)")
        last = stats[-1]
        expect(last.get("wait_short", 0) > 0, "wait: stats wait_short > 0 "
               "while there is no replica", json.dumps(last))
        expect(last.get("events") == 0 and last.get("outputs") == 0,
               "wait: no batch finished without a replica (stats events == "
               "0, outputs == 0)", json.dumps(last))
        # The last check, after the stats line was read.
        committed = st.committed(sc.group, sc.topic)
        expect(all(v is None for v in committed.values()),
               "wait: nothing committed without a replica",
               f"committed {committed}")
        with st.redis() as r:
            written = len(customer_hashes(r, sc.prefix))
        warn = sc.first_warn("too few replicas")
        expect(warn is not None, "wait: a 'too few replicas' warn line")
        sc.note(f"{time.monotonic() - t_load:.1f}s without a replica, "
                f"{sc.prod.written} events produced: {checks} checks of "
                f"committed offsets (none) and the output topic (empty); "
                f"stats wait_short={last.get('wait_short')} "
                f"events={last.get('events')} batches={last.get('batches')}"
                f"; {written} customer hashes written to the primary, not "
                "yet acknowledged by a replica")
        sc.note(f"warn: {json.dumps(warn)[:200]}")

        t_rep = time.monotonic()
        replica.start()
        harness.wait_until(replica.synced, 60, "replica synced", 0.1)
        t_sync = time.monotonic() - t_rep
        sc.note(f"replica on port {replica.port} synced {t_sync:.1f}s after "
                "its start")

        def first_commit():
            sc.alive()
            c = st.committed(sc.group, sc.topic)
            return any(v is not None for v in c.values()) and c
        c1 = harness.wait_until(first_commit, 60, "the first commit", 0.2)
        t_commit = time.monotonic() - t_rep
        sc.note(f"first commit {t_commit:.1f}s after the replica's start: "
                f"{c1}")
        for k in range(1, REPEATS):   # CP_LONG: the replica goes and comes
            sc.sleep_alive(AFTER_S)
            replica.stop()
            sc.note(f"replica stopped (#{k})")
            sc.sleep_alive(DOWN_S)
            replica.start()
            harness.wait_until(replica.synced, 60, "replica synced", 0.1)
            sc.note(f"replica started again and synced (#{k})")
        sc.sleep_alive(AFTER_S)
        c = sc.finish()
        expect(c["wait_short"] > 0, "wait: stopped line wait_short > 0",
               json.dumps(c))

        # The replica holds exactly what the primary holds under the
        # scenario's prefix (customer hashes with v, e, r, the epochs, the
        # WAIT counter).
        with st.redis() as r:
            acked = r.cmd("WAIT", 1, 5000)
            expect(acked == 1, "wait: WAIT 1 5000 from the test", acked)
            primary = all_hashes(r, sc.prefix + "*")
        with replica.client() as r:
            copy = all_hashes(r, sc.prefix + "*")
        n_cust = sum(1 for k in primary if k.startswith(sc.prefix + "c:"))
        expect(n_cust == sc.fig["customers"], "wait: customer hashes on the "
               "primary", f"{n_cust} != {sc.fig['customers']}")
        diff = sorted(k for k in set(primary) | set(copy)
                      if primary.get(k) != copy.get(k))
        expect(not diff, "wait: the replica's keys equal the primary's",
               f"{len(diff)} keys differ, e.g. {diff[:5]}")
        sc.note(f"replica = primary: {len(primary)} keys under "
                f"{sc.prefix!r} ({n_cust} customer hashes), every field "
                "byte-identical")
        sc.fig.update(fault=f"no replica {NO_REPLICA_S:.0f}s, sync "
                      f"{t_sync:.1f}s",
                      key=f"wait_short={c['wait_short']} first commit "
                      f"+{t_commit:.1f}s")
        return sc, c
    finally:
        replica.stop()


SCENARIOS = [("pause", scenario_pause), ("flush", scenario_flush),
             ("crash", scenario_crash), ("wait", scenario_wait)]


def heal(st):
    """After a failed scenario: Redis up and running again."""
    if st.redis_proc is not None and st.redis_paused:
        st.resume_redis()
    if st.redis_proc is None:
        st.start_redis()
        appendfsync_always(st)


def main():
    total = Stopwatch()
    only = set(sys.argv[1:])
    unknown = only - set(TITLES)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; pick from "
                         f"{list(TITLES)}")
    say(f"Redis faults under load: {RATE} events/s on {PARTITIONS} "
        f"partitions, {N_CUSTOMERS} customers, {REPEATS} fault(s) per "
        f"scenario{' (CP_LONG)' if LONG else ''}")
    results = []
    with Stack() as st:
        say(f"stack up in {total.s():.1f}s (kafka ready in "
            f"{st.kafka_start_s:.1f}s)")
        for tag, run in SCENARIOS:
            if only and tag not in only:
                continue
            say(f"\nscenario {tag}: {TITLES[tag]}")
            t0 = time.monotonic()
            try:
                sc, c = run(st)
                results.append((tag, sc.fig, c, time.monotonic() - t0, None))
            except (CheckFailed, TimeoutError, RuntimeError) as e:
                say(f"  [{tag}] FAILED: {e}")
                results.append((tag, None, None, time.monotonic() - t0, e))
                heal(st)
            finally:
                for sc in Scenario.live:
                    sc.cleanup()
                Scenario.live.clear()
        say(f"\n{'scenario':8} {'result':6} {'events':>6} {'hashes':>6} "
            f"{'changes':>7} {'recs':>5} {'dups':>4} {'drain':>5} "
            f"{'secs':>5}  fault / counters")
        for tag, f, c, secs, err in results:
            if err is not None:
                say(f"{tag:8} FAILED {str(err)[:160]}")
                continue
            say(f"{tag:8} pass   {f['events']:>6} {f['customers']:>6} "
                f"{f['outputs']:>7} {f['records']:>5} {f['dups']:>4} "
                f"{f['drain_s']:>5.1f} {secs:>5.1f}  {f['fault']}; "
                f"{f['key']}")
        failed = [tag for tag, _, _, _, err in results if err is not None]
        say(f"test_redis_faults: {len(results) - len(failed)} of "
            f"{len(results)} scenarios passed in {total.s():.1f}s "
            f"({checks_made()} checks)")
        if failed:
            raise SystemExit(f"test_redis_faults FAILED: {', '.join(failed)}")


if __name__ == "__main__":
    main()
