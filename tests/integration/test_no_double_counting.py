"""Guarantee 3: nothing is counted twice, whatever is re-delivered.

A seeded random set of ~3,000 order events for 300 customers (placed,
partial and over-sized refunds, refunds and cancellations of unknown
orders, second cancellations, re-placed order ids, re-sent duplicates;
times increasing) in one partition, so cpmodel.replay() gives the exact
expected state and outputs.

(a) Replay with a new group id: after a full run, a second run with a NEW
    group id consumes everything again from offset 0; every customer hash
    must stay byte-identical (v, e, r included), no key may appear and no
    output record may be added.
(b) Restart mid-stream: events produced in 6 chunks while custpulse runs,
    which is stopped mid-chunk and started again - with SIGTERM (exit 0, no
    duplicate output at all) and, on a fresh stack, with kill -9 (the
    distinct CloudEvent ids are exactly the expected ones, any duplicate is
    byte-identical to its first copy). After a final --exit-at-end run the
    state equals the model and the committed offset is the end offset.
"""
import datetime
import json
import os
import random
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
import storecodec  # noqa: E402
from harness import Custpulse, Stack, config, wait_until  # noqa: E402
from itest_util import (DLQ_TOPIC, ORDERS_TOPIC, SEGMENTS_TOPIC,  # noqa: E402
                        Timer, all_hashes, check, check_customer_states,
                        check_eq, check_output_records, check_record_envelope,
                        checks_made, customer_hashes, digest_hashes, due_keys,
                        order_event, outputs_by_customer, records_for, say,
                        without_epochs)

SEED = 20240301
N_CUSTOMERS = 300
N_EVENTS = 3000
N_CHUNKS = 6
OUTPUT_PARTITIONS = 3
REF = cpmodel.Fixed(recency_days=30, frequency=2, monetary="100.00")
T0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)

# Progress of custpulse: the highest input offset applied to any customer.
# ---------------------------------------------------------------------------
# The event set
# ---------------------------------------------------------------------------

def amount(rnd):
    """Minor units and how they are written: string, JSON number (shortest
    repr of cents/100) or integer."""
    kind = rnd.random()
    if kind < 0.15:
        units = rnd.randint(1, 150)
        return units * 100, units
    c = rnd.randint(1, 15000)
    if kind < 0.35:
        return c, c / 100
    return c, cpmodel.money_str(c)


def generate(seed=SEED, n_events=N_EVENTS, n_customers=N_CUSTOMERS):
    """The event list (times strictly increasing, except re-sent duplicates
    which repeat their original) and counts of each kind."""
    rnd = random.Random(seed)
    customers = [f"n-{i:03d}" for i in range(n_customers)]
    orders = {c: [] for c in customers}      # order ids placed, per customer
    history = {c: [] for c in customers}     # events sent, per customer
    t = T0
    evs, kinds = [], {}
    n_order = 0
    for i in range(n_events):
        t += datetime.timedelta(minutes=rnd.randint(1, 190),
                                milliseconds=rnd.randint(0, 999))
        when = t.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (
            t.microsecond // 1000)
        cust = rnd.choice(customers)
        known = orders[cust]
        p = rnd.random()
        eid = f"g-{i}"
        if p < 0.06 and history[cust]:
            kind, ev = "duplicate", rnd.choice(history[cust][-3:])
        elif p < 0.10 and known:
            kind = "placed again"
            ev = order_event(eid, "placed", cust, when, rnd.choice(known),
                             amount(rnd)[1])
        elif p < 0.25 and known:
            kind = "refund"
            # partial, or often larger than the order (clamped to its net)
            minor = rnd.choice([rnd.randint(1, 3000),
                                rnd.randint(5000, 20000)])
            ev = order_event(eid, "refunded", cust, when, rnd.choice(known),
                             cpmodel.money_str(minor))
        elif p < 0.30:
            kind = "refund unknown"
            ev = order_event(eid, "refunded", cust, when, f"u-{i}",
                             amount(rnd)[1])
        elif p < 0.40 and known:
            kind = "cancel"
            ev = order_event(eid, "cancelled", cust, when, rnd.choice(known),
                             amount(rnd)[1])
        elif p < 0.43:
            kind = "cancel unknown"
            ev = order_event(eid, "cancelled", cust, when, f"u-{i}",
                             amount(rnd)[1])
        else:
            kind = "placed"
            n_order += 1
            oid = f"o-{n_order}"
            known.append(oid)
            ev = order_event(eid, "placed", cust, when, oid, amount(rnd)[1])
        history[cust].append(ev)
        kinds[kind] = kinds.get(kind, 0) + 1
        evs.append(ev)
    return evs, kinds


def model(evs):
    produce, recs = records_for(evs)
    customers, outputs = cpmodel.replay(recs, REF)
    return produce, customers, outputs


# ---------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------

def base_config(st, **extra):
    return config(st, clock="event", **REF.config(), **extra)


def check_final(st, cfg, customers, n_events):
    r = st.redis()
    got = customer_hashes(r)
    check_customer_states(got, customers)
    check_eq(r.keys("cp:ep:*"), [f"cp:ep:{ORDERS_TOPIC}:0"],
             "epoch keys (one per orders partition)")
    check_eq(r.dbsize(), len(customers) + 1 + len(due_keys(r)),
             "DBSIZE (no key besides customers, the epoch and the due "
             "index)")
    check_eq(set(due_keys(r)) <= {"cp:due:0"}, True,
             "due index (one orders partition)")
    check_eq(r.hgetall(f"cp:ep:{ORDERS_TOPIC}:0").get("o"), str(n_events),
             "partition position o (the offset after the last event)")
    r.close()
    check_eq(st.consume(DLQ_TOPIC), [], "DLQ records")
    check_eq(st.committed(cfg["kafka.group.id"], ORDERS_TOPIC),
             {0: n_events}, "committed offsets = end offset")


def max_applied_offset(r):
    """The highest watermark of the orders partition over all customers,
    or -1."""
    f = storecodec.w_field(ORDERS_TOPIC, 0)
    return max((int(h[f]) for h in customer_hashes(r).values() if f in h),
               default=-1)


# ---------------------------------------------------------------------------
# (a) a replay with a new group id changes nothing
# ---------------------------------------------------------------------------

def scenario_new_group(evs, produce, customers, outputs):
    say("(a) full run, then a replay with a new group id")
    with Stack() as st:
        st.create_topic(ORDERS_TOPIC, partitions=1)
        st.produce(ORDERS_TOPIC, produce)
        cfg = base_config(st)
        with Timer() as t:
            res = Custpulse(st, cfg).run(["run", "--exit-at-end"], timeout=180)
        check_eq(res.returncode, 0, "first run exit code")
        check_final(st, cfg, customers, len(evs))
        rows = st.consume(SEGMENTS_TOPIC)
        check_output_records(rows, outputs, OUTPUT_PARTITIONS)
        say(f"  first run: {len(evs)} events in {t.s:.1f}s; state of "
            f"{len(customers)} customers and {len(rows)} CloudEvents equal "
            "cpmodel")

        r = st.redis()
        before = all_hashes(r)
        cfg2 = base_config(st)   # config() draws a new group id
        check(cfg2["kafka.group.id"] != cfg["kafka.group.id"], "new group id")
        with Timer() as t:
            res = Custpulse(st, cfg2).run(["run", "--exit-at-end"],
                                          timeout=180)
        check_eq(res.returncode, 0, "replay run exit code")
        # The new owner takes the partition's fencing epoch anew (e); its
        # position (o, f) and every customer must stay as they were.
        before = without_epochs(before)
        after = without_epochs(all_hashes(r))
        check_eq(sorted(after), sorted(before), "keys after the replay")
        changed = [k for k in before if before[k] != after[k]]
        check(not changed, lambda: f"{len(changed)} hashes changed by the "
              f"replay, e.g. {changed[0]!r}: {before[changed[0]]} -> "
              f"{after[changed[0]]}")
        check_eq(digest_hashes(after), digest_hashes(before), "digest")
        rows2 = st.consume(SEGMENTS_TOPIC)
        check_eq(len(rows2), len(rows), "output records after the replay")
        check_eq(st.committed(cfg2["kafka.group.id"], ORDERS_TOPIC),
                 {0: len(evs)}, "committed offsets of the new group")
        r.close()
        say(f"  replay with group {cfg2['kafka.group.id']}: exit 0 in "
            f"{t.s:.1f}s; all {len(before)} hashes byte-identical (v, e, r "
            f"included), no key added, still {len(rows2)} output records")


# ---------------------------------------------------------------------------
# (b) restarts mid-stream
# ---------------------------------------------------------------------------

def scenario_restarts(mode, evs, produce, customers, outputs):
    """mode: "sigterm" or "kill9"."""
    sig = signal.SIGTERM if mode == "sigterm" else signal.SIGKILL
    say(f"(b) restart mid-stream with {sig.name}")
    size = -(-len(produce) // N_CHUNKS)
    chunks = [produce[i:i + size] for i in range(0, len(produce), size)]
    with Stack() as st:
        st.create_topic(ORDERS_TOPIC, partitions=1)
        # Small batches: many batch boundaries to be stopped between. A
        # short session lets a restart after kill -9 take over the
        # partition without waiting 45 s for the dead member to expire.
        cfg = base_config(st, **{"batch.size": 10,
                                 "kafka.session.timeout.ms": 6000,
                                 "kafka.heartbeat.interval.ms": 1000})
        cp = Custpulse(st, cfg)
        r = st.redis()
        stops = []
        produced = 0

        def wait_applied(offset, what):
            return wait_until(lambda: max_applied_offset(r) >= offset, 90,
                              what, interval=0.01)

        cp.start(["run"])
        for i, chunk in enumerate(chunks):
            st.produce(ORDERS_TOPIC, chunk)
            start, produced = produced, produced + len(chunk)
            if i % 2 == 0:
                continue  # the next chunk follows at once
            # Stop it in the middle of chunks 1, 3 and 5; the final
            # --exit-at-end run does the rest of chunk 5.
            wait_applied(start + len(chunk) // 3, f"progress into chunk {i}")
            at = max_applied_offset(r)
            rc = cp.stop(sig) if sig == signal.SIGTERM else cp.kill9()
            stops.append((i, at, rc))
            check_eq(rc, 0 if sig == signal.SIGTERM else -signal.SIGKILL,
                     f"exit status after {sig.name} in chunk {i}")
            if i != len(chunks) - 1:
                cp.start(["run"])
        check(max_applied_offset(r) < produced - 1,
              "the last stop must leave events for the final run")
        with Timer() as t:
            res = cp.run(["run", "--exit-at-end"], timeout=180)
        check_eq(res.returncode, 0, "final --exit-at-end run exit code")
        say(f"  {len(chunks)} chunks of {size}; stopped at applied offsets "
            + ", ".join(f"{at} (chunk {i}, status {rc})"
                        for i, at, rc in stops)
            + f"; final run {t.s:.1f}s")

        check_final(st, cfg, customers, len(evs))
        rows = st.consume(SEGMENTS_TOPIC)
        if mode == "sigterm":
            check_output_records(rows, outputs, OUTPUT_PARTITIONS)
            say(f"  state equals cpmodel; exactly the {len(outputs)} expected "
                "CloudEvents, no duplicate")
        else:
            dups = check_outputs_at_least_once(rows, outputs)
            say(f"  state equals cpmodel; {len(rows)} output records for "
                f"{len(outputs)} expected CloudEvents: kill -9 produced "
                f"{dups} duplicate(s), each byte-identical to its first copy")
        r.close()


def check_outputs_at_least_once(rows, expected):
    """Distinct ids = expected ids; first copies, per customer in order,
    equal the expected events; every duplicate has the same key, value and
    headers as its first copy. Returns the number of duplicates."""
    want = {}
    for ev in expected:
        want.setdefault(ev["subject"], []).append(ev)
    first = {}
    dups = 0
    for cid, recs in outputs_by_customer(rows).items():
        firsts = []
        for rec in recs:
            check_record_envelope(rec, cid, OUTPUT_PARTITIONS)
            ce = json.loads(rec["value"])
            seen = first.get(ce["id"])
            if seen is None:
                first[ce["id"]] = rec
                firsts.append(ce)
                continue
            dups += 1
            check_eq((rec["key"], rec["value"], rec["headers"]),
                     (seen["key"], seen["value"], seen["headers"]),
                     f"duplicate of CloudEvent {ce['id']}")
        check_eq(firsts, want.get(cid), f"first copies of {cid!r}'s outputs")
    check_eq(sorted(first), sorted(ev["id"] for ev in expected),
             "distinct CloudEvent ids")
    return dups


def main():
    evs, kinds = generate()
    produce, customers, outputs = model(evs)
    counted = sum(c.orders for c in customers.values())
    say(f"{len(evs)} events for {len(customers)} customers (seed {SEED}): "
        + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
        + f"; model: {counted} counted orders, {len(outputs)} CloudEvents "
        f"(all models), {sum(c.segment is None for c in customers.values())}"
        " customers without segment")
    check(kinds.get("duplicate", 0) > 50 and kinds.get("cancel", 0) > 100,
          "the generator must produce duplicates and cancellations")
    moves = {}
    for o in outputs:
        d = o["data"]
        moves.setdefault(d["model"], set()).add(d["to"])
    check(None in moves.get("rfm8", ()), "the model must see a segment lost")
    # Orders alone move the lifecycle through every stage but won_back (the
    # stream spans ~200 days; no customer lapses 180 days) and the value
    # tier between none, low_value and churn_risk.
    check_eq(moves.get("lifecycle"),
             {"new", "active", "loyal", "prospect", "at_risk"},
             "model: lifecycle stages reached")
    check_eq(moves.get("value"), {"low_value", "churn_risk", None},
             "model: value tiers reached")
    say("  per model: " + ", ".join(
        f"{m} {sum(o['data']['model'] == m for o in outputs)}"
        for m in sorted(moves)))
    scenario_new_group(evs, produce, customers, outputs)
    scenario_restarts("sigterm", evs, produce, customers, outputs)
    scenario_restarts("kill9", evs, produce, customers, outputs)
    say(f"test_no_double_counting: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
