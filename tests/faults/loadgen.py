"""loadgen.py - a live order stream and the end-of-run checks of the fault
tests that run custpulse instances while events keep coming
(test_group_churn.py, test_zombie.py, test_sigterm_load.py).

- EventStream: an endless seeded stream of valid order events (placed,
  partial and over-sized refunds, cancellations, refunds and cancellations
  of unknown orders, re-placed order ids, upstream duplicates) for a fixed
  set of customers. Every occurred_at lies on one UTC day (2024-03-01), so
  with clock = event every "now" custpulse or cpmodel can see is on the
  day of every customer's last order: recency is 0 days whatever order the
  partitions are processed in and whichever instance processes them. A
  customer's segment then depends only on its own o and m, i.e. on its own
  events in its partition's order, and so do the other models an order
  stream moves: the lifecycle stage (new, or prospect without a counted
  order: every first order is on "today") and the value tier (from m).
  So cpmodel.replay of the input topic (any partition interleaving) gives
  the exact state AND the exact CloudEvents (recency_days and the
  lifecycle's day counts included) however the partitions moved between
  instances and batches.
- SteadyProducer: one long-running `cpkafka produce` fed through its stdin
  at a steady rate (events/s) from a thread, until stop().
- check_end_state: the input topic replayed through cpmodel against the
  Redis state, the output topic, the DLQ and the committed offsets.

Python 3 standard library only.
"""
import datetime
import json
import os
import random
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import cpmodel  # noqa: E402
import storecodec  # noqa: E402
import harness  # noqa: E402
from cpcheck import (expect, first_diffs, model_records,  # noqa: E402
                     output_check, state_diffs)
from itest_util import customer_hashes, order_event  # noqa: E402

LONG = os.environ.get("CP_LONG") == "1"

# The reference: R is always "better" (recency 0 <= 30), so the segment
# moves with F (>= 2 orders) and M (>= 100.00) only.
REF = cpmodel.Fixed(recency_days=30, frequency=2, monetary="100.00")

DAY = datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc)
FIRST_MS = int(DAY.timestamp() * 1000) + 3_600_000      # 01:00Z
LAST_MS = FIRST_MS + 21 * 3_600_000                     # 22:00Z
STEP_MS = (1, 300)      # between consecutive events: <= ~250k events a day


def _fmt(ms, offset_min):
    """RFC 3339 with milliseconds in a fixed zone (same UTC instant)."""
    d = datetime.datetime.fromtimestamp(
        ms / 1000, datetime.timezone(datetime.timedelta(minutes=offset_min)))
    s = d.strftime("%Y-%m-%dT%H:%M:%S") + ".%03d" % (ms % 1000)
    if offset_min == 0:
        return s + "Z"
    sign = "+" if offset_min > 0 else "-"
    return s + "%s%02d:%02d" % (sign, abs(offset_min) // 60,
                                abs(offset_min) % 60)


def _amount(rnd):
    """Decimal strings mostly; some JSON integers and one-decimal numbers."""
    minor = rnd.randint(100, 15000)
    roll = rnd.random()
    if roll < 0.05:
        return minor // 100
    if roll < 0.10:
        return float("%d.%d" % (minor // 100, minor % 10))
    return cpmodel.money_str(minor)


class EventStream:
    """Endless seeded stream of valid order events for n_customers
    customers (uniform). next() returns one event dict; kinds counts what
    was generated."""

    def __init__(self, seed, n_customers, prefix="z"):
        self.rnd = random.Random(seed)
        self.customers = ["%s-%04d" % (prefix, i) for i in range(n_customers)]
        self.t = FIRST_MS
        self.i = 0
        self.n_orders = 0
        self.hist = {}
        self.placed = {}
        self.kinds = {}

    def next(self):
        rnd = self.rnd
        self.i += 1
        self.t += rnd.randint(*STEP_MS)
        if self.t >= LAST_MS:
            raise RuntimeError("EventStream: the day is full (lower the "
                               "rate or the duration)")
        cid = rnd.choice(self.customers)
        hist = self.hist.setdefault(cid, [])
        ords = self.placed.setdefault(cid, [])
        when = _fmt(self.t, rnd.choice((0, 0, 0, 60, -120)))
        eid = "e-%d" % self.i
        roll = rnd.random()
        if roll < 0.05 and hist:
            kind, ev = "duplicate", dict(rnd.choice(hist[-4:]))
        elif roll < 0.08 and ords:
            kind = "placed again"
            ev = order_event(eid, "placed", cid, when, rnd.choice(ords[-6:]),
                             _amount(rnd))
        elif roll < 0.20 and ords:
            kind = "refund"
            minor = rnd.choice((rnd.randint(1, 3000),
                                rnd.randint(5000, 20000)))
            ev = order_event(eid, "refunded", cid, when,
                             rnd.choice(ords[-8:]), cpmodel.money_str(minor))
        elif roll < 0.28 and ords:
            kind = "cancel"
            ev = order_event(eid, "cancelled", cid, when,
                             rnd.choice(ords[-8:]), _amount(rnd))
        elif roll < 0.31:
            kind = "refund/cancel unknown"
            ev = order_event(eid, rnd.choice(("refunded", "cancelled")), cid,
                             when, "u-%d" % self.i, _amount(rnd))
        else:
            kind = "placed"
            self.n_orders += 1
            oid = "o-%d" % self.n_orders
            ords.append(oid)
            del ords[:-16]
            ev = order_event(eid, "placed", cid, when, oid, _amount(rnd))
        hist.append(ev)
        del hist[:-4]
        self.kinds[kind] = self.kinds.get(kind, 0) + 1
        return ev


class SteadyProducer:
    """Feeds events from an EventStream to one `cpkafka produce` process
    at `rate` events per second (key = customer id, murmur2_random) until
    stop(). The idempotent producer keeps each partition in the order
    written; the tests read the topic back for the model, so nothing here
    needs to know partitions or offsets."""

    TICK_S = 0.02

    def __init__(self, st, topic, stream, rate):
        self.st, self.topic, self.stream, self.rate = st, topic, stream, rate
        self.written = 0
        self.proc = None
        self.thread = None
        self.error = None
        self.t0 = self.t_end = None
        self._stop = threading.Event()
        self.stderr_path = st.path(f"producer-{topic}.stderr.log")

    def start(self):
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [harness.CP_KAFKATOOL, "produce", "-b", self.st.bootstrap,
                 "-t", self.topic],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=err,
                preexec_fn=harness._child_setup(os.getpid()))
        self.t0 = time.monotonic()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        return self

    def _run(self):
        try:
            while not self._stop.is_set():
                due = int((time.monotonic() - self.t0) * self.rate)
                lines = []
                while self.written + len(lines) < due:
                    ev = self.stream.next()
                    lines.append(json.dumps(
                        {"key": ev["customer_id"],
                         "value": json.dumps(ev, separators=(",", ":"))},
                        separators=(",", ":")) + "\n")
                if lines:
                    self.proc.stdin.write("".join(lines).encode())
                    self.proc.stdin.flush()
                    self.written += len(lines)
                self._stop.wait(self.TICK_S)
        except BaseException as e:  # noqa: BLE001 - re-raised by stop()
            self.error = e

    def running(self):
        return self.thread is not None and self.thread.is_alive()

    def elapsed(self):
        return (self.t_end or time.monotonic()) - self.t0

    def stop(self, timeout=120):
        """Stops feeding, lets cpkafka deliver everything and exit; raises
        if it failed. Returns the number of events produced."""
        self._stop.set()
        self.thread.join(30)
        self.t_end = time.monotonic()
        if self.error is not None:
            raise RuntimeError(f"producer thread failed: {self.error!r}")
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        rc = self.proc.wait(timeout)
        with open(self.stderr_path, errors="replace") as f:
            err = f.read()
        expect(rc == 0, "cpkafka produce exit status",
               f"{rc}: {err[-1000:]}")
        expect(f"produced {self.written} of {self.written} " in err,
               "cpkafka produce delivered every event",
               f"{self.written} written; cpkafka said {err.strip()[-300:]}")
        return self.written

    def kill(self):
        """For cleanup after a failure."""
        self._stop.set()
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---------------------------------------------------------------------------
# Progress and the end of a run
# ---------------------------------------------------------------------------

def max_watermarks(redis, topic, prefix="cp:"):
    """{partition: highest input offset applied to any customer} from the
    customers' watermarks (contracts section 2, "Encoding of w"; seen
    through storecodec.expand_w)."""
    best = {}
    head = storecodec.w_field(topic, 0)[:-1]
    for h in customer_hashes(redis, prefix).values():
        for f, v in h.items():
            if f.startswith(head):
                p = int(f[len(head):])
                best[p] = max(best.get(p, -1), int(v))
    return best


def wait_write_round(st, timeout=5.0):
    """Returns as soon as Redis has run a new EVALSHA (custpulse's WRITE
    or outbox CLEAR scripts; docs/architecture.md) after the call: a batch
    is then in flight (its outputs are being produced and acknowledged).
    True if seen within timeout. For aiming a signal into a batch."""
    def evalsha_calls(r):
        info = r.cmd("INFO", "commandstats")
        i = info.find(b"cmdstat_evalsha:calls=")
        if i < 0:
            return 0
        j = i + len(b"cmdstat_evalsha:calls=")
        return int(info[j:info.index(b",", j)])
    with st.redis(timeout=5) as r:
        n0 = evalsha_calls(r)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if evalsha_calls(r) > n0:
                return True
    return False


def end_offsets_of(st, topic, partitions):
    """({partition: high watermark}, input rows) of a topic with plain
    appends only."""
    rows = st.consume(topic, timeout=120)
    ends = {p: 0 for p in range(partitions)}
    for r in rows:
        ends[r["partition"]] = max(ends[r["partition"]], r["offset"] + 1)
    return ends, rows


def wait_committed(st, group, topic, ends, timeout, alive=None):
    """Until the group's committed offsets equal ends (every partition);
    alive() (optional) is called each round and should raise if an
    instance died. Returns the seconds waited."""
    t0 = time.monotonic()
    last = None
    while True:
        if alive is not None:
            alive()
        last = st.committed(group, topic)
        if {p: last.get(p) for p in ends} == ends:
            return time.monotonic() - t0
        if time.monotonic() - t0 > timeout:
            expect(False, f"committed offsets did not reach the end in "
                   f"{timeout}s", f"committed {last}, end {ends}")
        time.sleep(0.5)


def check_end_state(st, topic, segments, dlq, group, n_produced,
                    partitions, out_partitions, prefix="cp:"):
    """The whole end-of-run check; raises CheckFailed. Returns figures.

    - the input topic holds the n_produced events (every partition some);
    - Redis: every customer hash equals cpmodel.replay(input topic) on o,
      m, f, l, s, q and every w:<topic>:<partition> (exact: nothing lost,
      nothing counted twice), no outbox (key or x/xq) left, no customer missing
      or extra (cpcheck.state_diffs; v, e, r not compared);
    - the output topic holds every CloudEvent cpmodel expects, with
      exactly the expected content, key, header and partition, nothing
      else; a repeated id only as a byte-identical copy (counted);
    - the DLQ is empty;
    - the group's committed offset of every partition is its end."""
    ends, rows = end_offsets_of(st, topic, partitions)
    expect(len(rows) == n_produced, "input records in the topic",
           f"{len(rows)} != {n_produced} produced")
    empty = [p for p, e in ends.items() if e == 0]
    expect(not empty, "every input partition received events",
           f"empty: {empty}")
    customers, outputs = cpmodel.replay(model_records(rows, topic), REF)
    with st.redis() as r:
        hashes = customer_hashes(r, prefix)
    diffs = state_diffs(hashes, customers)
    expect(not diffs, f"state != cpmodel in {len(diffs)} customers",
           first_diffs(diffs))
    out = st.consume(segments, timeout=120)
    dups, problems = output_check(out, outputs, out_partitions)
    expect(not problems, "output topic", first_diffs(problems))
    dlq_rows = st.consume(dlq, timeout=60)
    expect(dlq_rows == [], "DLQ records", len(dlq_rows))
    committed = st.committed(group, topic)
    expect({p: committed.get(p) for p in ends} == ends,
           "committed offsets = end offsets", f"{committed} != {ends}")
    return {"events": len(rows), "customers": len(customers),
            "outputs": len(outputs), "records": len(out), "dups": dups,
            "orders": sum(c.orders for c in customers.values()),
            "ends": ends}


# ---------------------------------------------------------------------------
# custpulse's log
# ---------------------------------------------------------------------------

def stopped_counters(cp, need=()):
    """The last "stopped" line of an instance (its final counters); each
    name in need must be there (docs/fault-tolerance.md, Counters)."""
    lines = [l for l in cp.log_lines() if l.get("msg") == "stopped"]
    expect(lines, f"{cp.name}: no 'stopped' log line",
           cp.stderr_text()[-1500:])
    last = lines[-1]
    missing = [n for n in need if n not in last]
    expect(not missing, f"{cp.name}: counters missing from the 'stopped' "
           f"line (docs/fault-tolerance.md, Counters): {missing}",
           json.dumps(last))
    return last


def count_msgs(cp, msg, pred=None):
    return sum(1 for l in cp.log_lines() if l.get("msg") == msg
               and (pred is None or pred(l)))


def wait_log(cp, pred, timeout, what):
    """Custpulse.wait_log that fails at once (with the stderr tail) when
    the instance exits first. pred: dict -> bool, or a msg to match."""
    if isinstance(pred, str):
        msg = pred
        pred = lambda l: l.get("msg") == msg  # noqa: E731
    deadline = time.monotonic() + timeout
    while True:
        found = next((l for l in cp.log_lines() if pred(l)), None)
        if found is not None:
            return found
        expect(cp.running(), f"{cp.name} exited while waiting for {what}",
               f"status {cp.proc.returncode}; stderr tail:\n"
               + cp.stderr_text()[-2000:])
        expect(time.monotonic() < deadline,
               f"{cp.name}: no {what} within {timeout}s",
               "stderr tail:\n" + cp.stderr_text()[-2000:])
        time.sleep(0.1)


def expect_alive(instances):
    """Raises naming the first instance that exited while it should run."""
    for cp in instances:
        expect(cp.running(), f"{cp.name} exited unexpectedly",
               f"status {cp.proc.returncode}; stderr tail:\n"
               + cp.stderr_text()[-2000:])
