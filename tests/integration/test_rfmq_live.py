"""Quantile RFM in live mode: the histograms, the population snapshots and
the "rfm" CloudEvents (docs/models.md "Quantile RFM", docs/contracts.md
sections 2 and 4).

rfmq.mode = live with rfmq.snapshot_ms = 86400000 (the start-up snapshot is
the only one a run takes), clock = event, rfm.reference = fixed, one input
partition, batches of 64 events: cpmodel gives the exact state, the exact
histogram hash and the exact CloudEvents, given the snapshot in force
(cpmodel.RfmqLive.from_histogram of the population custpulse started
with; the thresholds are computed here from the buckets, not read back).

1. Phase 1: a seeded stream for 200 customers (1-20 orders over 2024, three
   with 70-140 orders for the F buckets past 64, zero and cent amounts for
   the M buckets -1 and below 8, partial and full refunds, cancellations of
   one or every order - the latter leave the population -, refunds of
   unknown orders, customers who never order). custpulse starts on an
   empty population: no snapshot (no <prefix>rqs) and nobody scored (no
   "rfm" event, no sq). <prefix>rq equals the histogram of cpmodel's
   buckets, every customer's h is exact (absent when not in the
   population) and so is the rest of the state; the output topic holds
   exactly cpmodel's CloudEvents.
2. Phase 2: new customers, new, late (back-dated) and re-sent orders,
   refunds and cancellations for 110 of the others (some leave the
   population, some come back). The restart takes snapshot 1 of the
   phase-1 histogram before consuming: <prefix>rqs holds exactly v = 1,
   t = the thresholds computed here, n = the phase-1 population, at = a
   Redis time within the run, and t:1, n:1, at:1 equal to them. Every
   "rfm" event is exact (scores against snapshot 1, "snapshot": 1, the
   seq among the other models'), the whole state (sq and h included) and
   rq are exact. inspect of a customer: models.rfm (mode live, snapshot 1,
   the segment now, the one emitted, buckets = h) and the rest of inspect
   as itest_util.check_inspect compares it.
3. Phase 3: a restart without events, same period. The phase-2
   histogram has other thresholds, but snapshot 1 is younger than half the
   period: it is adopted, <prefix>rqs is unchanged; no output, no state
   change.
4. Phase 4: a restart without events with rfmq.snapshot_ms = 1000:
   snapshot 1 is older than 500 ms, so the phase-2 thresholds become
   version 2 (t:1, n:1, at:1 kept beside t:2, n:2, at:2); the unchanged
   histogram keeps version 2 however many periodic snapshots the run
   takes. Still no output (a customer is re-scored at its next event),
   and inspect scores a customer against snapshot 2 while its sq stays
   what snapshot 1 gave.

The `rfmq_snapshots` counter of the "stopped" line (snapshots taken or
adopted) is 0, 1, 1 and 1 in the four runs.
"""
import collections
import copy
import datetime
import json
import os
import random
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
from cpcheck import stopped_line  # noqa: E402
from harness import Custpulse, Stack, config  # noqa: E402
from itest_util import (DLQ_TOPIC, ORDERS_TOPIC, SEGMENTS_TOPIC,  # noqa: E402
                        Timer, check, check_customer_states, check_eq,
                        check_inspect, check_output_records, checks_made,
                        customer_hashes, order_event, records_for, say)

SEED = 20261123
N1 = 200                       # phase-1 customers
N2_OLD = 110                   # of them with phase-2 events
N2_NEW = 40                    # new customers in phase 2
HEAVY = {7: 70, 77: 100, 177: 140}   # customer index -> orders (> 64)
OUTPUT_PARTITIONS = 3
REF = cpmodel.Fixed(recency_days=30, frequency=2, monetary="100.00")
PERIOD_MS = 86400000
T1 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
T2 = datetime.datetime(2025, 1, 1, tzinfo=datetime.timezone.utc)
RQ, RQS = "cp:rq", "cp:rqs"


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (t.microsecond // 1000)


def minor_amount(rnd):
    """Minor units: some 0 (M bucket -1), some cents, mostly a long tail."""
    roll = rnd.random()
    if roll < 0.03:
        return 0
    if roll < 0.10:
        return rnd.randint(1, 99)
    return min(int(rnd.paretovariate(1.2) * 1500) + rnd.randrange(100),
               2_000_000)


def written(rnd, minor):
    """An amount as sent: a decimal string, or a JSON integer when whole."""
    if minor % 100 == 0 and rnd.random() < 0.3:
        return minor // 100
    return cpmodel.money_str(minor)


def at_random(rnd, start, days):
    return start + datetime.timedelta(seconds=rnd.randrange(days * 86400),
                                      milliseconds=rnd.randrange(1000))


# ---------------------------------------------------------------------------
# The events
# ---------------------------------------------------------------------------

class Gen:
    """The seeded event stream of both phases; remembers each customer's
    orders and last order time for phase 2."""

    def __init__(self, seed=SEED):
        self.rnd = random.Random(seed)
        self.orders = {}     # cid -> [order ids placed]
        self.last = {}       # cid -> time of the customer's latest event
        self.sent = {}       # cid -> [events sent]
        self.n = 0

    def ev(self, kind, cid, t, oid, minor):
        self.n += 1
        e = order_event(f"{cid}-e{self.n}", kind, cid, iso(t), oid,
                        written(self.rnd, minor))
        self.sent.setdefault(cid, []).append(e)
        self.last[cid] = max(self.last.get(cid, t), t)
        return e

    def place(self, cid, t, minor=None):
        oid = f"{cid}-o{len(self.orders.setdefault(cid, []))}"
        self.orders[cid].append(oid)
        return self.ev("placed", cid, t, oid,
                       minor_amount(self.rnd) if minor is None else minor)

    def after(self, cid, hours=72):
        return self.last[cid] + datetime.timedelta(
            seconds=self.rnd.randrange(60, hours * 3600))

    def phase1(self):
        """Events of phase 1 in time order, and what was done (counts)."""
        rnd, evs, kinds = self.rnd, [], collections.Counter()
        for i in range(N1):
            cid = f"q-{i:03d}"
            if i % 25 == 3:      # never orders: one refund of an unknown order
                t = at_random(rnd, T1, 330)
                evs.append(self.ev("refunded", cid, t, f"{cid}-x", 500))
                kinds["no order"] += 1
                continue
            n = HEAVY.get(i) or min(1 + int(rnd.expovariate(0.4)), 20)
            start = at_random(rnd, T1, 320)
            span = 40 if n < 64 else 360 - (start - T1).days
            for t in sorted(at_random(rnd, start, span) for _ in range(n)):
                evs.append(self.place(cid, t))
            kinds["orders"] += n
            if i in HEAVY:
                continue
            roll = rnd.random()
            mine = self.orders[cid]
            if roll < 0.12:       # every order cancelled: leaves
                for oid in mine:
                    evs.append(self.ev("cancelled", cid, self.after(cid), oid,
                                       100))
                kinds["left"] += 1
            elif roll < 0.27:
                evs.append(self.ev("refunded", cid, self.after(cid),
                                   rnd.choice(mine), rnd.randint(1, 5000)))
                kinds["partial refund"] += 1
            elif roll < 0.33:     # every order refunded in full: m = 0
                for oid in mine:
                    evs.append(self.ev("refunded", cid, self.after(cid), oid,
                                       2_000_000))
                kinds["full refunds"] += 1
            elif roll < 0.41 and len(mine) > 1:
                evs.append(self.ev("cancelled", cid, self.after(cid),
                                   rnd.choice(mine), 100))
                kinds["one cancelled"] += 1
            elif roll < 0.46:
                evs.append(self.ev("refunded", cid, self.after(cid),
                                   f"{cid}-unknown", rnd.randint(1, 3000)))
                kinds["unknown refund"] += 1
        evs.sort(key=lambda e: cpmodel.parse_time_ms(e["occurred_at"]))
        return evs, kinds

    def phase2(self):
        """Events of phase 2 in arrival order (late orders carry a 2024
        time but arrive among the 2025 events), and what was done."""
        rnd, arrivals, kinds = self.rnd, [], collections.Counter()

        def add(e, arrival=None):
            t = cpmodel.parse_time_ms(e["occurred_at"])
            arrivals.append((arrival if arrival is not None else t,
                             len(arrivals), e))
        old = rnd.sample(sorted(self.last), N2_OLD)
        for cid in sorted(old):
            mine = self.orders.get(cid, [])
            roll = rnd.random()
            self.last[cid] = max(self.last[cid], at_random(rnd, T2, 20))
            if roll < 0.35 or not mine:
                for _ in range(rnd.randint(1, 3)):
                    add(self.place(cid, self.after(cid, 24 * 10)))
                kinds["new orders"] += 1
            elif roll < 0.50:     # back-dated: F and M move, R does not
                first = cpmodel.parse_time_ms(
                    next(e for e in self.sent[cid]
                         if e["type"] == "order.placed")["occurred_at"])
                t = datetime.datetime.fromtimestamp(
                    first / 1000, datetime.timezone.utc)
                e = self.place(cid, t + datetime.timedelta(hours=1))
                add(e, cpmodel.parse_time_ms(iso(at_random(rnd, T2, 60))))
                kinds["late order"] += 1
            elif roll < 0.65:
                add(self.ev("refunded", cid, self.after(cid),
                            rnd.choice(mine), rnd.randint(1, 20000)))
                kinds["refund"] += 1
            elif roll < 0.75:
                add(self.ev("cancelled", cid, self.after(cid),
                            rnd.choice(mine), 100))
                kinds["one cancelled"] += 1
            elif roll < 0.83:
                for oid in mine:
                    add(self.ev("cancelled", cid, self.after(cid), oid, 100))
                kinds["all cancelled"] += 1
            elif roll < 0.91:
                add(self.ev("refunded", cid, self.after(cid),
                            f"{cid}-unknown2", rnd.randint(1, 3000)))
                kinds["unknown refund"] += 1
            else:                 # the customer's last event again
                e = dict(self.sent[cid][-1])
                add(e, cpmodel.parse_time_ms(iso(at_random(rnd, T2, 60))))
                add(self.place(cid, self.after(cid)))
                kinds["re-sent + order"] += 1
        for j in range(N2_NEW):
            cid = f"q-new-{j:02d}"
            self.last[cid] = at_random(rnd, T2, 50)
            for _ in range(rnd.randint(1, 4)):
                add(self.place(cid, self.after(cid, 24 * 5)))
            kinds["new customer"] += 1
        return [e for _, _, e in sorted(arrivals, key=lambda a: a[:2])], kinds


# ---------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------

def check_keys(r, customers, want):
    """Every key is a customer hash or one of want (no outbox left)."""
    keys = set(r.keys("*")) - set(r.keys("cp:due:*"))  # due index: a hint
    cust = {f"cp:c:{{{cid}}}" for cid in customers}
    check_eq(sorted(keys - cust), sorted(want), "keys besides the customers")


def check_histogram(r, customers, what):
    """<prefix>rq = the histogram of cpmodel's buckets (h)."""
    want = {k: str(v) for k, v in cpmodel.rfmq_histogram(customers).items()}
    got = r.hgetall(RQ)
    check_eq(got, want, f"{what}: {RQ}")
    n = sum(int(v) for k, v in got.items() if k.startswith("r:"))
    check_eq(n, sum(1 for c in customers.values() if c.hpos is not None),
             f"{what}: population of the R histogram")
    return n


def redis_ms(r):
    sec, usec = r.cmd("TIME")
    return int(sec) * 1000 + int(usec) // 1000


def run(st, cfg, what):
    """One --exit-at-end run: (seconds, its "stopped" line)."""
    cp = Custpulse(st, cfg, name=what)
    with Timer() as t:
        res = cp.run(["run", "--exit-at-end"], timeout=180)
    check_eq(res.returncode, 0, f"{what}: exit code\n{res.stderr[-3000:]}")
    return cp, t.s, stopped_line(cp)


def rfm_outputs(outputs):
    return [o for o in outputs if o["data"]["model"] == "rfm"]


def segment_under(snap, c):
    """The named segment customer c scores under live snapshot snap (live
    scores do not depend on the day)."""
    r, f, _ = snap.scores(c, today=None)
    return cpmodel.rfmq_segment(r, f)


def check_phase1_data(customers, outputs):
    """The phase-1 stream must exercise what the docstring says."""
    cs = customers.values()
    left = [c for c in cs if c.orders == 0 and c.first is not None]
    check(len(left) >= 10, f"phase 1: {len(left)} customers left the "
          "population (want >= 10)")
    check(any(c.orders == 0 and c.first is None for c in cs),
          "phase 1: no customer without an order")
    check(any(c.hpos and c.hpos[2] == -1 for c in cs),
          "phase 1: nobody in M bucket -1 (monetary 0)")
    check(sum(1 for c in cs if c.hpos and c.hpos[1] > 64) == len(HEAVY),
          "phase 1: F buckets past 64")
    check_eq(rfm_outputs(outputs), [], "phase 1 (model): rfm events")


def check_phase2_data(s1, s2, outputs2, customers):
    """Phase 2 must score many customers into many segments, take some out
    and move the thresholds."""
    rfm = rfm_outputs(outputs2)
    tos = collections.Counter(o["data"]["to"] for o in rfm)
    check(len(rfm) >= 100, f"phase 2: only {len(rfm)} rfm events")
    check(len([t for t in tos if t]) >= 8,
          f"phase 2: rfm events reach only {sorted(tos, key=str)}")
    check(any(o["data"]["from"] and o["data"]["to"] is None for o in rfm),
          "phase 2: nobody scored leaves the population")
    check(any(o["subject"].startswith("q-new-") for o in rfm),
          "phase 2: no new customer scored")
    check(s1.text() != s2.text(), "phase 2 does not move the thresholds")
    check(any(c.sq and segment_under(s2, c) != c.sq
              for c in customers.values()),
          "no customer whose segment snapshot 2 would change")
    return tos


def check_inspect_rfm(cp, cid, c, snap, hashes, full):
    """inspect cid: models.rfm against snapshot snap (and, when full, the
    rest as itest_util.check_inspect compares it)."""
    res = cp.run(["inspect", cid], timeout=30)
    check_eq(res.returncode, 0, f"inspect {cid!r}: exit ({res.stderr})")
    got = json.loads(res.stdout)
    models = got.get("models", {})
    now = cpmodel.parse_time_ms(models["evaluated_at"])
    want = c.inspect_models(now, snap)["rfm"]
    check_eq(models.get("rfm"), want, f"inspect {cid!r}: models.rfm")
    if full:
        check_inspect(got, c, hashes[cid]["v"])
    return models["rfm"]


# ---------------------------------------------------------------------------

def main():
    gen = Gen()
    evs1, kinds1 = gen.phase1()
    evs2, kinds2 = gen.phase2()
    produce1, recs1 = records_for(evs1)
    produce2, recs2 = records_for(evs2, first_offset=len(evs1))

    # The model, phase by phase: no snapshot in phase 1 (the population
    # was empty at start-up), snapshot 1 of the phase-1 histogram in
    # phase 2, snapshot 2 of the phase-2 histogram after phase 4.
    customers, out1 = cpmodel.replay(recs1, REF,
                                     rfmq=cpmodel.RfmqLive(version=0))
    check_phase1_data(customers, out1)
    cust1 = copy.deepcopy(customers)     # the state after phase 1
    hist1 = cpmodel.rfmq_histogram(customers)
    s1 = cpmodel.RfmqLive.from_histogram(hist1, 1)
    _, out2 = cpmodel.replay(recs2, REF, customers=customers, rfmq=s1)
    s2 = cpmodel.RfmqLive.from_histogram(cpmodel.rfmq_histogram(customers),
                                         2)
    tos = check_phase2_data(s1, s2, out2, customers)
    say(f"events: phase 1 {len(evs1)} for {N1} customers {dict(kinds1)}; "
        f"phase 2 {len(evs2)} {dict(kinds2)}")
    say(f"snapshot 1 (model): n {s1.n}, t {s1.text()}")
    say(f"snapshot 2 (model): n {s2.n}, t {s2.text()}")

    with Stack() as st:
        st.create_topic(ORDERS_TOPIC, partitions=1)
        cfg = config(st, clock="event", **REF.config(), **{
            "rfmq.mode": "live", "rfmq.snapshot_ms": PERIOD_MS,
            "batch.size": 64})
        r = st.redis()
        epoch_key = f"cp:ep:{ORDERS_TOPIC}:0"

        # -- 1. empty population at start-up: no snapshot, no score ------
        st.produce(ORDERS_TOPIC, produce1)
        cp, secs, stopped = run(st, cfg, "phase1")
        check_customer_states(customer_hashes(r), cust1)
        n1 = check_histogram(r, cust1, "phase 1")
        check_eq(n1, s1.n, "phase 1: population")
        check_keys(r, cust1, {RQ, epoch_key})
        rows = st.consume(SEGMENTS_TOPIC)
        check_output_records(rows, out1, OUTPUT_PARTITIONS)
        check_eq([r_ for r_ in rows
                  if json.loads(r_["value"])["data"]["model"] == "rfm"], [],
                 "phase 1: rfm records on the output topic")
        check_eq(stopped.get("rfmq_snapshots"), 0,
                 "phase 1: rfmq_snapshots counter")
        with_h = sum(1 for c in cust1.values() if c.hpos)
        say(f"phase 1: {len(evs1)} events in {secs:.1f}s; {len(cust1)} "
            f"hashes = cpmodel ({with_h} with h, {len(cust1) - with_h} "
            f"without); {RQ} = their histogram ({len(hist1)} buckets, "
            f"population {n1}); no {RQS}, no rfm event among {len(rows)} "
            "CloudEvents")

        # -- 2. snapshot 1 at start-up, events scored against it ---------
        st.produce(ORDERS_TOPIC, produce2)
        t_before = redis_ms(r)
        cp, secs, stopped = run(st, cfg, "phase2")
        t_after = redis_ms(r)
        rqs = r.hgetall(RQS)
        at = rqs.get("at", "")
        check(at.isdigit() and t_before <= int(at) <= t_after,
              f"phase 2: {RQS} at = {at!r} is not a Redis time within the "
              f"run [{t_before}, {t_after}]")
        snap1 = {"v": "1", "t": s1.text(), "n": str(s1.n), "at": at,
                 "t:1": s1.text(), "n:1": str(s1.n), "at:1": at}
        check_eq(rqs, snap1, f"phase 2: {RQS}")
        hashes = customer_hashes(r)
        check_customer_states(hashes, customers)
        check_histogram(r, customers, "phase 2")
        check_keys(r, customers, {RQ, RQS, epoch_key})
        outputs = out1 + out2
        rows = st.consume(SEGMENTS_TOPIC)
        check_output_records(rows, outputs, OUTPUT_PARTITIONS)
        snaps = {json.dumps(json.loads(r_["value"])["data"]["scores"]
                            ["snapshot"])
                 for r_ in rows
                 if json.loads(r_["value"])["data"]["model"] == "rfm"}
        check_eq(snaps, {"1"}, "phase 2: snapshot of the rfm records")
        check_eq(stopped.get("rfmq_snapshots"), 1,
                 "phase 2: rfmq_snapshots counter")
        say(f"phase 2: {len(evs2)} events in {secs:.1f}s; {RQS} = v 1, "
            f"n {s1.n}, t {s1.text()} (at {at}, within the run) and its "
            f"history; {len(rfm_outputs(out2))} rfm events exact, all "
            f"snapshot 1, to: {dict(sorted(tos.items(), key=str))}; "
            f"{len(customers)} hashes (sq, h) and {RQ} = cpmodel")
        shown = next(cid for cid, c in sorted(customers.items())
                     if c.sq and c.hpos and c.rfmq is s1
                     and segment_under(s2, c) != c.sq)
        got = check_inspect_rfm(cp, shown, customers[shown], s1, hashes,
                                full=True)
        say(f"inspect {shown}: models.rfm {json.dumps(got)}")

        # -- 3. restart, same period: snapshot 1 adopted -----------------
        before = {k: r.hgetall(k) for k in (RQ, RQS)}
        cp, secs, stopped = run(st, cfg, "phase3")
        check_eq({k: r.hgetall(k) for k in (RQ, RQS)}, before,
                 f"phase 3: {RQ} and {RQS}")
        check_customer_states(customer_hashes(r), customers)
        check_output_records(st.consume(SEGMENTS_TOPIC), outputs,
                             OUTPUT_PARTITIONS)
        check_eq(stopped.get("rfmq_snapshots"), 1,
                 "phase 3: rfmq_snapshots counter (adopted)")
        say(f"phase 3: restart without events in {secs:.1f}s: snapshot 1 "
            f"adopted (younger than {PERIOD_MS // 2} ms although the "
            f"histogram now gives {s2.text()}); {RQS} unchanged, no output")

        # -- 4. restart with a 1 s period: version 2 ----------------------
        while redis_ms(r) - int(at) <= 600:
            time.sleep(0.1)
        cfg4 = dict(cfg, **{"rfmq.snapshot_ms": 1000})
        t_before = redis_ms(r)
        cp, secs, stopped = run(st, cfg4, "phase4")
        t_after = redis_ms(r)
        rqs = r.hgetall(RQS)
        at2 = rqs.get("at", "")
        check(at2.isdigit() and t_before <= int(at2) <= t_after,
              f"phase 4: {RQS} at = {at2!r} is not a Redis time within the "
              f"run [{t_before}, {t_after}]")
        check_eq(rqs, dict(snap1, **{
            "v": "2", "t": s2.text(), "n": str(s2.n), "at": at2,
            "t:2": s2.text(), "n:2": str(s2.n), "at:2": at2}),
            f"phase 4: {RQS}")
        hashes = customer_hashes(r)
        check_customer_states(hashes, customers)
        check_histogram(r, customers, "phase 4")
        check_output_records(st.consume(SEGMENTS_TOPIC), outputs,
                             OUTPUT_PARTITIONS)
        check_eq(stopped.get("rfmq_snapshots"), 1,
                 "phase 4: rfmq_snapshots counter")
        got = check_inspect_rfm(cp, shown, customers[shown], s2, hashes,
                                full=False)
        check(got["segment"] != got["emitted"],
              f"inspect {shown}: segment = emitted under snapshot 2: {got}")
        say(f"phase 4: restart with rfmq.snapshot_ms = 1000 in {secs:.1f}s: "
            f"{RQS} v 2, n {s2.n}, t {s2.text()}, version 1 kept as "
            f"history; no output; inspect {shown}: models.rfm "
            f"{json.dumps(got)}")

        check_eq(st.consume(DLQ_TOPIC), [], "DLQ records")
        check_eq(st.committed(cfg["kafka.group.id"], ORDERS_TOPIC),
                 {0: len(evs1) + len(evs2)}, "committed offsets")
        r.close()
    say(f"test_rfmq_live: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
