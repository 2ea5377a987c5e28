"""Time-driven evaluation (issue 6; docs/churn.md "Time-driven
evaluation") on the harness's real Kafka and Redis: customers who go
silent get their warnings and segment changes from the due-time sweep, at
exactly their due instants, with cause kind "time".

clock = event, clock.lateness_ms = 2 days, due.sweep_ms = 50 and
batch.size = 4 (so sweep and event batches interleave many times in every
run), rfm.reference = fixed, topic.churn set, one partition per topic (one
due index shard), no BTYD parameters. Orders only:

  td-ann  orders on days 0, 30, 60, then silent;
  td-bob  one order on day 5, then silent;
  td-cat  orders on days 0, 10, 20, silent until an order on day 150 (a
          recovery by order), then silent again;
  td-dan  5000.00 on day 0 (overdue on day 91: more than 90 days, the
          fallback gap 45 x 2), 10.00 on days 100 (a recovery by order),
          110 and 120, then silent: value_drop (its spend rate over 30
          days falls below 0.3 x the 180-day one) comes first, at an
          instant inside a day, then overdue (gap 40: more than 80 days);
  td-kim  orders every 7 days from day 0 to day 400 (the clock keeper:
          "now" is the greatest event time seen).

Three phases, each a fresh process (a restart: with clock = event a new
process's clock starts from the events it reads): days 0-99, days
100-179, days 180-400. Phase 3 first runs with the failpoint
sweep_after_write:1 (SIGKILL right after the first sweep batch's writes,
before anything is produced: its outbox has no input offset to come back
with, so the write indexed the customer at the sweep's "now", the outbox
mark) and then again to the end. After each phase the process ends with
--exit-at-end, which sweeps up to its final clock (greatest event time
less the lateness) before exiting.

The expectation is cpmodel's, computed independently of scoring/due.c:
before each event the customer's time-caused evaluations due by
min(event time, now) run first, and the final sweep runs every customer
up to the final clock; the instant of a time-caused change is the first
UTC midnight (every one tried in turn), or the value_drop instant (closed
form, then the exact test millisecond by millisecond), at which
evaluating the customer emits something (cpmodel next_change). Checked:

  - every customer hash equals cpmodel's after each phase; dd is after the
    customer's last evaluation and not after cpmodel's next change; the
    due index holds every customer at its dd (the outbox marks are gone);
  - the segment-change and churn topics hold exactly cpmodel's
    CloudEvents (ids, times, causes, figures), each once after dropping
    the crash's re-deliveries (which must be byte-identical);
  - a hand-derived story of td-bob and td-cat, independent of cpmodel;
  - the crash left an outbox behind with the mark, and the next run
    produced it;
  - every record is valid against its schema.
"""
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
try:
    import jsonschema
except ImportError:  # an interpreter beside Debian's: use its package
    sys.path.append("/usr/lib/python3/dist-packages")
    import jsonschema  # noqa: E402  (Debian python3-jsonschema)
from harness import Custpulse, Stack, config, topic_name  # noqa: E402
from itest_util import (check, check_customer_states,  # noqa: E402
                        check_due_index, check_eq, checks_made,
                        customer_hashes, outputs_by_customer, say)

ORDERS = topic_name("customer.orders")
SEGMENTS = topic_name("customer.segment-changes")
CHURN = topic_name("customer.churn-warnings")
REF = cpmodel.Fixed(recency_days=90, frequency=2, monetary="100.00")
BASE = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
BASE_DAY = cpmodel.utc_day(int(BASE.timestamp() * 1000))
DAY_MS = 86400000
LATENESS_MS = 2 * DAY_MS
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMAS = os.path.join(HERE, "..", "..", "schemas")
ANN, BOB, CAT, DAN, KIM = "td-ann", "td-bob", "td-cat", "td-dan", "td-kim"


def at(day, hh=12):
    t = BASE + datetime.timedelta(days=day, hours=hh)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def midnight(day):
    """The CloudEvent time of a change due at the start of `day`."""
    return cpmodel.format_time_ms((BASE_DAY + day) * DAY_MS)


def order(cid, day, n, amount="100.00"):
    return {"event_id": f"{cid}-e{n}", "type": "order.placed",
            "customer_id": cid, "occurred_at": at(day),
            "order_id": f"{cid}-o{n}", "amount": amount, "currency": "USD"}


def all_orders():
    days = {ANN: [0, 30, 60], BOB: [5], CAT: [0, 10, 20, 150],
            DAN: [0, 100, 110, 120],
            KIM: list(range(0, 401, 7))}
    evs = [(d, cid, order(cid, d, i, "5000.00" if (cid, d) == (DAN, 0)
                          else "10.00" if cid == DAN else "100.00"))
           for cid, ds in days.items() for i, d in enumerate(ds)]
    evs.sort(key=lambda x: (x[0], x[1]))
    return [(d, e) for d, _, e in evs]


PHASES = [("days 0-99", 0, 100), ("days 100-179", 100, 180),
          ("days 180-400, crash after the first sweep write", 180, 401)]


def validators():
    out = {}
    for name in ("segment-change", "churn-warning"):
        with open(os.path.join(SCHEMAS, name + ".schema.json")) as f:
            schema = json.load(f)
        cls = jsonschema.validators.validator_for(schema)
        cls.check_schema(schema)
        out[name] = cls(schema, format_checker=cls.FORMAT_CHECKER)
    return out


def unique_rows(rows, what):
    """The records once each: a re-delivered record (same CloudEvent id)
    must be byte-identical to the first."""
    seen, out = {}, []
    for r in rows:
        doc = json.loads(r["value"])
        if doc["id"] in seen:
            check_eq(r["value"], seen[doc["id"]],
                     f"{what}: re-delivery of {doc['id']}")
            continue
        seen[doc["id"]] = r["value"]
        out.append(r)
    return out, len(rows) - len(out)


def check_topic(rows, expected, what, validator):
    rows, dups = unique_rows(rows, what)
    got = outputs_by_customer(rows)
    want = {}
    for e in expected:
        want.setdefault(e["subject"], []).append(e)
    check_eq(sorted(got), sorted(want), f"{what}: customers")
    for cid, recs in got.items():
        docs = [json.loads(r["value"]) for r in recs]
        check_eq(docs, want[cid], f"{what}: CloudEvents of {cid}")
        for d in docs:
            errs = [e.message for e in validator.iter_errors(d)]
            check(not errs, f"{what} {d['id']}: schema: {errs[:3]}")
    check_eq(len(rows), len(expected), f"{what}: records")
    return dups


def story(outputs, cid):
    """(kind, to, time, cause kind) of a customer's outputs."""
    out = []
    for o in outputs:
        if o["subject"] != cid:
            continue
        d = o["data"]
        kind = d.get("model") or d["action"]
        to = d.get("to") if "model" in d else d["level"]
        out.append((kind, to, o["time"], d["cause"].get("kind", "event")))
    return out


def check_dd(hashes, customers):
    for cid, h in hashes.items():
        c = customers[cid]
        nxt = cpmodel.next_change(c, c.eval_now, c.eval_now + 4000 * DAY_MS,
                                  REF, cpmodel.DEFAULT_RFMQ, True,
                                  exhaustive=True)
        if "dd" not in h:  # nothing more moves with time
            check(nxt is None, f"{cid}: no dd, but cpmodel changes at {nxt}")
            continue
        dd = int(h["dd"])
        check(dd > c.eval_now, f"{cid}: dd {dd} not after its last "
              f"evaluation {c.eval_now}")
        check(nxt is None or dd <= nxt,
              f"{cid}: dd {dd} after cpmodel's next change {nxt}")


def main():
    val = validators()
    evs = all_orders()
    with Stack() as st:
        st.create_topic(ORDERS, partitions=1)
        cfg = config(st, **dict(REF.config(), **{
            "clock": "event", "clock.lateness_ms": str(LATENESS_MS),
            "due.sweep_ms": "50", "batch.size": "4",
            # static membership: the run after the crash takes the dead
            # member's place at once (test_crash_loop)
            "kafka.group.instance.id": "td-1",
            "topic.orders": ORDERS, "topic.browsing": "",
            "topic.support": "", "topic.profile": "", "topic.churn": CHURN}))
        cp = Custpulse(st, cfg)
        r = st.redis()
        customers, outputs, offset = {}, [], 0
        for i, (name, lo, hi) in enumerate(PHASES, 1):
            events = [e for d, e in evs if lo <= d < hi]
            st.produce(ORDERS, [{"key": e["customer_id"], "value": e,
                                 "partition": 0} for e in events])
            recs = [{"value": e, "topic": ORDERS, "partition": 0,
                     "offset": offset + k} for k, e in enumerate(events)]
            offset += len(events)
            _, new = cpmodel.replay(recs, REF, customers=customers, clock=0,
                                    churn=True, timed=True, exhaustive=True)
            final = max(cpmodel.parse_time_ms(e["occurred_at"])
                        for e in events) - LATENESS_MS
            new += cpmodel.sweep(customers, final, REF, churn=True,
                                 exhaustive=True)
            outputs += new
            if i == 3:
                res = cp.run(["run", "--exit-at-end"], timeout=120,
                             env={"CUSTPULSE_FAILPOINT":
                                  "sweep_after_write:1"})
                check(res.returncode != 0, "phase 3: the failpoint crashed "
                      f"the run (exit {res.returncode})")
                left = sorted(k.decode() for k in r.cmd("KEYS", "cp:x:*"))
                check(left, "phase 3: the crash left an outbox behind")
                for k in left:
                    cid = k[len("cp:x:{"):-1]
                    score = r.cmd("ZSCORE", "cp:due:0", cid)
                    dd = r.cmd("HGET", "cp:c:{%s}" % cid, "dd")
                    # dd absent: nothing more is due (churned, no rule
                    # left); the mark indexes it all the same.
                    check(score is not None and
                          (dd is None or float(score) < int(dd)),
                          f"{cid}: outbox marked in the due index "
                          f"({score} < dd {dd})")
                say(f"phase 3: crashed after the first sweep write; "
                    f"outboxes left (marked): {left}")
            res = cp.run(["run", "--exit-at-end"], timeout=120)
            check_eq(res.returncode, 0,
                     f"phase {i}: exit code ({res.stderr[-2000:]})")
            stats = [ln for ln in cp.log_lines()
                     if ln.get("msg") == "stopped"][-1]
            hashes = customer_hashes(r)
            check_customer_states(hashes, customers)
            check_dd(hashes, customers)
            check_due_index(r, hashes, 1)
            check_eq(r.cmd("KEYS", "cp:x:*"), [], f"phase {i}: outboxes")
            timed = [o for o in new if o["data"]["cause"].get("kind")]
            say(f"phase {i} ({name}): {len(events)} orders, {len(new)} "
                f"outputs of which {len(timed)} time-caused; sweeps "
                f"{stats.get('sweeps')}, sweep customers "
                f"{stats.get('sweep_customers')}, due evaluations "
                f"{stats.get('due_evaluations')}, stale "
                f"{stats.get('due_stale')}")
            if i < 3:
                check(stats.get("due_evaluations", 0) > 0,
                      f"phase {i}: due evaluations ran")
            else:  # all ran before the crash; the marks are found stale
                check(stats.get("due_stale", 0) >= len(left),
                      f"phase 3: the marked outboxes were found")

        churn = [o for o in outputs
                 if o["type"].startswith("com.custpulse.churn.")]
        segs = [o for o in outputs if o not in churn]
        d1 = check_topic(st.consume(SEGMENTS), segs, "segment changes",
                         val["segment-change"])
        d2 = check_topic(st.consume(CHURN), churn, "churn warnings",
                         val["churn-warning"])
        say(f"topics: {len(segs)} segment changes and {len(churn)} churn "
            f"events equal cpmodel's; re-delivered after the crash: "
            f"{d1} + {d2} (identical)")

        # td-bob, by hand: one order on day 5 (noon). new until day 35,
        # at risk from day 95 (90 days), churned from day 185; recency
        # beyond 90 days from day 96; overdue (fallback gap 45 days, k = 2:
        # more than 90 days) from day 96: score 0.5, medium; the value
        # tier follows the stage (h = 0.5, lapsing: churn_risk).
        bob = story(outputs, BOB)
        for item in [
                ("lifecycle", "active", midnight(35), "time"),
                ("lifecycle", "at_risk", midnight(95), "time"),
                ("value", "churn_risk", midnight(95), "time"),
                ("rfm8", "important_retain", midnight(96), "time"),
                ("warn", "medium", midnight(96), "time"),
                ("lifecycle", "churned", midnight(185), "time")]:
            check(item in bob, f"td-bob: {item} in {bob}")
        # td-cat: orders days 0, 10, 20 (gap 10: overdue after 20 days
        # silent, the 14-day floor below) - warned on day 41; the order on
        # day 150 (not churned: 130 days) recovers it (by order).
        cat = story(outputs, CAT)
        for item in [("warn", "medium", midnight(41), "time"),
                     ("recovered", "medium", at(150).replace("Z", ".000Z"),
                      "event")]:
            check(item in cat, f"td-cat: {item} in {cat}")
        # td-dan: overdue on day 91, recovered by the order on day 100;
        # value_drop alone (0.3: low) at an instant that is not a midnight
        # (the ratio's decay), before overdue (day 201; 0.65 with
        # value_drop: escalate to medium).
        dan = [o for o in outputs if o["subject"] == DAN
               and o["type"].startswith("com.custpulse.churn.")]
        check_eq([(o["data"]["action"], o["data"]["level"],
                   [x["code"] for x in o["data"].get("reasons", [])],
                   o["data"]["cause"].get("kind", "event")) for o in dan],
                 [("warn", "medium", ["overdue"], "time"),
                  ("recovered", "medium", [], "event"),
                  ("warn", "low", ["value_drop"], "time"),
                  ("escalate", "medium", ["overdue", "value_drop"], "time")],
                 "td-dan's warnings")
        check_eq(dan[0]["time"], midnight(91), "td-dan's first warning")
        t2 = cpmodel.parse_time_ms(dan[2]["time"])
        check(t2 % DAY_MS != 0 and midnight(120) < dan[2]["time"]
              < midnight(201), f"td-dan's value_drop at {dan[2]['time']}")
        check_eq(dan[3]["time"], midnight(201), "td-dan's escalation")
        for cid in (ANN, BOB, CAT, DAN):
            say(f"  {cid}: " + "; ".join(
                f"{k} {t} @ {tm} ({c})" for k, t, tm, c in
                story(outputs, cid)))
        r.close()
    say(f"test_time_driven: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
