"""The crash loop: kill -9 and crash failpoints, over and over, change
nothing in the end (docs/fault-tolerance.md; contracts sections 2, 4, 5).

Input: a seeded stream of order events (faultutil.generate: placed,
partial refunds, cancellations, refunds/cancellations of unknown orders,
re-placed order ids, upstream duplicates re-sent verbatim, and ~0.3 %
invalid records), keyed by customer id, in 3 partitions of one orders
topic: >= 100,000 valid events in CI size, >= 1,000,000 with CP_LONG=1.

(a) Clean run: one `custpulse run --exit-at-end` over the input, with its
    own key prefix (clean:), group id and output topics; batch.size 200.
(b) Crash run: the same input with another prefix (crash:), group and
    output topics and batch.size 50 (smaller batches: more crash points,
    and the result must not depend on batching), in a loop of
    `run --exit-at-end` processes, each one
    either
      - started with CUSTPULSE_FAILPOINT=<name>:<N> for one of the five
        crash failpoints (N random in 1..4): it must SIGKILL itself there
        (its log shows {"msg":"failpoint","name":<name>,"hit":N}), or
      - started without one and killed with kill -9 after a random
        0.2..3 s (shorter when the input would not last otherwise),
    until >= 20 kill -9 (60 in CP_LONG) happened and each failpoint was
    hit >= 3 times (8 in CP_LONG); then a final run to the end, exit 0.
    The crash group logs its counters every 100 ms: at least a quarter of
    the kills must land after that process finished a batch (a kill
    during start-up tests start-up only). The choice between a kill and a
    failpoint is random, weighted by what is still needed, except that a
    failpoint goes first while the committed share of the input runs
    ahead of schedule (a failpoint run rarely commits), so the input
    lasts for the whole schedule.

Then, clean vs crash:
  - the same customer keys; per customer every field of layout 4 - lv,
    o, m, n, f, l, z, b, s, sq, q, sl, se, ss, sv, sc, yw, g, gc, k, h
    (absent: harness.config() runs the quantile RFM in fixed mode), e, r,
    every a:* and every w:* - byte-equal (COMPARED_FIELDS and the a:/w:
    prefixes; v counts writes and depends on batching and crashes, so it
    may differ); no outbox in either (no outbox key <prefix>x:{<id>}, no
    x/xq in a hash); no other field;
  - the segment-change and churn topics: the distinct CloudEvent ids are
    the same; the clean run has no duplicate; a duplicate in the crash run
    is byte-equal to its first copy (key, value, headers); each id's
    record equals the clean run's (value bytes, key, headers, partition);
    a churn warning's reason figures that are decayed values read at
    "now" (spend rates, ratios; WALL_DECAYED) depend on the wall clock of
    the batch and are left out of the comparison.
    recency_days (rfm8) and days_since_last_order / days_since_first_order
    (lifecycle) depend on the UTC date a batch ran on: if the date changed
    during the test, values are compared with those fields removed (and
    the test says so);
  - DLQ: the same source records (cp.source.partition/offset), each with
    byte-equal key, value and headers; duplicates only byte-equal; the
    clean DLQ holds exactly the generated invalid records;
  - both groups' committed offsets == the end offsets of the input.

Why `clock = wall` and a fixed reference: with `clock = event` "now" is
the greatest event time the *process* has seen, which depends on how the
three partitions' records interleave in batches and is lost at every
crash, so segments (and CloudEvent seq/ids) would legitimately differ
between a clean and a crashed run. With `clock = wall` "now" is read
once per batch; the generator leaves a gap of +-3 days around the
recency boundary (rfm.fixed.recency_days = today - 2021-07-01, computed
once), so no segment depends on which day a batch ran: results do not
depend on batching, crash points or re-deliveries, only on each
customer's events in partition order. The same holds for the other
models an order stream moves: every event lies before 2024, over 180
days before any batch's "now", so every evaluated lifecycle stage is
`churned` (and the value tier churn_risk or low_value) whatever the day;
"won back" is decided on the order's own day (faultutil's times are not
in order), which does not depend on the clock either.

Restarts are fast because the crash group uses static membership
(kafka.group.instance.id): a restarted member with the same instance id
takes over the dead member's assignment at once, instead of the group
waiting for the dead member's session to expire (librdkafka's default
session.timeout.ms is 45 s, the broker's group.min.session.timeout.ms
6 s). Verified with librdkafka 2.0.2 + cooperative-sticky + Kafka 3.9:
assignment ~0.05 s after start instead of 44 s (printed as
"assigned after"). The broker's minimum session timeout is lowered too
(Stack(broker_props=...)) so the short kafka.session.timeout.ms is
accepted as a fallback.

    python3 test_crash_loop.py        # CI size;  CP_LONG=1: full size
"""
import datetime
import json
import os
import random
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultutil as fu  # noqa: E402
from cpcheck import Stopwatch, expect, first_diffs  # noqa: E402
from harness import Custpulse, Stack, config, unique_name  # noqa: E402
from itest_util import (CE_CONTENT_TYPE, checks_made,  # noqa: E402
                        kafka_partition, say)

SEED = 20250404
N_VALID = 1_000_000 if fu.LONG else 100_000
N_CUSTOMERS = N_VALID // 20
PARTITIONS = 3                 # of the orders topic
OUT_PARTITIONS = 3             # of the output and DLQ topics
# Small batches: many batch boundaries, so many distinct crash points. The
# crash group's are smaller than the clean run's: the results must not
# depend on batching either (only v may), and its input lasts for the
# whole crash schedule.
CLEAN_BATCH_SIZE = 200
CRASH_BATCH_SIZE = 50
MIN_KILLS = 60 if fu.LONG else 20
MIN_FP_HITS = 8 if fu.LONG else 3
KILL_AFTER_S = (0.2, 3.0)
FP_N = (1, 4)
FP_TIMEOUT_S = 120             # a failpoint run must crash within this
# The loop may use at most this share of the input before its schedule
# is done; the rest is for the final run (see choose_kind).
LOOP_SHARE = 0.8
ORDERS = "orders.crashloop"
RECORD_BATCH = 65536           # bytes: producer batch.size of the input
# Compared byte for byte between the clean and the crash run, plus every
# watermark (in w). v (the write counter) may differ.
COMPARED_FIELDS = ("lv", "o", "m", "n", "f", "l", "z", "b", "s", "sq", "q",
                   "sl", "se", "ss", "sv", "sc", "yw", "g", "gc", "k", "h",
                   "e", "r", "gp", "sp", "cw", "dd")
COMPARED_PREFIXES = ("a:", "w:")
ALLOWED_EXTRA = {"v"}
OUTBOX_FIELDS = ("x", "xq")
RUN_TIMEOUT_S = 3600 if fu.LONG else 600


def note(msg):
    say(f"[{time.strftime('%H:%M:%S')}] {msg}")


class Group:
    """One consumer group over ORDERS with its own prefix and topics."""

    def __init__(self, st, tag, ref, batch_size, static=False):
        self.st, self.tag = st, tag
        self.prefix = f"{tag}:"
        self.segments = f"segments.{tag}"
        self.churn = f"churn.{tag}"
        self.dlq = f"dlq.{tag}"
        self.group = unique_name(tag)
        extra = {}
        if static:
            extra = {"kafka.group.instance.id": f"{tag}-member",
                     "kafka.session.timeout.ms": 3000,
                     "kafka.heartbeat.interval.ms": 500,
                     # Counters every 100 ms: the last line before a kill
                     # tells how far that process got (printed figures).
                     "stats.interval_ms": 100,
                     # librdkafka queues each partition's fetched records
                     # in chunks of up to 1 MB (~5,000 records), and a
                     # restarted process fetches partition 0 first: the
                     # loop's batches would hold partition 0 only. 64 KB
                     # fetches of the input's 64 KB record batches
                     # (RECORD_BATCH) interleave the three partitions
                     # within a few batches: crashes hit all of them, and
                     # batches that mix them.
                     "kafka.fetch.message.max.bytes": RECORD_BATCH}
        self.cfg = config(st, **ref.config(), **extra, **{
            "topic.orders": ORDERS, "topic.segments": self.segments,
            "topic.churn": self.churn, "topic.dlq": self.dlq,
            "topic.partitions": OUT_PARTITIONS,
            "redis.key_prefix": self.prefix, "kafka.group.id": self.group,
            "clock": "wall", "batch.size": batch_size,
            # Stored offsets are committed every 200 ms (default 1 s): a
            # crash then re-delivers a short backlog, so most failpoints
            # land on batches with fresh work.
            "kafka.auto.commit.interval.ms": 200})
        self.n = 0

    def custpulse(self):
        self.n += 1
        return Custpulse(self.st, self.cfg, name=f"{self.tag}-{self.n:03d}")

    def committed(self):
        return self.st.committed(self.group, ORDERS)


# ---------------------------------------------------------------------------
# The crash loop
# ---------------------------------------------------------------------------

class Loop:
    def __init__(self, grp, total_records, rnd):
        self.grp, self.total, self.rnd = grp, total_records, rnd
        self.kills = 0
        self.kills_before_assignment = 0
        self.kills_mid_stream = 0   # after the process finished a batch
        self.hits = {n: 0 for n in fu.CRASH_FAILPOINTS}
        self.runs = []          # (kind, detail, seconds, committed share)
        self.assigned_after = []
        self.planned = MIN_KILLS + MIN_FP_HITS * len(fu.CRASH_FAILPOINTS)
        self.kill_s = 0.0       # seconds spent in kill runs so far
        self.kill_share = 0.0   # input share those runs committed
        self.capped = 0         # kill delays shortened by kill_delay()

    def done(self):
        return (self.kills >= MIN_KILLS and
                min(self.hits.values()) >= MIN_FP_HITS)

    def progress(self):
        """Share of the input records the group has committed."""
        c = self.grp.committed()
        return sum(v or 0 for v in c.values()) / self.total

    def choose_kind(self, progress):
        """("kill", None) or ("fp", name). A failpoint run crashes within 4
        batches and rarely commits; a kill run can commit up to ~3 s of
        work. So the input lasts until the schedule is done: while the
        committed share runs ahead of LOOP_SHARE * (runs done / runs
        planned) a needed failpoint goes next; otherwise the choice is
        random, weighted by what is still needed."""
        need_fp = [n for n in fu.CRASH_FAILPOINTS
                   if self.hits[n] < MIN_FP_HITS]
        need_kills = max(0, MIN_KILLS - self.kills)
        target = LOOP_SHARE * (len(self.runs) + 1) / self.planned
        if not need_fp:
            return "kill", None
        if not need_kills or progress > target:
            return "fp", self.rnd.choice(need_fp)
        n_fp = sum(MIN_FP_HITS - self.hits[n] for n in need_fp)
        if self.rnd.random() < need_kills / (need_kills + n_fp):
            return "kill", None
        return "fp", self.rnd.choice(need_fp)

    def kill_delay(self, progress):
        """A random delay in KILL_AFTER_S, capped so the input lasts: the
        input share still allowed to the loop (LOOP_SHARE - progress),
        spread over the runs still needed, at the rate the loop has
        consumed it so far in kill runs (share per second), plus
        the start-up time (the median time to 'partitions assigned').
        The consumer's speed varies between machines and builds, so a
        fixed delay range either runs out of input or wastes time."""
        delay = self.rnd.uniform(*KILL_AFTER_S)
        if self.kill_s <= 0 or self.kill_share <= 0:
            return delay
        rate = self.kill_share / self.kill_s
        need_fp = sum(max(0, MIN_FP_HITS - h) for h in self.hits.values())
        runs_left = max(1, MIN_KILLS - self.kills) + need_fp
        budget = max(0.0, LOOP_SHARE - progress) / runs_left / rate
        startup = (statistics.median(self.assigned_after)
                   if self.assigned_after else 0.1)
        cap = max(KILL_AFTER_S[0], startup + budget)
        if delay > cap:
            self.capped += 1
            delay = self.rnd.uniform(KILL_AFTER_S[0], cap)
        return delay

    def run_once(self):
        progress = self.progress()
        expect(progress < 1.0, "the crash loop consumed the whole input "
               "before its schedule was done (make the input larger)",
               self.summary())
        kind, name = self.choose_kind(progress)
        cp = self.grp.custpulse()
        t0, wall0 = time.monotonic(), time.time()
        if kind == "kill":
            delay = self.kill_delay(progress)
            cp.start(["run", "--exit-at-end"])
            try:
                rc = cp.wait(timeout=delay)
            except subprocess.TimeoutExpired:
                rc = cp.kill9()
            else:
                self.exited_early(cp, rc, f"before its kill -9 at "
                                  f"{delay:.2f}s")
            expect(rc == -9, f"{cp.name}: status after kill -9", rc)
            self.kills += 1
            detail = f"kill -9 after {delay:.2f}s"
        else:
            n = self.rnd.randint(*FP_N)
            cp.start(["run", "--exit-at-end"],
                     env={"CUSTPULSE_FAILPOINT": f"{name}:{n}"})
            try:
                rc = cp.wait(timeout=FP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                cp.kill9()
                expect(False, f"{cp.name}: failpoint {name}:{n} not reached "
                       f"within {FP_TIMEOUT_S}s",
                       cp.stderr_text()[-3000:])
            if rc != -9:
                self.exited_early(cp, rc, f"before failpoint {name}:{n}")
            lines = fu.parse_log_text(cp.stderr_text())
            fps = fu.failpoint_hits(lines)
            expect(fps == [(name, n, "crash")],
                   f"{cp.name}: failpoint lines of {name}:{n} (status "
                   f"{rc})", f"{fps}\n{cp.stderr_text()[-2000:]}")
            self.hits[name] += 1
            detail = f"failpoint {name}:{n}"
        secs = time.monotonic() - t0
        lines = fu.parse_log_text(cp.stderr_text())
        assigned = [l for l in lines if l.get("msg") == "partitions assigned"]
        if assigned:
            self.assigned_after.append(_ts(assigned[0]["ts"]) - wall0)
        elif kind == "kill":
            self.kills_before_assignment += 1
        stats = [l for l in lines if l.get("msg") == "stats"]
        if kind == "kill" and stats and stats[-1].get("batches", 0) > 0:
            self.kills_mid_stream += 1
        if kind == "kill":
            self.kill_s += secs
            self.kill_share += max(0.0, self.progress() - progress)
        self.runs.append((kind, detail, secs, progress))

    def exited_early(self, cp, rc, when):
        if rc == 0:
            expect(False, f"{cp.name} reached the end of the input {when}: "
                   "the input is too small for the crash schedule",
                   self.summary())
        expect(False, f"{cp.name} exited by itself with status {rc} {when}",
               cp.stderr_text()[-3000:])

    def summary(self):
        return (f"{len(self.runs)} runs, {self.kills} kill -9, failpoint "
                f"hits {self.hits}")


def _ts(s):
    """A log line's ts ("2024-03-01T10:15:00.123Z") -> epoch seconds."""
    return datetime.datetime.strptime(
        s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()


# ---------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------

def compare_hashes(clean, crash):
    """Returns the number of compared (customer, field) pairs."""
    expect(sorted(clean) == sorted(crash), "customer keys differ",
           f"only clean: {first_diffs(sorted(set(clean) - set(crash)))}; "
           f"only crash: {first_diffs(sorted(set(crash) - set(clean)))}")
    diffs, n = [], 0
    for cid in sorted(clean):
        a, b = clean[cid], crash[cid]
        for tag, h in (("clean", a), ("crash", b)):
            left = [f for f in OUTBOX_FIELDS if f in h]
            expect(not left, f"{tag}: outbox fields {left} left in "
                   f"customer {cid!r}", {f: h[f][:200] for f in left})
            extra = sorted(f for f in h if f not in COMPARED_FIELDS and
                           f not in ALLOWED_EXTRA and
                           not f.startswith(COMPARED_PREFIXES))
            expect(not extra, f"{tag}: unexpected fields in {cid!r}", extra)
        fields = set(COMPARED_FIELDS) | {f for f in set(a) | set(b)
                                         if f.startswith(COMPARED_PREFIXES)}
        for f in sorted(fields):
            n += 1
            if a.get(f) != b.get(f):
                diffs.append(f"{cid}.{f}: clean {a.get(f)!r:.60} crash "
                             f"{b.get(f)!r:.60}")
    expect(not diffs, f"{len(diffs)} field(s) differ between the clean and "
           "the crash run", first_diffs(diffs, 10))
    # Not vacuous: the order stream fills the layout-2 fields it can (lv,
    # n, sl everywhere; sv, b and yw for some - sv is absent without a
    # counted order; no browsing, support or profile fields).
    have = {f: sum(f in h for h in clean.values()) for f in COMPARED_FIELDS}
    for f in ("lv", "n", "sl"):
        expect(have[f] == len(clean), f"clean: field {f} missing in "
               f"{len(clean) - have[f]} customers")
    for f in ("sv", "b", "yw"):
        expect(have[f] > 0, f"clean: no customer has field {f}")
    for f in ("se", "ss", "sc", "g", "gc", "k"):
        expect(have[f] == 0, f"clean: {have[f]} customers have field {f}")
    return n, have


def by_ce_id(rows, topic):
    """{id: [rows]} of an output topic's records, in offset order."""
    out = {}
    for r in rows:
        try:
            eid = json.loads(r["value"])["id"]
        except (TypeError, ValueError, KeyError):
            expect(False, f"{topic}: not a CloudEvent at "
                   f"{r['partition']}/{r['offset']}", repr(r["value"])[:200])
        out.setdefault(eid, []).append(r)
    return out


def without_recency(value):
    """A CloudEvent without the figures that count days up to "now"."""
    ev = json.loads(value)
    data = ev.get("data", {})
    data.pop("recency_days", None)
    for k in ("days_since_last_order", "days_since_first_order"):
        data.get("scores", {}).pop(k, None)
    return json.dumps(ev, sort_keys=True)


# Churn reason figures that are decayed values read at "now": with clock =
# wall, the wall clock of the batch, so two runs differ in the last digits
# (e.g. a spend rate of 2021 decayed to 1.1e-5 or 1.2e-5 per day).
WALL_DECAYED = ("spend_rate_short", "spend_rate_long", "ratio",
                "engagement", "peak", "complaints", "csat_age_days")


def without_wall_decay(value, date_changed):
    """A churn CloudEvent without the figures decayed to the wall clock
    (and, if the UTC date changed, without the day counts)."""
    ev = json.loads(value)
    data = ev.get("data", {})
    for reason in data.get("reasons", []):
        for k in WALL_DECAYED + (("days_since_last_order",)
                                 if date_changed else ()):
            reason.get("figures", {}).pop(k, None)
    if date_changed:
        data.pop("days_since_last_order", None)
    return json.dumps(ev, sort_keys=True)


def compare_outputs(clean_rows, crash_rows, topic, date_changed):
    """Returns (distinct ids, duplicates in the crash run)."""
    clean, crash = by_ce_id(clean_rows, topic), by_ce_id(crash_rows, topic)
    dup_clean = [i for i, rs in clean.items() if len(rs) > 1]
    expect(not dup_clean, f"{topic}: the clean run emitted an id twice",
           first_diffs(dup_clean))
    only_clean = sorted(set(clean) - set(crash))
    only_crash = sorted(set(crash) - set(clean))
    expect(not only_clean and not only_crash,
           f"{topic}: CloudEvent ids differ",
           f"{len(only_clean)} only in the clean run (e.g. "
           f"{first_diffs(only_clean, 3)}), {len(only_crash)} only in the "
           f"crash run (e.g. {first_diffs(only_crash, 3)})")
    dups, problems = 0, []
    for eid, rs in crash.items():
        first = rs[0]
        for r in rs[1:]:
            dups += 1
            if (r["key"], r["value"], r["headers"]) != (
                    first["key"], first["value"], first["headers"]):
                problems.append(f"duplicate of {eid} at {r['partition']}/"
                                f"{r['offset']} differs from its first copy")
        want = clean[eid][0]
        if topic.startswith("churn."):
            same = (without_wall_decay(first["value"], date_changed) ==
                    without_wall_decay(want["value"], date_changed))
        elif date_changed:
            same = without_recency(first["value"]) == without_recency(
                want["value"])
        else:
            same = first["value"] == want["value"]
        if not same:
            problems.append(f"{eid}: crash {first['value']!r:.300}\n"
                            f"      clean {want['value']!r:.300}")
        if (first["key"], first["headers"], first["partition"]) != (
                want["key"], want["headers"], want["partition"]):
            problems.append(f"{eid}: key/headers/partition differ")
        if first["headers"] != [("content-type", CE_CONTENT_TYPE)] or \
                first["partition"] != kafka_partition(first["key"],
                                                      OUT_PARTITIONS):
            problems.append(f"{eid}: envelope {first['headers']} partition "
                            f"{first['partition']}")
    expect(not problems, f"{topic}: {len(problems)} problem(s)",
           first_diffs(problems, 5))
    return len(crash), dups


def dlq_source(r):
    """(partition, offset) of the input record a DLQ record carries."""
    h = dict(r["headers"])
    try:
        return (int(h["cp.source.partition"]), int(h["cp.source.offset"]))
    except (KeyError, TypeError, ValueError):
        return None


def compare_dlq(clean_rows, crash_rows, invalid_by_src):
    """invalid_by_src: {(partition, offset): (key bytes, value bytes)} of
    the invalid input records. Returns crash duplicates."""
    def group(rows, tag):
        out = {}
        for r in rows:
            src = dlq_source(r)
            expect(src is not None, f"{tag} DLQ record without its source "
                   "headers", r["headers"])
            out.setdefault(src, []).append(r)
        return out
    clean, crash = group(clean_rows, "clean"), group(crash_rows, "crash")
    expect(sorted(clean) == sorted(invalid_by_src),
           "clean DLQ sources != the invalid input records",
           f"{len(clean)} vs {len(invalid_by_src)}")
    expect(all(len(rs) == 1 for rs in clean.values()),
           "clean DLQ holds a record twice")
    for src, rs in clean.items():
        key, value = invalid_by_src[src]
        expect((rs[0]["key"], rs[0]["value"]) == (key, value),
               f"clean DLQ record of {src} is not byte-identical to the "
               "input")
    expect(sorted(crash) == sorted(clean), "DLQ sources differ",
           f"only clean {first_diffs(sorted(set(clean) - set(crash)))}; "
           f"only crash {first_diffs(sorted(set(crash) - set(clean)))}")
    dups = 0
    for src, rs in crash.items():
        want = clean[src][0]
        for r in rs:
            expect((r["key"], r["value"], r["headers"]) ==
                   (want["key"], want["value"], want["headers"]),
                   f"crash DLQ record of {src} differs from the clean one",
                   f"{r['headers']} vs {want['headers']}")
        dups += len(rs) - 1
    return dups


# ---------------------------------------------------------------------------

def main():
    total = Stopwatch()
    t = Stopwatch()
    stream = fu.generate(SEED, N_VALID, N_CUSTOMERS, PARTITIONS)
    fig, ends, invalid_by_src = stream.figures, stream.ends, stream.invalid
    n_records = sum(ends.values())
    t_gen = t.s()
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(fig.items())
                      if not k.startswith("dlq:") and k not in
                      ("valid", "invalid", "customers"))
    note(f"input: {fig['valid']} valid events ({kinds}) for "
         f"{fig['customers']} customers, {fig['invalid']} invalid records, "
         f"seed {SEED}, {PARTITIONS} partitions; generated in {t_gen:.1f}s")
    expect(fig["valid"] >= N_VALID and fig["duplicate"] > 0 and
           fig["cancel"] > 0 and fig["refund"] > 0 and fig["invalid"] > 0,
           "the generator must give duplicates, cancellations, refunds and "
           "invalid records", fig)
    date0 = fu.utc_today()
    ref = fu.fixed_reference(date0)
    with Stack(broker_props={"group.min.session.timeout.ms": 500}) as st:
        st.create_topic(ORDERS, partitions=PARTITIONS)
        t = Stopwatch()
        fu.produce_lines(st, ORDERS, stream.lines,
                         record_batch=RECORD_BATCH)
        t_prod = t.s()
        stream.lines = None
        note(f"produced {n_records} records in {t_prod:.1f}s; end offsets "
             f"{ends}; rfm.fixed.recency_days {ref.recency_days} (UTC date "
             f"{date0})")

        # (a) the clean run
        clean = Group(st, "clean", ref, CLEAN_BATCH_SIZE)
        cp = clean.custpulse()
        t = Stopwatch()
        rc, lines = fu.run_to_end(cp, RUN_TIMEOUT_S)
        t_clean = t.s()
        expect(rc == 0, "clean run exit status",
               f"{rc}\n{cp.stderr_text()[-3000:]}")
        cs = fu.last_stopped(lines) or {}
        note(f"(a) clean run: exit 0 in {t_clean:.1f}s; counters "
             + json.dumps({k: cs.get(k) for k in fu.COUNTERS if k in cs}))
        expect(cs.get("events") == fig["valid"] and
               cs.get("dlq") == fig["invalid"],
               "clean run: events/dlq counters", cs)
        expect(clean.committed() == ends, "clean run: committed offsets",
               f"{clean.committed()} != end {ends}")

        # (b) the crash loop
        crash = Group(st, "crash", ref, CRASH_BATCH_SIZE, static=True)
        loop = Loop(crash, n_records, random.Random(SEED + 1))
        t = Stopwatch()
        while not loop.done():
            loop.run_once()
            if len(loop.runs) % 10 == 0:
                note(f"  {loop.summary()}; committed "
                     f"{loop.runs[-1][3] * 100:.0f}% before the last run")
        t_loop = t.s()
        # A kill during start-up only tests start-up; most must hit work.
        expect(loop.kills_mid_stream >= MIN_KILLS // 4,
               "too few kill -9 landed after the process had finished a "
               "batch (start-up slower than the kill delays?)",
               f"{loop.kills_mid_stream} of {loop.kills}")
        progress = loop.progress()
        note(f"(b) crash loop: {loop.summary()} in {t_loop:.1f}s; "
             f"{progress * 100:.1f}% of the input committed "
             f"({crash.committed()} of {ends})")
        cp = crash.custpulse()
        t = Stopwatch()
        rc, lines = fu.run_to_end(cp, RUN_TIMEOUT_S)
        t_final = t.s()
        expect(rc == 0, "final crash-group run exit status",
               f"{rc}\n{cp.stderr_text()[-3000:]}")
        fs = fu.last_stopped(lines) or {}
        note(f"    final run: exit 0 in {t_final:.1f}s; counters "
             + json.dumps({k: fs.get(k) for k in fu.COUNTERS if k in fs}))
        date1 = fu.utc_today()

        # Comparisons
        t = Stopwatch()
        expect(crash.committed() == ends, "crash group: committed offsets",
               f"{crash.committed()} != end {ends}")
        with st.redis(timeout=60) as r:
            h_clean = fu.hashes_under(r, clean.prefix)
            h_crash = fu.hashes_under(r, crash.prefix)
            other = [k for k in fu.keys_under(r, crash.prefix)
                     if not k.startswith(crash.prefix + "c:")]
            for run in (clean, crash):
                left = [k for k in fu.keys_under(r, run.prefix)
                        if k.startswith(run.prefix + "x:")]
                expect(not left, f"outbox keys left under {run.prefix}",
                       first_diffs(left))
        expect(len(h_clean) == fig["customers"], "customers in Redis",
               f"{len(h_clean)} != {fig['customers']}")
        n_fields, have = compare_hashes(h_clean, h_crash)
        date_changed = date1 != date0
        out_fig = {}
        for clean_t, crash_t in ((clean.segments, crash.segments),
                                 (clean.churn, crash.churn)):
            ids, dups = compare_outputs(fu.consume_all(st, clean_t),
                                        fu.consume_all(st, crash_t),
                                        crash_t, date_changed)
            out_fig[crash_t] = (ids, dups)
        dlq_dups = compare_dlq(fu.consume_all(st, clean.dlq),
                               fu.consume_all(st, crash.dlq), invalid_by_src)
        t_cmp = t.s()

        kill_n = loop.kills
        fp_n = sum(loop.hits.values())
        aa = loop.assigned_after
        note("figures:")
        say(f"  events: {fig['valid']} valid + {fig['invalid']} invalid in "
            f"{PARTITIONS} partitions, {len(h_clean)} customers")
        say(f"  crashes: {kill_n + fp_n} = {kill_n} kill -9 after 0.2..3 s "
            f"({loop.capped} shortened to last the input, "
            f"{loop.kills_before_assignment} before the assignment, "
            f"{loop.kills_mid_stream} after the process had finished a "
            f"batch) + {fp_n} "
            "failpoints: " + ", ".join(f"{n} {k}" for n, k in
                                       loop.hits.items()))
        if aa:
            say(f"  restart: 'partitions assigned' median "
                f"{statistics.median(aa):.2f}s, max {max(aa):.2f}s after "
                f"the process started, over {len(aa)} runs (static "
                "membership)")
        for tp, (ids, dups) in out_fig.items():
            say(f"  {tp}: {ids} CloudEvents, {dups} byte-equal duplicates "
                "in the crash run")
        say(f"  DLQ: {len(invalid_by_src)} records, {dlq_dups} byte-equal "
            "duplicates in the crash run")
        say(f"  hashes: {len(h_crash)} customers, {n_fields} fields equal "
            f"({', '.join(COMPARED_FIELDS)}, a:*, w:*); other keys under "
            f"{crash.prefix}: {len(other)}")
        say("  customers with each field: " + ", ".join(
            f"{f} {n}" for f, n in have.items() if n))
        if date_changed:
            say(f"  the UTC date changed during the test ({date0} -> "
                f"{date1}): CloudEvent values compared without "
                "data.recency_days and the lifecycle's day counts")
        say(f"  durations: generate {t_gen:.1f}s, produce {t_prod:.1f}s, "
            f"clean run {t_clean:.1f}s, crash loop {t_loop:.1f}s "
            f"({len(loop.runs)} runs), final run {t_final:.1f}s, "
            f"comparisons {t_cmp:.1f}s, total {total.s():.1f}s")
    say(f"test_crash_loop: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
