"""Exact state: a hand-made event list through custpulse, compared field by
field with cpmodel (docs/contracts.md sections 2-4 and 6).

One input partition, rfm.reference = fixed (30 days, 2 orders, 100.00),
clock = event, --exit-at-end. The events cover every order rule and
de-duplication case of the contract; the test then checks each customer's
hash, the exact CloudEvents on customer.segment-changes, the empty DLQ, the
committed offsets and `custpulse inspect`.
"""
import datetime
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
from harness import SOURCE_DIR, Custpulse, Stack, config  # noqa: E402
from itest_util import (DLQ_TOPIC, ORDERS_TOPIC, SEGMENTS_TOPIC,  # noqa: E402
                        Timer, check, check_customer_states,
                        check_due_index, check_eq, check_output_records,
                        checks_made, customer_hashes, due_keys, order_event,
                        records_for, say)
from itest_util import check_inspect as check_inspect_output  # noqa: E402

REF = cpmodel.Fixed(recency_days=30, frequency=2, monetary="100.00")
OUTPUT_PARTITIONS = 3  # topic.partitions default

ALICE, BOB, DAVE = "c-alice", "c-bob", "c-dave"
KE = "客户-7"        # non-ASCII UTF-8 id
BRACE = "c-{x}-9"    # braces inside the Redis hash tag
D0 = datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc)


def at(day, hh, mm=0, ss=0, frac="", tz="Z"):
    """RFC 3339 time `day` days after 2024-03-01, written in zone tz."""
    t = D0 + datetime.timedelta(days=day, hours=hh, minutes=mm, seconds=ss)
    if tz != "Z":
        sign = 1 if tz[0] == "+" else -1
        t += sign * datetime.timedelta(hours=int(tz[1:3]),
                                       minutes=int(tz[4:6]))
    return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + tz


def events():
    """The event list, times strictly increasing (as instants)."""
    E = order_event
    return [
        # placed: each customer's first order -> general_develop
        E("e01", "placed", ALICE, at(0, 10), "a-1", "50.00"),
        E("e02", "placed", BOB, at(0, 11), "b-1", "30.00"),
        E("e03", "placed", KE, at(0, 12), "k-1", 19.9),          # JSON number
        # second placed: F 2, M 110.00 -> important_value
        E("e04", "placed", ALICE, at(1, 9), "a-2", 60),          # JSON integer
        # partial refund: M 100.00 = the reference, still "high"
        E("e05", "refunded", ALICE, at(1, 10), "a-1", "10.00"),
        # cancel of bob's only order: o 0, m 0, segment -> null
        E("e06", "cancelled", BOB, at(2, 8), "b-1", "30.00"),
        # second cancel of the same order: ignored
        E("e07", "cancelled", BOB, at(2, 9), "b-1", "30.00"),
        # placed again with the cancelled order id: not counted again
        E("e08", "placed", BOB, at(3, 8), "b-1", "30.00"),
        # refund larger than the order: clamped to a-2's net 60.00
        E("e09", "refunded", ALICE, at(3, 9), "a-2", "100.00"),
        # duplicate event_id of e05 (same content): ignored
        E("e05", "refunded", ALICE, at(1, 10), "a-1", "10.00"),
        E("e10", "placed", KE, at(4, 7), "k-2", 120),            # integer
        # refund of an unknown order: monetary adjustment
        E("e11", "refunded", KE, at(4, 8), "k-99", "15.00"),
        # +02:00 offset: 2024-03-06T01:30+02:00 is 2024-03-05T23:30Z (day 4)
        E("e12", "placed", BRACE, at(4, 23, 30, tz="+02:00"), "x-1", "250.00"),
        # order.placed of a counted order id with a new event id: ignored
        E("e13", "placed", BRACE, at(5, 6), "x-1", "999.00"),
        # fraction of a second, truncated to the millisecond
        E("e14", "placed", DAVE, at(5, 10, 0, 0, ".123999"), "d-1", "80.00"),
        # cancel of an unknown order: monetary adjustment 80.00 -> 60.00
        E("e15", "cancelled", DAVE, at(6, 10), "d-404", "20.00"),
        # refund of an unknown order larger than m: floor at 0
        E("e16", "refunded", DAVE, at(7, 10), "d-405", "70.00"),
        # refund on a customer with m = 0 and no counted order: stays 0
        E("e17", "refunded", BOB, at(8, 10), "b-404", "5.00"),
        # cancel of an unknown order for bob: no effect below 0
        E("e18", "cancelled", BOB, at(9, 10), "b-405", "1.00"),
        # R = 30 days exactly: still "better"
        E("e19", "refunded", DAVE, at(35, 23, 59, 59), "d-1", "0"),
        # R = 31 days: "worse" -> general_retain
        E("e20", "refunded", DAVE, at(36, 0, 0, 1), "d-1", "0.01"),
        # 40+ days gap: R worse for 客户-7 -> important_keep
        E("e21", "refunded", KE, at(46, 9), "k-2", "0.50"),
        E("e22", "placed", DAVE, at(46, 10), "d-2", "200.00"),
        # alice 46 days after her last order: general_keep
        E("e23", "refunded", ALICE, at(47, 9), "a-1", "1.00"),
        # cancel of the brace customer's only order: segment -> null
        E("e24", "cancelled", BRACE, at(47, 10), "x-1", "250.00"),
        # cancel of one of two counted orders: o 2 -> 1, m drops by its net
        # (200.00 -> 0.00); l stays on the cancelled order's day
        E("e25", "cancelled", DAVE, at(47, 11), "d-2", "200.00"),
    ]


def check_times_increase(evs):
    """Strictly increasing, apart from a re-sent duplicate (which repeats its
    original's time and so never moves the event clock)."""
    seen, times = set(), []
    for e in evs:
        if e["event_id"] not in seen:
            seen.add(e["event_id"])
            times.append(cpmodel.parse_time_ms(e["occurred_at"]))
    check(all(a < b for a, b in zip(times, times[1:])),
          "the event list must be in time order")


def check_model_sanity(customers, outputs):
    """The hand-made list must exercise what it claims (a broken list would
    make the test pass on nothing)."""
    c = customers
    check_eq((c[BOB].orders, c[BOB].monetary, c[BOB].segment), (0, 0, None),
             "model: bob after cancel/duplicates")
    check_eq((c[ALICE].orders, c[ALICE].monetary, c[ALICE].segment),
             (2, 3900, "general_keep"), "model: alice")
    check_eq((c[DAVE].orders, c[DAVE].monetary, c[DAVE].segment),
             (1, 0, "general_develop"), "model: dave")
    check_eq((c[BRACE].orders, c[BRACE].segment), (0, None), "model: brace")
    check_eq(c[KE].monetary, 12440, "model: 客户-7 monetary")
    tos = [o["data"]["to"] for o in outputs if o["data"]["model"] == "rfm8"]
    check(None in tos and "general_retain" in tos and "important_keep" in tos,
          f"model: expected transitions missing: {tos}")
    # Every event now evaluates every model: an order stream moves the
    # lifecycle (new, active once the first order is 30 days old, prospect
    # when the only order is cancelled) and the value tier (low_value, none
    # again without a counted order); the quantile RFM ("rfm", fixed mode)
    # moves too and is compared exactly with the outputs below.
    moves = {(o["data"]["model"], o["data"]["from"], o["data"]["to"])
             for o in outputs if o["data"]["model"] in ("lifecycle", "value")}
    check_eq(moves, {("lifecycle", None, "new"),
                     ("lifecycle", "new", "active"),
                     ("lifecycle", "new", "prospect"),
                     ("value", None, "low_value"),
                     ("value", "low_value", None)},
             "model: lifecycle and value transitions")


def check_counters_documented(stderr):
    """The final "stopped" line carries exactly the counters of the table
    in docs/fault-tolerance.md, in its order."""
    stopped = [json.loads(line) for line in stderr.splitlines()
               if line.startswith("{") and '"msg":"stopped"' in line]
    check_eq(len(stopped), 1, "one 'stopped' line")
    got = [k for k in stopped[0] if k not in ("ts", "level", "msg",
                                              "exit_code")]
    with open(os.path.join(SOURCE_DIR, "docs", "fault-tolerance.md")) as f:
        text = f.read()
    table = text[text.index("| counter | counts |"):]
    table = table[:table.index("\n\n")]
    doc = re.findall(r"^\| `([a-z_]+)` \|", table, re.M)
    check_eq(got, doc, "counters of the 'stopped' line vs the table of "
             "docs/fault-tolerance.md")
    say(f"'stopped' line: {len(got)} counters, as documented")


def fnv1a64(data):
    h = 0xcbf29ce484222325
    for b in data:
        h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return f"{h:016x}"


def check_inspect(cp, cid, c, hashes):
    """inspect: the state fields, layout, events count, profile and the
    models section (evaluated at its own wall-clock evaluated_at) equal
    cpmodel's."""
    res = cp.run(["inspect", cid], timeout=30)
    check_eq(res.returncode, 0, f"inspect {cid!r} exit code ({res.stderr})")
    got = json.loads(res.stdout)
    check_inspect_output(got, c, hashes[cid]["v"])
    m = got["models"]
    say(f"  inspect {cid}: orders {got['orders']}, segment {got['segment']}, "
        f"seq {got['seq']}; at {m['evaluated_at']}: lifecycle "
        f"{m['lifecycle']['stage']} (emitted {m['lifecycle']['emitted']}), "
        f"value {m['value']['tier']} score {m['value']['score']:.6f}")


def main():
    evs = events()
    check_times_increase(evs)
    produce, model_recs = records_for(evs)
    customers, outputs = cpmodel.replay(model_recs, REF)
    check_model_sanity(customers, outputs)

    with Stack() as st:
        st.create_topic(ORDERS_TOPIC, partitions=1)
        st.produce(ORDERS_TOPIC, produce)
        cfg = config(st, clock="event", **REF.config())
        cp = Custpulse(st, cfg)
        with Timer() as t:
            res = cp.run(["run", "--exit-at-end"], timeout=120)
        check_eq(res.returncode, 0, "custpulse run exit code")
        say(f"custpulse run --exit-at-end: {len(evs)} events in {t.s:.2f}s")
        check_counters_documented(res.stderr)

        r = st.redis()
        hashes = customer_hashes(r)
        fields = check_customer_states(hashes, customers)
        say(f"state: {len(customers)} customers equal cpmodel on fields "
            f"{', '.join(sorted(fields, key=lambda f: (len(f), f)))}; "
            "v positive; only e, r besides; no outbox")
        for cid in sorted(customers):
            c = customers[cid]
            say(f"  {cid}: o={c.orders} m={cpmodel.money_str(c.monetary)} "
                f"s={c.segment} q={c.seq} v={hashes[cid]['v']}")
        # Besides customers: the orders partition's key - its fencing epoch
        # (e, taken at assignment from Redis' clock in milliseconds), the
        # offset after the last event applied (o) and that event's
        # fingerprint (f: "<timestamp ms>:<FNV-1a 64 of the value>").
        epkey = f"cp:ep:{ORDERS_TOPIC}:0"
        check_eq(r.keys("cp:ep:*"), [epkey], "epoch keys")
        ep = r.hgetall(epkey)
        check_eq(sorted(ep), ["e", "f", "o"], "partition key fields")
        epoch = int(ep["e"])
        if not 1_600_000_000_000 < epoch < 4_000_000_000_000:
            raise AssertionError(f"epoch {epoch} is not a time in ms")
        last = max(o for c in customers.values()
                   for o in c.watermarks.values())
        row = [x for x in st.consume(ORDERS_TOPIC) if x["offset"] == last][0]
        check_eq((int(ep["o"]), ep["f"]),
                 (last + 1, f"{row['timestamp']}:{fnv1a64(row['value'])}"),
                 "partition position o and fingerprint f")
        # One orders partition: one due index shard (dd, docs/churn.md).
        # (none when no customer has a due time: dd absent = never)
        check_due_index(r, hashes, 1)
        check(set(due_keys(r)) <= {"cp:due:0"}, "due index shards")
        check_eq(r.dbsize(), len(customers) + 1 + len(due_keys(r)),
                 "DBSIZE (customers + 1 epoch + the due shard; fixed mode: "
                 "no cp:pop)")
        check_eq(r.keys("cp:pop"), [], "cp:pop in fixed mode")
        say(f"DBSIZE = {len(customers)} customers + 1 epoch ({epoch})")

        rows = st.consume(SEGMENTS_TOPIC)
        check_output_records(rows, outputs, OUTPUT_PARTITIONS)
        say(f"output: {len(rows)} CloudEvents on {SEGMENTS_TOPIC} equal "
            "cpmodel's (per customer, in order), key = customer id, "
            "content-type header, murmur2 partition")
        for o in outputs:
            d = o["data"]
            if d["model"] == "rfm8":
                figs = (f"R {d['recency_days']}, F {d['frequency']}, "
                        f"M {d['monetary']}")
            else:
                figs = json.dumps(d["scores"], separators=(",", ":"))
            say(f"  {o['subject']} seq {d['seq']} {d['model']}: {d['from']} "
                f"-> {d['to']} ({figs}, cause {d['cause']['event_id']})")

        dlq = st.consume(DLQ_TOPIC)
        check_eq(len(dlq), 0, "DLQ records")
        committed = st.committed(cfg["kafka.group.id"], ORDERS_TOPIC)
        check_eq(committed, {0: len(evs)}, "committed offsets")
        say(f"DLQ empty; committed offsets {committed} = end offset")

        for cid in (ALICE, KE):
            check_inspect(cp, cid, customers[cid], hashes)
        res = cp.run(["inspect", "c-nobody"], timeout=30)
        check_eq(res.returncode, 1, "inspect of an unknown customer: exit")
        check_eq(res.stdout, "", "inspect of an unknown customer: stdout")
        say("inspect c-nobody: exit 1")
        r.close()
    say(f"test_exact_state: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
