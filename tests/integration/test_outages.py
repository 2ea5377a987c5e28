"""Guarantee 5: Redis or Kafka unavailable at start-up, or for a few seconds
while running: custpulse logs, waits and resumes without losing or
double-applying events.

One generated event set (seeded; placed, refunds, cancellations, upstream
duplicates; increasing times; one partition; fixed reference, clock =
event), so cpmodel.replay gives the exact expected state and CloudEvents.
Five scenarios share one Stack, each with its own input/output/DLQ topics,
Redis key prefix and group id:

  a  Redis down at start-up, started 5 s later
  b  Kafka down at start-up (after the input topic exists), started 5 s later
  c  Redis SIGSTOPped for 5 s while custpulse's writes are in flight (the
     deadline passes, the connection is dropped, outcomes are unknown)
  d  Redis restarted twice mid-stream from its AOF: cleanly (SIGTERM) while
     custpulse's writes are in flight, then as a crash (SIGKILL) after a
     batch's writes, before its outbox clears
  e  the Kafka broker stopped (SIGTERM) and restarted mid-stream

The stream keeps coming (in chunks of 100) during Redis faults; during the
Kafka fault nothing can be produced, so those chunks follow its restart.

After each: every customer's hash equals cpmodel.expected_hash (lv, o, m,
f, l, n, b, s, q, sl, sv, w:* - every layout-2 field an order stream
gives) with no outbox (key or x/xq) left; the output topic holds exactly the
expected CloudEvent ids and contents (rfm8, lifecycle and value changes), a repeated id only as a byte-identical
copy (counted and printed); the DLQ is empty; after SIGTERM (exit 0) the
committed offset is the end offset. A failed scenario is reported and the
next one still runs; the exit status is 1 if any failed.

Mid-stream faults are aimed, not timed: fault_in_batch() watches Redis's
command counters and fires the fault inside custpulse's pipelined
compare-and-set round (part of it still in flight), or, for the crash in d,
just after it, before the outbox clears (printed per fault).

    python3 test_outages.py [a b c d e]   # all, or only the named scenarios
"""
import datetime
import json
import os
import random
import re
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
import storecodec  # noqa: E402
from cpcheck import (CheckFailed, Stopwatch, expect,  # noqa: E402
                     first_diffs, log_lines_where, model_records,
                     outbox_left, output_check, state_diffs, stopped_line)
from harness import Custpulse, RedisError, Stack, config  # noqa: E402
from itest_util import OUTBOX_KEY, customer_hashes  # noqa: E402

SEED = 20240301
N_EVENTS = 2000
N_CUSTOMERS = 200
CHUNK = 100                    # events per produce call mid-stream
FAULT_S = 5.0                  # length of each outage
OUT_PARTITIONS = 3             # of the output and DLQ topics
CONVERGE_TIMEOUT_S = 60
PRODUCE_AIM_S = 0.003          # see fault_in_batch, aim "produce"
FIXED = cpmodel.Fixed()
TITLES = {"a": "Redis down at start-up", "b": "Kafka down at start-up",
          "c": "Redis paused 5 s mid-stream",
          "d": "Redis restarted mid-stream",
          "e": "Kafka restarted mid-stream"}


# ---- the event set ---------------------------------------------------------

def fmt_time(ms, offset_min=0):
    """RFC 3339 with milliseconds, in UTC ("Z") or at a fixed offset."""
    d = datetime.datetime.fromtimestamp(
        ms / 1000, datetime.timezone(datetime.timedelta(minutes=offset_min)))
    s = d.strftime("%Y-%m-%dT%H:%M:%S") + ".%03d" % (ms % 1000)
    if offset_min == 0:
        return s + "Z"
    sign = "+" if offset_min > 0 else "-"
    return s + "%s%02d:%02d" % (sign, abs(offset_min) // 60,
                                abs(offset_min) % 60)


def amount(rng):
    """Mostly decimal strings; some JSON numbers (integers and short
    decimals), which custpulse reads through their shortest form."""
    minor = rng.randint(100, 20000)
    roll = rng.random()
    if roll < 0.05:
        return minor // 100
    if roll < 0.10:
        return float("%d.%d" % (minor // 100, minor % 10))
    return "%d.%02d" % (minor // 100, minor % 100)


def generate_events(seed=SEED, n=N_EVENTS, n_customers=N_CUSTOMERS):
    """n event dicts for about n_customers customers, times increasing
    (upstream duplicates repeat an earlier event, time included)."""
    rng = random.Random(seed)
    t = cpmodel.parse_time_ms("2023-01-02T00:00:00Z")
    sent, placed = {}, {}
    out = []
    n_orders = n_unknown = 0
    while len(out) < n:
        t += rng.randint(60_000, 8 * 3_600_000)
        cid = "c-%03d" % rng.randrange(n_customers)
        hist, ords = sent.setdefault(cid, []), placed.setdefault(cid, [])
        roll = rng.random()
        if roll < 0.07 and hist:
            e = dict(rng.choice(hist[-4:]))        # upstream duplicate
        else:
            typ, oid = "order.placed", None
            if roll < 0.11 and ords:               # placed again, new id
                oid = rng.choice(ords[-5:])
            elif roll < 0.24 and ords:
                typ, oid = "order.refunded", rng.choice(ords[-8:])
            elif roll < 0.31 and ords:
                typ, oid = "order.cancelled", rng.choice(ords[-8:])
            elif roll < 0.34:                      # never seen: adjustment
                typ = rng.choice(["order.refunded", "order.cancelled"])
                n_unknown += 1
                oid = "u-%d" % n_unknown
            if oid is None:
                n_orders += 1
                oid = "o-%d" % n_orders
                ords.append(oid)
            e = {"event_id": "e-%d" % len(out), "type": typ,
                 "customer_id": cid,
                 "occurred_at": fmt_time(t, rng.choice([0, 0, 0, 120, -300])),
                 "order_id": oid, "amount": amount(rng), "currency": "USD"}
        hist.append(e)
        out.append(e)
    return out


def records(events):
    return [{"key": e["customer_id"], "value": json.dumps(e)}
            for e in events]


def chunks(events, size=CHUNK):
    return [events[i:i + size] for i in range(0, len(events), size)]


# ---- aiming faults -----------------------------------------------------------

CMDSTAT_RE = re.compile(rb"cmdstat_(hgetall|evalsha):calls=(\d+)")


def round_counts(r):
    """(customer reads, EVALSHA calls) so far: custpulse's READ rounds
    are HGETALLs, two per customer (its hash and its outbox key), its WRITE
    and outbox CLEAR rounds EVALSHAs."""
    got = {k: int(v) for k, v in CMDSTAT_RE.findall(
        r.cmd("INFO", "commandstats"))}
    return got.get(b"hgetall", 0) // 2, got.get(b"evalsha", 0)


def fault_in_batch(st, idle, produce, fault, aim, timeout=20):
    """Waits for idle() (custpulse caught up), runs produce() on a thread
    and calls fault() at the aimed moment of the batch that follows:

      "write"    at the first EVALSHA after the READ round: the pipelined
                 compare-and-set round has begun, the rest is in flight;
      "produce"  once every customer read has had its script: the state is
                 written, the outputs are being produced and acknowledged,
                 the outbox CLEAR round (a few ms later) is still to come.

    Returns ((READ commands, scripts run) seen when it fired, or (None,
    None) if the moment did not come within timeout - the fault is then
    fired anyway, still mid-stream; and joined(), to call after the fault
    is over)."""
    err = []

    def run():
        try:
            produce()
        except BaseException as e:  # re-raised on the main thread
            err.append(e)
    idle()
    seen = (None, None)
    with st.redis(timeout=5) as r:
        h0, e0 = round_counts(r)
        th = threading.Thread(target=run, daemon=True)
        th.start()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            h, e = round_counts(r)
            reads, scripts = h - h0, e - e0
            if aim == "write" and scripts > 0:
                seen = (reads, scripts)
                break
            if aim == "produce" and 0 < reads <= scripts:
                # Redis replies after this pass; custpulse then produces
                # (linger.ms 5, then the broker's acknowledgement).
                time.sleep(PRODUCE_AIM_S)
                seen = (reads, scripts)
                break
    fault()

    def joined():
        """Waits for produce() (a broker fault may hold it until recovery:
        call after recover()) and re-raises its failure."""
        th.join(130)
        if err:
            raise err[0]
        expect(not th.is_alive(), "produce() did not finish")
    return seen, joined


# ---- one scenario --------------------------------------------------------------

class Scenario:
    """Topics, Redis prefix, group and a custpulse of one scenario."""

    created = []

    def __init__(self, st, tag):
        self.st, self.tag, self.title = st, tag, TITLES[tag]
        Scenario.created.append(self)
        self.topic = f"orders.{tag}"
        self.segments = f"segments.{tag}"
        self.dlq = f"dlq.{tag}"
        self.prefix = f"{tag}:"
        self.cfg = config(st, **FIXED.config(), **{
            "topic.orders": self.topic, "topic.segments": self.segments,
            "topic.dlq": self.dlq, "redis.key_prefix": self.prefix,
            "clock": "event", "redis.timeout_ms": 1000,
            "topic.partitions": OUT_PARTITIONS})
        self.cp = Custpulse(st, self.cfg, name=f"custpulse-{tag}")
        self.timer = Stopwatch()
        self.sent = []  # in offset order (one partition, fresh topic)
        st.create_topic(self.topic, partitions=1)

    def note(self, s):
        print(f"  [{self.tag} {self.timer.s():5.1f}s] {s}", flush=True)

    def start(self):
        self.cp.start(["run"])
        self.note(f"custpulse started (pid {self.cp.pid})")

    def produce(self, events):
        self.st.produce(self.topic, records(events))
        self.sent += events

    def wait_caught_up(self, timeout=20):
        """Until custpulse has delivered every segment change of the events
        produced so far and Redis has been quiet for 0.3 s since (the
        outbox CLEAR round follows the last acknowledgement at once), so
        the next scripts belong to the next batch. Notes it and goes on
        after timeout."""
        _, outputs = cpmodel.replay(
            [{"value": e, "topic": self.topic, "partition": 0, "offset": i}
             for i, e in enumerate(self.sent)], FIXED)
        want = {o["id"] for o in outputs}
        deadline = time.monotonic() + timeout
        while True:
            self.expect_running("while catching up")
            got = {json.loads(r["value"])["id"]
                   for r in self.st.consume(self.segments)}
            if want <= got:
                break
            if time.monotonic() > deadline:
                self.note(f"not caught up after {timeout}s; going on")
                return
            time.sleep(0.1)
        with self.st.redis(timeout=2) as r:
            last, still = round_counts(r), time.monotonic()
            while time.monotonic() - still < 0.3:
                time.sleep(0.05)
                now = round_counts(r)
                if now != last:
                    last, still = now, time.monotonic()

    def expect_running(self, when):
        expect(self.cp.running(), f"{self.tag}: custpulse exited {when}",
               f"status {self.cp.proc.returncode}\n"
               + self.cp.stderr_text()[-3000:])

    def wait_converged(self, customers):
        """Until every hash equals cpmodel's (outbox ignored), then until
        the outboxes are gone (up to 3 s more; checked strictly later)."""
        r = self.st.redis(timeout=2)
        last = ["no answer from Redis"]

        def state_ok(ignore_outbox):
            self.expect_running("before converging")
            try:
                hashes = customer_hashes(r, self.prefix)
            except (OSError, EOFError, RedisError) as e:
                last[:] = [f"redis: {e}"]
                return False
            last[:] = state_diffs(hashes, customers, ignore_outbox)
            return not last
        t = Stopwatch()
        deadline = time.monotonic() + CONVERGE_TIMEOUT_S
        while not state_ok(True):
            if time.monotonic() > deadline:
                r.close()
                raise CheckFailed(f"{self.tag}: state did not converge in "
                                  f"{CONVERGE_TIMEOUT_S}s ({self.stuck()}): "
                                  + first_diffs(last, 3))
            time.sleep(0.25)
        self.note(f"state equals cpmodel after {t.s():.1f}s of waiting")
        deadline = time.monotonic() + 3
        while not state_ok(False) and time.monotonic() < deadline:
            time.sleep(0.25)
        r.close()

    def stuck(self):
        """A one-line picture of a stalled run, for the failure message."""
        try:
            with self.st.redis(timeout=2) as r:
                hashes = customer_hashes(r, self.prefix)
            n_out = len(self.st.consume(self.segments, timeout=10))
        except Exception as e:  # noqa: BLE001 - diagnostics only
            return f"no picture: {e}"
        wm = storecodec.w_field(self.topic, 0)
        wms = [int(h.get(wm, -1)) for h in hashes.values()]
        last = self.cp.log_lines()[-1:] or [{}]
        return (f"{len(hashes)} hashes, highest watermark "
                f"{max(wms or [-1])}, outbox left in "
                f"{len(outbox_left(hashes))}, {n_out} output records; last "
                f"log line {json.dumps(last[0])[:200]}")

    def finish(self):
        """SIGTERM (exit 0), the checks, one more --exit-at-end run of the
        same group (nothing left to consume), the checks again and last the
        outbox; returns the figures for the summary."""
        st = self.st
        self.expect_running("before SIGTERM")
        rc = self.cp.stop(timeout=30)
        expect(rc == 0, f"{self.tag}: exit status after SIGTERM", rc)
        counters = stopped_line(self.cp)
        rows = st.consume(self.topic)
        expect(len(rows) == N_EVENTS, f"{self.tag}: input records",
               len(rows))
        customers, outputs = cpmodel.replay(model_records(rows, self.topic),
                                            FIXED)
        out, dups = self.check_kafka_side(outputs, "after SIGTERM")
        self.note(f"after SIGTERM (exit 0): {len(outputs)} CloudEvents as "
                  f"{len(out)} records ({dups} byte-identical duplicates), "
                  f"DLQ empty, committed = end {N_EVENTS}")

        # A start-up outbox sweep (contracts section 2, Outbox: planned)
        # would re-drive here what a lost CLEAR left behind.
        end = Custpulse(st, self.cfg, name=f"custpulse-{self.tag}-end")
        res = end.run(["run", "--exit-at-end"], timeout=60)
        expect(res.returncode == 0, f"{self.tag}: --exit-at-end run exit "
               "status", f"{res.returncode}\n{res.stderr[-2000:]}")
        out, dups = self.check_kafka_side(outputs, "after --exit-at-end")
        with st.redis() as r:
            hashes = customer_hashes(r, self.prefix)
        diffs = state_diffs(hashes, customers, ignore_outbox=True)
        expect(not diffs, f"{self.tag}: state != cpmodel", first_diffs(diffs))
        left = outbox_left(hashes)
        ids = {json.loads(o["value"])["id"] for o in out}
        expect(not left, f"{self.tag}: outbox left in {len(left)} "
               "customers after the final run (re-driven only on the "
               "customer's next read; contracts section 2, Outbox)",
               first_diffs(self.outbox_story(c, hashes[c], ids)
                           for c in left))
        fig = {"tag": self.tag, "title": self.title,
               "customers": len(customers), "outputs": len(outputs),
               "records": len(out), "dups": dups,
               "events": counters.get("events"),
               "batches": counters.get("batches"),
               "secs": self.timer.s()}
        self.note(f"after --exit-at-end: {len(customers)} hashes = "
                  f"cpmodel, no outbox; {len(out)} records ({dups} "
                  f"duplicates); DLQ empty; committed = end; custpulse "
                  f"counted events={counters.get('events')} "
                  f"batches={counters.get('batches')}")
        return fig

    def check_kafka_side(self, outputs, when):
        """Outputs exact (duplicates only byte-identical), DLQ empty,
        committed offset = end. Returns (output rows, duplicates)."""
        st = self.st
        out = st.consume(self.segments)
        dups, problems = output_check(out, outputs, OUT_PARTITIONS)
        expect(not problems, f"{self.tag}: outputs {when}",
               first_diffs(problems))
        dlq = st.consume(self.dlq)
        expect(dlq == [], f"{self.tag}: DLQ not empty {when}", len(dlq))
        committed = st.committed(self.cfg["kafka.group.id"], self.topic)
        expect(committed == {0: N_EVENTS}, f"{self.tag}: committed offsets "
               f"{when}", f"{committed} != end {N_EVENTS}")
        return out, dups

    @staticmethod
    def outbox_story(cid, h, delivered_ids):
        """What a left-over outbox holds (the outbox key's, or a legacy
        one in the hash) and whether it reached Kafka."""
        text = h.get(OUTBOX_KEY, "") + h.get("x", "")
        lines = [l for l in text.split("\n") if l.strip()]
        seqs = []
        for line in lines:
            try:
                ev = json.loads(line.split("\t", 1)[1])
                seqs.append((ev["data"]["seq"], ev["id"] in delivered_ids))
            except (IndexError, ValueError, KeyError):
                seqs.append((line[:40], None))
        return (f"{cid}: outbox key {OUTBOX_KEY in h}, xq={h.get('xq')}, "
                f"x holds (seq, delivered) {seqs}")

    def redis_warnings(self):
        return log_lines_where(self.cp, "warn", ["redis", "unavailable"])


def appendfsync_always(st):
    """deploy/local/redis.conf (the harness's) has appendonly yes but leaves
    appendfsync at its default, everysec: a crash (SIGKILL) can lose up to a
    second of writes Redis already acknowledged, and custpulse, having
    committed the offsets, would never redo them - lost events that are a
    deployment choice, not a custpulse fault. A clean stop (SIGTERM) fsyncs
    the AOF first. Scenario d crashes Redis, so the test sets 'always'
    through CONFIG SET (not persisted: again after every start)."""
    with st.redis() as r:
        expect(r.cmd("CONFIG", "SET", "appendfsync", "always") == "OK",
               "CONFIG SET appendfsync always")


def wait_since(t0, secs):
    left = secs - (time.monotonic() - t0)
    if left > 0:
        time.sleep(left)


# ---- the five scenarios ---------------------------------------------------------


def scenario_a(st, events):
    sc = Scenario(st, "a")
    st.stop_redis()
    sc.note("redis stopped")
    t0 = time.monotonic()
    sc.start()
    sc.produce(events)
    sc.note(f"produced {len(events)} events")
    wait_since(t0, FAULT_S)
    sc.expect_running("while Redis was down")
    st.start_redis()
    appendfsync_always(st)
    sc.note(f"redis started {time.monotonic() - t0:.1f}s after custpulse")
    sc.wait_converged(cpmodel.replay(
        model_records(st.consume(sc.topic), sc.topic), FIXED)[0])
    warns = sc.redis_warnings()
    expect(warns, "a: no warn log line about Redis being unavailable")
    sc.note(f"warn: {json.dumps(warns[0])[:160]}")
    return sc.finish()


def scenario_b(st, events):
    sc = Scenario(st, "b")
    st.stop_kafka()
    sc.note("kafka stopped (input topic exists)")
    t0 = time.monotonic()
    sc.start()
    wait_since(t0, FAULT_S)
    sc.expect_running("while Kafka was down")
    st.start_kafka()
    sc.note(f"kafka started {time.monotonic() - t0:.1f}s after custpulse "
            f"(ready in {st.kafka_start_s:.1f}s)")
    sc.produce(events)
    sc.note(f"produced {len(events)} events")
    sc.wait_converged(cpmodel.replay(
        model_records(st.consume(sc.topic), sc.topic), FIXED)[0])
    warns = log_lines_where(sc.cp, "warn", ["kafka"]) + log_lines_where(
        sc.cp, "warn", ["topics"])
    expect(warns, "b: no warn log line about Kafka being unavailable")
    sc.note(f"{len(warns)} warn lines, e.g. {json.dumps(warns[0])[:160]}")
    return sc.finish()


class Fault:
    """One mid-stream fault: fire() at the moment `aim` of a batch (see
    fault_in_batch), recover() FAULT_S seconds later; produce_during: the
    stream goes on meanwhile (it can while Kafka is up)."""

    def __init__(self, label, fire, recover, aim="write",
                 produce_during=True):
        self.label, self.fire, self.recover = label, fire, recover
        self.aim, self.produce_during = aim, produce_during


def mid_stream(st, sc, events, faults):
    """Produces the events in chunks with the faults spread over the
    stream, then waits for convergence."""
    parts = chunks(events)
    marks = [len(parts) * (k + 1) // (len(faults) + 2)
             for k in range(len(faults))]  # 1 fault: 6; 2 faults: 5, 10
    sc.start()
    i = 0
    for mark, f in zip(marks, faults):
        for p in parts[i:mark]:
            sc.produce(p)
        # Three chunks at once: a write round of ~150 customers' scripts
        # spans several of Redis's reads, so the fault lands inside it.
        trigger = [e for p in parts[mark:mark + 3] for e in p]
        (reads, scripts), joined = fault_in_batch(
            st, sc.wait_caught_up, lambda: sc.produce(trigger), f.fire,
            f.aim)
        t_fault = time.monotonic()
        if reads is None:
            sc.note(f"{f.label}: fired after waiting 20 s for the batch")
        else:
            sc.note(f"{f.label}: fired when {scripts} of {reads} customers' "
                    "scripts had run ("
                    + ("write round in flight)" if scripts < reads else
                       "state written; outputs and outbox clears pending)"))
        during = parts[mark + 3:mark + 5]
        if f.produce_during:
            joined()  # Kafka is up: the trigger's records come first
            for p in during:
                sc.produce(p)
        wait_since(t_fault, FAULT_S)
        sc.expect_running(f"during '{f.label}'")
        f.recover()
        sc.note(f"{f.label}: ended after {time.monotonic() - t_fault:.1f}s")
        if not f.produce_during:
            joined()
            for p in during:
                sc.produce(p)
        i = mark + 5
    for p in parts[i:]:
        sc.produce(p)
    sc.note(f"produced all {len(events)} events in {len(parts)} chunks")
    sc.wait_converged(cpmodel.replay(
        model_records(st.consume(sc.topic), sc.topic), FIXED)[0])


def scenario_c(st, events):
    sc = Scenario(st, "c")
    mid_stream(st, sc, events, [
        Fault("redis SIGSTOP", st.pause_redis, st.resume_redis)])
    warns = sc.redis_warnings()
    expect(warns, "c: no warn log line about Redis being unavailable")
    expect(any("deadline" in w.get("reason", "") for w in warns),
           "c: no 'redis unavailable' line for a passed deadline", warns)
    sc.note(f"warn: {json.dumps(warns[0])[:160]}")
    return sc.finish()


def scenario_d(st, events):
    """Two restarts: a clean one (SIGTERM) while a write round is in flight,
    and a crash (SIGKILL) after the state was written but before the
    outbox clears: those are lost, so the outboxes are produced again when
    their customers are next read (byte-identical duplicates)."""
    sc = Scenario(st, "d")
    appendfsync_always(st)

    def restart():
        st.start_redis()
        appendfsync_always(st)
    mid_stream(st, sc, events, [
        Fault("redis SIGTERM", st.stop_redis, restart),
        Fault("redis SIGKILL", lambda: st.stop_redis(signal.SIGKILL),
              restart, aim="produce")])
    warns = sc.redis_warnings()
    expect(warns, "d: no warn log line about Redis being unavailable")
    sc.note(f"warn: {json.dumps(warns[0])[:160]}")
    return sc.finish()


def scenario_e(st, events):
    sc = Scenario(st, "e")

    def restart():
        st.start_kafka()
        sc.note(f"kafka ready in {st.kafka_start_s:.1f}s")
    mid_stream(st, sc, events, [
        Fault("kafka SIGTERM", st.stop_kafka, restart, produce_during=False)])
    return sc.finish()


SCENARIOS = [("a", scenario_a), ("b", scenario_b), ("c", scenario_c),
             ("d", scenario_d), ("e", scenario_e)]


def heal(st):
    """After a failed scenario: its custpulse killed, both services up, so
    the next scenario still runs."""
    for sc in Scenario.created:
        if sc.cp.running():
            sc.cp.kill9()
    if st.redis_proc is not None and st.redis_paused:
        st.resume_redis()
    if st.redis_proc is None:
        st.start_redis()
    if st.kafka_proc is None:
        st.start_kafka()


def main():
    total = Stopwatch()
    events = generate_events()
    kinds = {}
    for e in events:
        kinds[e["type"]] = kinds.get(e["type"], 0) + 1
    n_dup = len(events) - len({e["event_id"] for e in events})
    customers, outputs = cpmodel.replay(
        [{"value": e, "topic": "t", "partition": 0, "offset": i}
         for i, e in enumerate(events)], FIXED)
    print(f"events: {len(events)} (seed {SEED}) for {len(customers)} "
          f"customers: {kinds}, {n_dup} upstream duplicates; cpmodel: "
          f"{len(outputs)} segment changes")
    # Optional arguments pick scenarios (e.g. "c d") when debugging one.
    only = set(sys.argv[1:])
    results = []
    with Stack() as st:
        for tag, run in SCENARIOS:
            if only and tag not in only:
                continue
            print(f"\nscenario {tag}", flush=True)
            try:
                results.append((tag, run(st, events), None))
            except CheckFailed as e:
                print(f"  [{tag}] FAILED: {e}", flush=True)
                results.append((tag, None, e))
                heal(st)
        print(f"\n{'scenario':32} {'result':6} {'hashes':>6} {'changes':>7} "
              f"{'records':>7} {'dups':>4} {'batches':>7} {'secs':>5}")
        for tag, f, err in results:
            if err is not None:
                print(f"{tag + ' ' + TITLES[tag]:32} FAILED "
                      f"{str(err)[:100]}")
                continue
            print(f"{tag + ' ' + f['title']:32} pass   {f['customers']:>6} "
                  f"{f['outputs']:>7} {f['records']:>7} {f['dups']:>4} "
                  f"{str(f['batches']):>7} {f['secs']:>5.1f}")
        failed = [tag for tag, _, err in results if err is not None]
        print(f"test_outages: {len(results) - len(failed)} of {len(results)} "
              f"scenarios passed in {total.s():.1f}s")
        if failed:
            raise SystemExit(f"test_outages FAILED: scenarios "
                             f"{', '.join(failed)}")


if __name__ == "__main__":
    main()
