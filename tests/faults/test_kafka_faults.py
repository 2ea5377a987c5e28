"""Kafka faults on the real broker (Kafka 3.9 KRaft + Redis, harness.Stack):
a crashed broker under load, a false fatal error of the idempotent producer
(librdkafka #4438), and an input topic deleted and recreated.

The events come from loadgen.EventStream: every occurred_at lies on one UTC
day, so with clock = event and loadgen.REF the exact state AND the exact
CloudEvents follow from cpmodel.replay of the input topic whatever order the
partitions are processed in. "Exact" below means: every customer hash
equals cpmodel on lv, o, m, n, f, l, s, q, sl, sv and every
the watermarks in w, no outbox (key or x/xq) is left, no customer is missing or
extra (v, e, r are not compared: v depends on batching, e and r are internal
encodings); the output topic holds every expected CloudEvent with exactly
the expected content, key, header and partition, nothing else, and a
repeated id only as a byte-identical copy (counted and printed); the DLQ is
empty; the group's committed offsets equal the end offsets
(loadgen.check_end_state).

  a  broker SIGKILLed and restarted while a producer keeps feeding events
     at a steady rate (the producer itself must ride the outage: cpkafka's
     idempotent producer with message.timeout.ms raised so that its
     retries outlast the broker's restart). custpulse keeps running; after
     the load: committed = end, SIGTERM exit 0, exact. CI: 1 crash;
     CP_LONG=1: 3 crashes and a longer load.
  b  CUSTPULSE_FAILPOINT=producer_fatal:K:fatal raises a fatal error in the
     idempotent producer at its K-th record (a false one, as librdkafka
     2.0.2 can raise: #4438). custpulse must log that it recreates the
     producer, its final counters ("stopped") have producer_restarts == 1,
     --exit-at-end exits 0 and the run is exact (the purged records are
     produced again: duplicates only as byte-identical copies).
  c  the input topic deleted and recreated (docs/fault-tolerance.md,
     offset_alarms): with fewer events than applied, with the group's old
     offsets put back, and grown past the old positions; each run of
     --exit-at-end must exit 1 in bounded time (the end-of-input check
     must not race the position check), log its alarm, count
     offset_alarms, consume nothing, commit nothing and change no customer
     hash; then the start-over steps of the docs (c4). See scenario_c.

A failed scenario is reported and the next one still runs; the exit status
is 1 if any failed.

    python3 test_kafka_faults.py [a b c]    # all, or only the named ones
"""
import json
import os
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
import faultutil  # noqa: E402
import harness  # noqa: E402
import loadgen  # noqa: E402
from cpcheck import (CheckFailed, Stopwatch, expect,  # noqa: E402
                     first_diffs, model_records, state_diffs)
from harness import Custpulse, Stack, config  # noqa: E402
from itest_util import all_hashes, checks_made, customer_hashes, say  # noqa

LONG = loadgen.LONG
OUT_PARTITIONS = 3
ALARM_MSG = "committed offset beyond the partition's end"
APPLIED_MSG = "events applied beyond the partition's end"
PROBE_MSG = "the event at the last applied offset is not the one applied"
RESTART_MSG = "fatal producer error: recreating the producer"
TITLES = {"a": "broker SIGKILL under load",
          "b": "false fatal producer error",
          "c": "input topic recreated"}

# a
A_PARTITIONS = 3
A_CUSTOMERS = 300
A_RATE = 200                     # events per second
A_CRASHES = 3 if LONG else 1
A_BEFORE_S = 20 if LONG else 6   # load before each crash
A_DOWN_S = 4                     # broker dead this long (plus its restart)
A_AFTER_S = 20 if LONG else 8    # load after the last restart
A_PRODUCER_TIMEOUT_MS = 300000   # cpkafka's message.timeout.ms
DRAIN_TIMEOUT_S = 120

# b
B_PARTITIONS = 3
B_CUSTOMERS = 400
B_EVENTS = 20000 if LONG else 3000
B_BATCH = 200
B_FATAL_AT = 40                  # the K-th record handed to the producer
B_RUN_TIMEOUT_S = 180

# c
C_PARTITIONS = 2
C_CUSTOMERS = 20
C_EVENTS = 400                   # before the topic is recreated
C_NEW_EVENTS = 60                # produced to the recreated topic (< ends)
C_ALARM_RUNS = 3
C_RUN_TIMEOUT_S = 60             # "bounded time" for the alarm runs


# ---- small helpers ----------------------------------------------------------

def records(events):
    return [{"key": e["customer_id"], "value": e} for e in events]


def counters(cp):
    return loadgen.stopped_counters(cp, faultutil.COUNTERS)


def brief(c, names=("events", "applied", "skipped_redelivered",
                    "duplicates", "outputs", "batches", "producer_restarts",
                    "offset_alarms")):
    return " ".join(f"{n}={c.get(n)}" for n in names)


def sigterm(cp, timeout=30):
    expect(cp.running(), f"{cp.name} exited before SIGTERM",
           f"status {cp.proc.returncode}\n{cp.stderr_text()[-2000:]}")
    t0 = time.monotonic()
    rc = cp.stop(signal.SIGTERM, timeout=timeout)
    return rc, time.monotonic() - t0


class LongProducer(loadgen.SteadyProducer):
    """loadgen.SteadyProducer whose cpkafka gets extra librdkafka settings:
    scenario a raises message.timeout.ms so the producer's own retries
    outlast a broker crash and restart (cpkafka's default, 60 s, is about
    what a loaded machine may need to restart the JVM)."""

    def __init__(self, st, topic, stream, rate, xconf):
        super().__init__(st, topic, stream, rate)
        self.xconf = xconf

    def start(self):
        args = []
        for k, v in self.xconf.items():
            args += ["-X", f"{k}={v}"]
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [harness.CP_KAFKATOOL, "produce", "-b", self.st.bootstrap,
                 "-t", self.topic, *args],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                preexec_fn=harness._child_setup(os.getpid()))
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self


# ---- OffsetCommit over a raw socket (scenario c) ----------------------------

def _kstr(s):
    b = s.encode()
    return struct.pack(">h", len(b)) + b


def commit_offsets_raw(port, group, topic, offsets, host="127.0.0.1"):
    """One OffsetCommit v2 request (supported by every Kafka 3.x) as a
    'simple' commit outside any group generation (generation -1, no member
    id), as offset tools do for a group without live members. Returns
    {partition: error code} (0 = committed). The single broker of the
    harness is every group's coordinator."""
    body = struct.pack(">hhi", 8, 2, 1) + _kstr("cp-test")
    body += _kstr(group) + struct.pack(">i", -1) + _kstr("")
    body += struct.pack(">q", -1)                      # retention: broker's
    body += struct.pack(">i", 1) + _kstr(topic)
    body += struct.pack(">i", len(offsets))
    for p, o in sorted(offsets.items()):
        body += struct.pack(">iqh", p, o, -1)           # metadata: null
    with socket.create_connection((host, port), timeout=10) as s:
        s.sendall(struct.pack(">i", len(body)) + body)
        (n,) = struct.unpack(">i", harness._recv_exact(s, 4))
        buf = harness._recv_exact(s, n)
    off = 4                                             # correlation id
    (nt,) = struct.unpack_from(">i", buf, off)
    off += 4
    errs = {}
    for _ in range(nt):
        (ln,) = struct.unpack_from(">h", buf, off)
        off += 2 + ln
        (np_,) = struct.unpack_from(">i", buf, off)
        off += 4
        for _ in range(np_):
            p, e = struct.unpack_from(">ih", buf, off)
            off += 6
            errs[p] = e
    return errs


# ---- one scenario -----------------------------------------------------------

class Scenario:
    """Topics, Redis prefix, group and config of one scenario."""

    def __init__(self, st, tag, partitions, **cfg):
        self.st, self.tag, self.title = st, tag, TITLES[tag]
        self.topic = f"orders.{tag}"
        self.segments = f"segments.{tag}"
        self.dlq = f"dlq.{tag}"
        self.prefix = f"{tag}:"
        self.partitions = partitions
        self.cfg = config(st, clock="event", **loadgen.REF.config(), **{
            "topic.orders": self.topic, "topic.segments": self.segments,
            "topic.dlq": self.dlq, "redis.key_prefix": self.prefix,
            "topic.partitions": OUT_PARTITIONS, **cfg})
        self.group = self.cfg["kafka.group.id"]
        self.timer = Stopwatch()
        st.create_topic(self.topic, partitions=partitions)

    def note(self, s):
        print(f"  [{self.tag} {self.timer.s():5.1f}s] {s}", flush=True)

    def custpulse(self, name, cfg=None, env=None):
        return Custpulse(self.st, cfg or self.cfg,
                         name=f"custpulse-{self.tag}-{name}", env=env)

    def end_state(self, n_produced):
        return loadgen.check_end_state(
            self.st, self.topic, self.segments, self.dlq, self.group,
            n_produced, self.partitions, OUT_PARTITIONS, prefix=self.prefix)


def scenario_a(st):
    """Broker SIGKILLed A_CRASHES times under a steady load."""
    sc = Scenario(st, "a", A_PARTITIONS, **{"stats.interval_ms": 5000})
    cp = sc.custpulse("run")
    cp.start(["run"])
    loadgen.wait_log(cp, lambda l: l.get("msg") == "partitions assigned"
                     and l.get("count", 0) > 0, 60, "partitions assigned")
    stream = loadgen.EventStream(20241001, A_CUSTOMERS, prefix="a")
    prod = LongProducer(st, sc.topic, stream, A_RATE, {
        "message.timeout.ms": A_PRODUCER_TIMEOUT_MS}).start()
    downs = []
    try:
        for i in range(A_CRASHES):
            time.sleep(A_BEFORE_S)
            loadgen.expect_alive([cp])
            expect(prod.running(), "producer thread died", prod.error)
            with st.redis() as r:
                before = loadgen.max_watermarks(r, sc.topic, sc.prefix)
            written = prod.written
            t0 = time.monotonic()
            st.stop_kafka(signal.SIGKILL)
            sc.note(f"crash {i + 1}: broker SIGKILLed ({written} events "
                    f"written so far; highest applied offsets "
                    f"{dict(sorted(before.items()))})")
            time.sleep(A_DOWN_S)
            loadgen.expect_alive([cp])
            st.start_kafka()
            downs.append(time.monotonic() - t0)
            sc.note(f"crash {i + 1}: broker back after {downs[-1]:.1f}s "
                    f"(JVM ready in {st.kafka_start_s:.1f}s); "
                    f"{prod.written - written} events written meanwhile")
        time.sleep(A_AFTER_S)
        loadgen.expect_alive([cp])
        produced = prod.stop(timeout=A_PRODUCER_TIMEOUT_MS / 1000 + 30)
    finally:
        prod.kill()
    sc.note(f"load done: {produced} events in {prod.elapsed():.1f}s at "
            f"{A_RATE}/s")
    ends, _ = loadgen.end_offsets_of(st, sc.topic, sc.partitions)
    waited = loadgen.wait_committed(st, sc.group, sc.topic, ends,
                                    DRAIN_TIMEOUT_S,
                                    alive=lambda: loadgen.expect_alive([cp]))
    sc.note(f"committed = end {sum(ends.values())} {waited:.1f}s after the "
            "load")
    rc, secs = sigterm(cp)
    expect(rc == 0, "a: exit status after SIGTERM",
           f"{rc}\n{cp.stderr_text()[-2000:]}")
    c = counters(cp)
    # Proof the outage reached custpulse: librdkafka's or custpulse's own
    # warnings about the broker while it was down.
    warns = [l for l in cp.log_lines() if l.get("level") in ("warn", "error")
             and ("kafka" in l.get("msg", "") or
                  l.get("msg") == "librdkafka")]
    expect(warns, "a: no warn/error line about Kafka during the outage")
    fig = sc.end_state(produced)
    sc.note(f"SIGTERM: exit 0 in {secs:.2f}s; {len(warns)} Kafka warn/error "
            f"lines; stopped: {brief(c)}")
    sc.note(f"exact: {fig['customers']} hashes = cpmodel (o, m, f, l, s, "
            f"q, w:*; no outbox), {fig['orders']} counted orders; all "
            f"{fig['outputs']} CloudEvents as {fig['records']} records "
            f"({fig['dups']} byte-identical duplicates); DLQ empty; "
            f"committed = end {fig['ends']}")
    return {"events": produced, "outputs": fig["outputs"],
            "dups": fig["dups"], "restarts": c["producer_restarts"],
            "alarms": c["offset_alarms"],
            "extra": f"broker down {', '.join('%.1fs' % d for d in downs)}"}


def scenario_b(st):
    """producer_fatal failpoint: a false fatal idempotent-producer error."""
    sc = Scenario(st, "b", B_PARTITIONS, **{"batch.size": B_BATCH})
    stream = loadgen.EventStream(20241002, B_CUSTOMERS, prefix="b")
    events = [stream.next() for _ in range(B_EVENTS)]
    st.produce(sc.topic, records(events))
    sc.note(f"produced {len(events)} events")
    cp = sc.custpulse("fatal", env={
        "CUSTPULSE_FAILPOINT": f"producer_fatal:{B_FATAL_AT}:fatal"})
    t = Stopwatch()
    rc, lines = faultutil.run_to_end(cp, B_RUN_TIMEOUT_S)
    expect(rc == 0, "b: --exit-at-end exit status",
           f"{rc}\n{cp.stderr_text()[-3000:]}")
    hits = faultutil.failpoint_hits(lines)
    expect(hits == [("producer_fatal", B_FATAL_AT, "fatal")],
           "b: failpoint lines", hits)
    restarts = [l for l in lines if l.get("msg", "").startswith(RESTART_MSG)]
    expect(len(restarts) == 1 and restarts[0].get("restarts") == 1,
           f"b: one '{RESTART_MSG}' line with restarts = 1",
           json.dumps(restarts)[:1000])
    c = counters(cp)
    expect(c["producer_restarts"] == 1,
           "b: stopped line producer_restarts == 1", json.dumps(c))
    expect(c["exit_code"] == 0, "b: stopped line exit_code", c["exit_code"])
    fig = sc.end_state(len(events))
    sc.note(f"exit 0 in {t.s():.1f}s; failpoint {hits[0]}; "
            f"'{restarts[0]['msg'][:45]}...' (error "
            f"{restarts[0].get('error')!r}); stopped: {brief(c)}")
    sc.note(f"exact: {fig['customers']} hashes = cpmodel, all "
            f"{fig['outputs']} CloudEvents as {fig['records']} records "
            f"({fig['dups']} byte-identical duplicates); DLQ empty; "
            f"committed = end")
    return {"events": len(events), "outputs": fig["outputs"],
            "dups": fig["dups"], "restarts": c["producer_restarts"],
            "alarms": c["offset_alarms"], "extra": f"fatal at record "
            f"{B_FATAL_AT}"}


def snapshot(st, prefix):
    """Every key under prefix with all its fields (bytes), except the
    partitions' fencing epochs (field e of <prefix>ep:*), which every
    assignment takes anew by design; their positions (o, f) are kept."""
    with st.redis() as r:
        h = all_hashes(r, prefix + "*")
    for k, fields in h.items():
        if k.startswith(prefix + "ep:"):
            fields.pop("e", None)
    return h


def alarm_runs(sc, st, label, runs, msg, want_fields, before, n_out,
               cfg=None):
    """`runs` times --exit-at-end on the recreated topic: each must exit 1
    in bounded time with error lines starting with msg (each for a listed
    partition, with the fields in want_fields[p]), offset_alarms equal to
    those lines, nothing consumed, committed offsets unchanged, Redis
    unchanged (snapshot) and no output. Returns (alarms, seconds)."""
    cfg = cfg or sc.cfg
    group = cfg["kafka.group.id"]
    committed0 = st.committed(group, sc.topic)
    secs, n_alarms = [], 0
    for i in range(runs):
        cp = sc.custpulse(f"{label}{i + 1}", cfg=cfg)
        t = Stopwatch()
        rc, lines = faultutil.run_to_end(cp, C_RUN_TIMEOUT_S)
        secs.append(t.s())
        alarms = [l for l in lines if l.get("level") == "error"
                  and l.get("msg", "").startswith(msg)]
        c = counters(cp)
        what = f"c: {label} run {i + 1}"
        expect(rc == 1, f"{what}: exit status 1",
               f"{rc}; stopped: {brief(c)}; last lines:\n"
               + "\n".join(json.dumps(l) for l in lines[-8:]))
        expect(alarms, f"{what}: no error line '{msg}...'",
               "\n".join(json.dumps(l) for l in lines[-8:]))
        for al in alarms:
            p = al.get("partition")
            expect(al.get("topic") == sc.topic and p in want_fields and all(
                al.get(k) == v for k, v in want_fields[p].items()),
                f"{what}: alarm line fields (want {want_fields.get(p)})",
                json.dumps(al))
        expect(c["offset_alarms"] >= 1 and
               c["offset_alarms"] == len(alarms),
               f"{what}: offset_alarms >= 1 and = alarm lines",
               f"{c['offset_alarms']} vs {len(alarms)} lines")
        n_alarms += c["offset_alarms"]
        expect(c["events"] == 0 and c["outputs"] == 0,
               f"{what}: nothing consumed", brief(c))
        expect(st.committed(group, sc.topic) == committed0,
               f"{what}: committed offsets changed",
               f"{committed0} -> {st.committed(group, sc.topic)}")
        now = snapshot(st, sc.prefix)
        expect(now == before, f"{what}: Redis changed",
               first_diffs(sorted(k for k in set(before) | set(now)
                                  if before.get(k) != now.get(k))))
        if i == 0:
            sc.note(f"{label}: exit 1 in {secs[-1]:.2f}s; {len(alarms)} "
                    f"alarm line(s), e.g. {json.dumps(alarms[0])[:300]}; "
                    f"stopped: {brief(c)}")
    expect(len(st.consume(sc.segments)) == n_out,
           f"c: {label}: outputs appeared during the alarm runs")
    sc.note(f"{label}: {runs} run(s), each exit 1 in "
            f"{min(secs):.2f}..{max(secs):.2f}s (limit {C_RUN_TIMEOUT_S}s), "
            "nothing consumed or committed, Redis unchanged (but the "
            "epochs), no output")
    return n_alarms, secs


def scenario_c(st):
    """The input topic deleted and recreated.

    Kafka 3.9 deletes every group's committed offsets with the topic
    (checked below, printed), so the group starts over like a new one, and
    the customers' watermarks would take every new event (offsets 0..
    again) for a re-delivery and skip it silently. custpulse keeps the
    position after the last event it applied per partition in Redis (o,
    and that event's fingerprint f, in <prefix>ep:<topic>:<p>); each run
    below must alarm and consume nothing:
      c1  the same group, the topic recreated with fewer events than
          applied: "events applied beyond the partition's end" (o > high);
      c2  the group's old offsets put back into the new topic (a consumer
          that kept running through the delete/create, or offsets migrated
          by a tool; the test commits them with a plain OffsetCommit):
          "committed offset beyond the partition's end";
      c3  a new group after the recreated topic has grown past the old
          positions (o <= high): the event at o - 1 is fetched and its
          fingerprint differs: "the event at the last applied offset is
          not the one applied".
    A new group on the unchanged topic (a replay) finds the same event
    there and consumes without an alarm: integration test
    test_no_double_counting and fault test test_redelivery."""
    sc = Scenario(st, "c", C_PARTITIONS)
    stream = loadgen.EventStream(20241003, C_CUSTOMERS, prefix="c")
    events = [stream.next() for _ in range(C_EVENTS)]
    st.produce(sc.topic, records(events))
    cp = sc.custpulse("first")
    rc, _ = faultutil.run_to_end(cp, 120)
    expect(rc == 0, "c: first --exit-at-end run", cp.stderr_text()[-2000:])
    fig = sc.end_state(len(events))
    old = st.committed(sc.group, sc.topic)
    rows_old = st.consume(sc.topic)
    n_out = len(st.consume(sc.segments))
    customers, _ = cpmodel.replay(model_records(rows_old, sc.topic),
                                  loadgen.REF)
    with st.redis() as r:
        pos = {p: int(r.hgetall(f"{sc.prefix}ep:{sc.topic}:{p}")["o"])
               for p in range(C_PARTITIONS)}
    expect(pos == old, "c: partition positions o = committed offsets",
           f"o {pos}, committed {old}")
    sc.note(f"first run: {len(events)} events, exact ({fig['customers']} "
            f"hashes, {fig['outputs']} CloudEvents); committed {old} = "
            f"positions in Redis")

    stream2 = loadgen.EventStream(20241004, C_CUSTOMERS, prefix="c")
    new = [stream2.next() for _ in range(C_NEW_EVENTS)]
    before = snapshot(st, sc.prefix)
    st.delete_topic(sc.topic)
    st.create_topic(sc.topic, partitions=C_PARTITIONS)
    st.produce(sc.topic, records(new))
    ends_new = loadgen.end_offsets_of(st, sc.topic, C_PARTITIONS)[0]
    expect(all(ends_new[p] < old[p] for p in range(C_PARTITIONS)),
           "c: the recreated topic's ends are below the old positions",
           f"ends {ends_new}, positions {old}")
    after_delete = st.committed(sc.group, sc.topic)
    expect(all(after_delete.get(p) is None for p in range(C_PARTITIONS)),
           "c: Kafka kept the group's offsets of the deleted topic",
           after_delete)
    sc.note(f"topic deleted and recreated with {len(new)} events, ends "
            f"{ends_new}; Kafka's committed offsets of the group now "
            f"{after_delete} (Kafka 3.9 deletes them with the topic)")

    n1, s1 = alarm_runs(
        sc, st, "c1 same group", C_ALARM_RUNS, APPLIED_MSG,
        {p: {"applied": old[p], "high": ends_new[p]}
         for p in range(C_PARTITIONS)}, before, n_out)

    errs = commit_offsets_raw(st.kafka_port, sc.group, sc.topic, old)
    expect(errs == {p: 0 for p in old}, "c: OffsetCommit of the old "
           "offsets", errs)
    expect(st.committed(sc.group, sc.topic) == old,
           "c: committed offsets put back", st.committed(sc.group, sc.topic))
    n2, s2 = alarm_runs(
        sc, st, "c2 old offsets", 2, ALARM_MSG,
        {p: {"committed": old[p], "high": ends_new[p]}
         for p in range(C_PARTITIONS)}, before, n_out)

    # The recreated topic grows past the old positions.
    more = [stream2.next() for _ in range(2 * C_EVENTS)]
    st.produce(sc.topic, records(more))
    ends_more = loadgen.end_offsets_of(st, sc.topic, C_PARTITIONS)[0]
    expect(all(ends_more[p] > old[p] for p in range(C_PARTITIONS)),
           "c: the recreated topic grew past the old positions",
           f"ends {ends_more}, positions {old}")
    cfg3 = dict(sc.cfg, **{"kafka.group.id": sc.group + "-new"})
    n3, s3 = alarm_runs(
        sc, st, "c3 grown, new group", 2, PROBE_MSG,
        {p: {"applied": old[p], "high": ends_more[p]}
         for p in range(C_PARTITIONS)}, before, n_out, cfg=cfg3)

    with st.redis() as r:
        hashes = customer_hashes(r, sc.prefix)
    expect(not state_diffs(hashes, customers),
           "c: state != the first run's cpmodel",
           first_diffs(state_diffs(hashes, customers)))
    start_over(sc, st, rows_old)
    secs = s1 + s2 + s3
    return {"events": len(events) + len(new) + len(more),
            "outputs": fig["outputs"], "dups": fig["dups"], "restarts": 0,
            "alarms": n1 + n2 + n3,
            "extra": f"alarm runs exit 1 in <= {max(secs):.1f}s"}


def start_over(sc, st, rows_old):
    """c4: the recreation was meant to start over. The operator's steps
    (docs/fault-tolerance.md, "Recreated input topics"): delete the
    partitions' <prefix>ep:<topic>:* keys and run
    deploy/drop-watermarks.lua on every customer hash. A new group then
    applies every event of the recreated topic once, on top of the old
    state: each hash equals cpmodel over the old events and the recreated
    topic's (as another topic), its watermarks only the recreated topic's.
    Returns the run's seconds."""
    with open(os.path.join(harness.SOURCE_DIR, "deploy",
                           "drop-watermarks.lua")) as f:
        script = f.read()
    with st.redis() as r:
        before = customer_hashes(r, sc.prefix)
        for p in range(sc.partitions):
            r.cmd("DEL", f"{sc.prefix}ep:{sc.topic}:{p}")
        keys = faultutil.keys_under(r, sc.prefix + "c:")
        dropped = sum(r.cmd("EVAL", script, 1, k, sc.topic) for k in keys)
        after = customer_hashes(r, sc.prefix)
    n_wms = sum(f.startswith("w:") for h in before.values() for f in h)
    expect(dropped == n_wms and n_wms > 0, "c4: watermarks dropped",
           f"{dropped} of {n_wms}")
    left = [c for c, h in after.items() if any(f.startswith("w")
                                                for f in h)]
    expect(not left, "c4: watermarks left", left[:5])
    bumped = [c for c in before
              if int(after[c]["v"]) != int(before[c]["v"]) + 1]
    expect(not bumped, "c4: v not bumped by one", bumped[:5])
    cfg = dict(sc.cfg, **{"kafka.group.id": sc.group + "-start-over"})
    cp = sc.custpulse("c4", cfg=cfg)
    t = Stopwatch()
    rc, _ = faultutil.run_to_end(cp, 120)
    secs = t.s()
    expect(rc == 0, "c4: --exit-at-end after the start-over steps",
           cp.stderr_text()[-2000:])
    rows_new = st.consume(sc.topic)
    again = sc.topic + " (recreated)"
    customers, _ = cpmodel.replay(
        model_records(rows_old, sc.topic) + model_records(rows_new, again),
        loadgen.REF)
    for c in customers.values():
        c.watermarks = {(sc.topic, p): o for (t_, p), o
                        in c.watermarks.items() if t_ == again}
    with st.redis() as r:
        hashes = customer_hashes(r, sc.prefix)
    diffs = state_diffs(hashes, customers)
    expect(not diffs, "c4: state != cpmodel over the old and the "
           "recreated topic's events", first_diffs(diffs))
    sc.note(f"c4 start over: ep keys deleted, {dropped} watermarks "
            f"dropped by deploy/drop-watermarks.lua (v + 1 in "
            f"{len(before)} hashes); a new group applied the recreated "
            f"topic's {len(rows_new)} events in {secs:.1f}s: state = "
            "cpmodel over both")
    return secs


SCENARIOS = [("a", scenario_a), ("b", scenario_b), ("c", scenario_c)]


def heal(st):
    for app in list(harness._apps):
        if app.stack is st:
            app.kill9()
    if st.redis_proc is None:
        st.start_redis()
    if st.kafka_proc is None:
        st.start_kafka()


def main():
    total = Stopwatch()
    only = set(sys.argv[1:])
    say(f"Kafka faults ({'long' if LONG else 'CI'} size): "
        + ", ".join(f"{t} {TITLES[t]}" for t, _ in SCENARIOS
                    if not only or t in only))
    results = []
    with Stack() as st:
        for tag, run in SCENARIOS:
            if only and tag not in only:
                continue
            print(f"\nscenario {tag}: {TITLES[tag]}", flush=True)
            t = Stopwatch()
            try:
                f = run(st)
                f["secs"] = t.s()
                results.append((tag, f, None))
            except (CheckFailed, TimeoutError, RuntimeError) as e:
                print(f"  [{tag}] FAILED: {e}", flush=True)
                results.append((tag, None, e))
                heal(st)
        print(f"\n{'scenario':36} {'result':6} {'events':>6} {'outputs':>7} "
              f"{'dups':>4} {'restarts':>8} {'alarms':>6} {'secs':>5}")
        for tag, f, err in results:
            name = f"{tag} {TITLES[tag]}"
            if err is not None:
                print(f"{name:36} FAILED {str(err).splitlines()[0][:90]}")
                continue
            print(f"{name:36} pass   {f['events']:>6} {f['outputs']:>7} "
                  f"{f['dups']:>4} {f['restarts']:>8} {f['alarms']:>6} "
                  f"{f['secs']:>5.1f}  {f['extra']}")
        failed = [tag for tag, _, err in results if err is not None]
        print(f"test_kafka_faults: {len(results) - len(failed)} of "
              f"{len(results)} scenarios passed in {total.s():.1f}s "
              f"({checks_made()} checks)")
        if failed:
            raise SystemExit(f"test_kafka_faults FAILED: scenarios "
                             f"{', '.join(failed)}")


if __name__ == "__main__":
    main()
