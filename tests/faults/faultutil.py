"""faultutil.py - what the fault tests (tests/faults/test_*.py) share, on
top of tests/integration (harness.py, itest_util.py, cpcheck.py).

- the size switch (CP_LONG=1: full size; otherwise the CI size);
- a seeded generator of a large, mixed order stream keyed by customer id
  (placed, partial refunds, cancellations, refunds and cancellations of
  unknown orders, re-placed order ids, upstream duplicates, a few invalid
  records for the DLQ), with event times that leave a gap around the
  recency boundary so the segments do not depend on the wall clock's day;
- bulk produce/consume through cpkafka with timeouts that fit a million
  records;
- every customer hash under a prefix, read with SCAN in slices (not one
  KEYS script: the long run has ~10^5 hashes);
- the `stats`/`stopped` counters and failpoint lines of a custpulse log.

Python 3 standard library only.
"""
import datetime
import json
import os
import random
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))

import cpmodel  # noqa: E402
import storecodec  # noqa: E402
from harness import kafkatool  # noqa: E402
from itest_util import kafka_partition, order_event  # noqa: E402

LONG = os.environ.get("CP_LONG") == "1"

# The five failpoints that crash (docs/fault-tolerance.md, Failpoints).
CRASH_FAILPOINTS = ("between_read_write", "after_redis_write",
                    "after_produce", "before_outbox_clear", "before_commit")

# Counters of the stats / stopped line (docs/fault-tolerance.md).
COUNTERS = ("events", "applied", "skipped_redelivered", "duplicates", "dlq",
            "outputs", "batches", "writes", "write_conflicts",
            "writes_fenced", "epochs_acquired", "redis_commands",
            "redis_round_trips", "redis_timeouts", "redis_disconnects",
            "redis_restarts_seen", "producer_restarts", "offset_alarms",
            "wait_short", "attrs_dropped", "btyd_loads", "rfmq_snapshots")


def utc_today():
    return datetime.datetime.now(datetime.timezone.utc).date()


# ---------------------------------------------------------------------------
# The order stream
# ---------------------------------------------------------------------------

# Event times lie in [T_FIRST, T_LAST) with no event within GAP_DAYS of
# BOUNDARY. The test sets rfm.fixed.recency_days = (today - BOUNDARY) days,
# computed once: R is "better" exactly for last orders on or after
# BOUNDARY. If the UTC date changes while the test runs, every R grows by
# one but no customer's last order lies within a day of the boundary, so
# no segment changes: segments (and so the CloudEvents' seq and ids) do not
# depend on when a batch read the wall clock. Only recency_days in the
# CloudEvents does.
T_FIRST = datetime.datetime(2019, 1, 1, tzinfo=datetime.timezone.utc)
T_LAST = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
BOUNDARY = datetime.date(2021, 7, 1)
GAP_DAYS = 3
FREQUENCY_REF = 4
MONETARY_REF = "400.00"


def recency_ref(today=None):
    """rfm.fixed.recency_days that puts the R boundary at BOUNDARY."""
    return ((today or utc_today()) - BOUNDARY).days


def fixed_reference(today=None):
    return cpmodel.Fixed(recency_days=recency_ref(today),
                         frequency=FREQUENCY_REF, monetary=MONETARY_REF)


def _time(rnd):
    """A random RFC 3339 time (ms, UTC or an offset) outside the gap."""
    span = int((T_LAST - T_FIRST).total_seconds() * 1000)
    lo = datetime.datetime.combine(
        BOUNDARY - datetime.timedelta(days=GAP_DAYS), datetime.time(),
        datetime.timezone.utc)
    hi = datetime.datetime.combine(
        BOUNDARY + datetime.timedelta(days=GAP_DAYS + 1), datetime.time(),
        datetime.timezone.utc)
    while True:
        t = T_FIRST + datetime.timedelta(milliseconds=rnd.randrange(span))
        # The gap is checked on the UTC instant: recency counts UTC days.
        if not lo <= t < hi:
            break
    off = rnd.choice((0, 0, 0, 60, -300, 330))
    local = t.astimezone(datetime.timezone(datetime.timedelta(minutes=off)))
    s = local.strftime("%Y-%m-%dT%H:%M:%S") + ".%03d" % (
        local.microsecond // 1000)
    if off == 0:
        return s + "Z"
    sign = "+" if off > 0 else "-"
    return s + "%s%02d:%02d" % (sign, abs(off) // 60, abs(off) % 60)


def _amount(rnd):
    """Mostly decimal strings with two decimals; some JSON numbers."""
    minor = int(rnd.paretovariate(1.6) * 900) + rnd.randrange(100)
    minor = min(minor, 5_000_000)
    roll = rnd.random()
    if roll < 0.05:
        return minor // 100               # integer
    if roll < 0.10:
        return float("%d.%d" % (minor // 100, minor % 10))  # one decimal
    return cpmodel.money_str(minor)


# Invalid records for the DLQ: (class custpulse must give, builder).
def _invalid(rnd, i, cid, when):
    kind = rnd.randrange(5)
    good = order_event(f"bad-{i}", "placed", cid, when, f"bad-o-{i}",
                       "10.00")
    if kind == 0:
        return "invalid_json", cid, '{"event_id": "bad-%d", "type": ' % i
    if kind == 1:
        return "currency_mismatch", cid, json.dumps(dict(good,
                                                         currency="EUR"))
    if kind == 2:
        return "key_mismatch", cid + "-x", json.dumps(good)
    if kind == 3:
        return "invalid_amount", cid, json.dumps(dict(good, amount="-1.00"))
    return "unknown_event_type", cid, json.dumps(dict(good,
                                                      type="order.shipped"))


def generate(seed, n_valid, n_customers, partitions, invalid_rate=0.003,
             dup_rate=0.04):
    """A seeded stream: n_valid valid order events (upstream duplicates
    included: re-sent verbatim copies of one of the customer's last few
    events) for about n_customers customers (skewed: a few are very
    active), plus about invalid_rate * n_valid invalid records. Returns a
    Stream. Each line carries the partition murmur2 gives the key, so the
    partition and offset of every record are known before producing."""
    rnd = random.Random(seed)
    lines = []
    figures = {"valid": 0, "invalid": 0}
    counts = [0] * partitions   # records per partition = offsets to come
    invalid = {}                # (partition, offset) -> (key, value)
    recent = {}          # cid -> last events sent (dicts)
    placed = {}          # cid -> order ids placed
    n_order = 0
    i = 0

    def emit(key, value, bad=False):
        p = kafka_partition(key.encode(), partitions)
        if bad:
            invalid[(p, counts[p])] = (key.encode(), value.encode())
        counts[p] += 1
        lines.append(json.dumps({"key": key, "value": value,
                                 "partition": p}, separators=(",", ":")))

    while figures["valid"] < n_valid:
        i += 1
        # Skewed activity: index ~ n * u^2.
        cid = "k-%06d" % int(n_customers * rnd.random() ** 2)
        when = _time(rnd)
        roll = rnd.random()
        if roll < invalid_rate:
            cls, key, value = _invalid(rnd, i, cid, when)
            emit(key, value, bad=True)
            figures["invalid"] += 1
            figures["dlq:" + cls] = figures.get("dlq:" + cls, 0) + 1
            continue
        hist = recent.setdefault(cid, [])
        ords = placed.setdefault(cid, [])
        roll = rnd.random()
        if roll < dup_rate and hist:
            kind, ev = "duplicate", rnd.choice(hist[-4:])
        elif roll < dup_rate + 0.02 and ords:
            kind = "placed again"
            ev = order_event(f"e-{i}", "placed", cid, when,
                             rnd.choice(ords[-8:]), _amount(rnd))
        elif roll < dup_rate + 0.12 and ords:
            kind = "refund"
            ev = order_event(f"e-{i}", "refunded", cid, when,
                             rnd.choice(ords[-8:]),
                             cpmodel.money_str(rnd.randint(1, 30000)))
        elif roll < dup_rate + 0.18 and ords:
            kind = "cancel"
            ev = order_event(f"e-{i}", "cancelled", cid, when,
                             rnd.choice(ords[-8:]), _amount(rnd))
        elif roll < dup_rate + 0.20:
            kind = "refund/cancel unknown"
            ev = order_event(f"e-{i}", rnd.choice(("refunded", "cancelled")),
                             cid, when, f"u-{i}", _amount(rnd))
        else:
            kind = "placed"
            n_order += 1
            oid = f"o-{n_order}"
            ords.append(oid)
            del ords[:-16]
            ev = order_event(f"e-{i}", "placed", cid, when, oid,
                             _amount(rnd))
        hist.append(ev)
        del hist[:-4]
        figures[kind] = figures.get(kind, 0) + 1
        figures["valid"] += 1
        emit(cid, json.dumps(ev, separators=(",", ":")))
    figures["customers"] = len(recent)
    return Stream(lines, figures, dict(enumerate(counts)), invalid)


class Stream:
    """generate()'s result. lines: cpkafka produce input lines; figures:
    counts by kind ("valid", "invalid", "customers", "duplicate", ...,
    "dlq:<class>"); ends: {partition: records} = the end offsets once
    produced to a fresh topic (the producer is idempotent, so a
    partition's records keep their order); invalid: {(partition, offset):
    (key bytes, value bytes)} of the invalid records."""

    def __init__(self, lines, figures, ends, invalid):
        self.lines, self.figures = lines, figures
        self.ends, self.invalid = ends, invalid


# ---------------------------------------------------------------------------
# Kafka in bulk
# ---------------------------------------------------------------------------

def produce_lines(st, topic, lines, chunk=200_000, record_batch=None):
    """cpkafka produce in chunks (one process per chunk keeps its stdin and
    memory bounded); raises if a delivery failed. record_batch: the
    producer's batch.size in bytes (librdkafka's default ~1 MB), i.e. the
    largest record batch in the log; a consumer's fetch returns at least
    one whole record batch per partition."""
    xs = ["-X", f"batch.size={record_batch}"] if record_batch else []
    for k in range(0, len(lines), chunk):
        part = lines[k:k + chunk]
        kafkatool("produce", "-b", st.bootstrap, "-t", topic, *xs,
                  input="\n".join(part) + "\n", timeout=600)


def consume_all(st, topic, timeout=300):
    """Stack.consume with a timeout that fits a large topic."""
    return st.consume(topic, timeout=timeout)


def end_offsets_of(st, topic, partitions, timeout=300):
    """{partition: high watermark} of a topic with plain appends only:
    offsets of the last record + 1 (0 for an empty partition)."""
    ends = {p: 0 for p in range(partitions)}
    for r in consume_all(st, topic, timeout):
        ends[r["partition"]] = max(ends[r["partition"]], r["offset"] + 1)
    return ends


# ---------------------------------------------------------------------------
# Redis in bulk
# ---------------------------------------------------------------------------

_HGETALL_MANY = """
local out = {}
for i, k in ipairs(KEYS) do
  out[i] = redis.call('HGETALL', k)
end
return out
"""


def hashes_under(redis, prefix, match="c:*", count=2000):
    """{key suffix after prefix + "c:{" ... "}" stripped: customer id ->
    {field (str): value (bytes)}} of every customer hash under prefix,
    read with SCAN and one script per slice of keys (a consistent picture
    only while nothing writes)."""
    cursor = b"0"
    keys = []
    while True:
        cursor, batch = redis.cmd("SCAN", cursor, "MATCH", prefix + match,
                                  "COUNT", count)
        keys.extend(batch)
        if cursor in (b"0", 0, "0"):
            break
    out = {}
    keys = sorted(set(keys))
    start = len(prefix) + 3  # 'c:{'
    for k in range(0, len(keys), 500):
        part = keys[k:k + 500]
        replies = redis.cmd("EVAL", _HGETALL_MANY, len(part), *part)
        for key, flat in zip(part, replies):
            name = key.decode("utf-8", "surrogateescape")
            if not (name.startswith(prefix + "c:{") and name.endswith("}")):
                raise AssertionError(f"unexpected key {name!r}")
            out[name[start:-1]] = storecodec.expand_w({
                f.decode("utf-8", "surrogateescape"): v
                for f, v in zip(flat[::2], flat[1::2])})
    return out


def keys_under(redis, prefix):
    """Every key under prefix (SCAN), sorted, as str."""
    cursor, keys = b"0", []
    while True:
        cursor, batch = redis.cmd("SCAN", cursor, "MATCH", prefix + "*",
                                  "COUNT", 2000)
        keys.extend(k.decode("utf-8", "surrogateescape") for k in batch)
        if cursor in (b"0", 0, "0"):
            break
    return sorted(set(keys))


# ---------------------------------------------------------------------------
# custpulse's log
# ---------------------------------------------------------------------------

def parse_log_text(text):
    """Parsed JSON log lines of a stderr text (other lines skipped)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if isinstance(obj, dict):
            out.append(obj)
    return out


def last_stopped(lines):
    """The last "stopped" line of parsed log lines, or None."""
    found = [l for l in lines if l.get("msg") == "stopped"]
    return found[-1] if found else None


def failpoint_hits(lines):
    """[(name, hit, action)] of the "failpoint" lines."""
    return [(l.get("name"), l.get("hit"), l.get("action"))
            for l in lines if l.get("msg") == "failpoint"]


def run_to_end(cp, timeout, env=None):
    """`custpulse run --exit-at-end` in the background (its stderr in its
    log file, so a hang still leaves its log to read); waits up to timeout.
    Returns (exit status, parsed log lines of this run). A run that does
    not exit in time is killed and reported with its last log lines."""
    from cpcheck import expect
    start = len(cp.stderr_text())
    cp.start(["run", "--exit-at-end"], env=env)
    try:
        rc = cp.wait(timeout)
    except subprocess.TimeoutExpired:
        cp.kill9()
        expect(False, f"{cp.name}: `run --exit-at-end` did not exit within "
               f"{timeout}s (killed)",
               "last log lines:\n" + "\n".join(
                   cp.stderr_text()[start:].splitlines()[-15:]))
    return rc, parse_log_text(cp.stderr_text()[start:])
