"""A replay of history with clock = event gives the churn warnings of
living through it (issue 6; docs/churn.md "Time-driven evaluation").

The CDNOW sample (tests/data/cdnow/CDNOW_sample.txt: 2,357 customers,
6,919 purchases, 1997-01 to 1998-06; tests/data/cdnow_events.py) goes into
a one-partition customer.orders in date order; custpulse runs once with
--exit-at-end, clock = event, the due-time sweep on (due.sweep_ms = 100,
batch.size = 200, so sweeps and event batches interleave), churn warnings
on, rfm.reference = fixed and no BTYD parameters (p_alive_low off; the
CDNOW customers are orders only: overdue and value_drop are the rules
that can fire).

The expectation is recomputed in the test by cpmodel, independently of
scoring/due.c and of any sweep timing: each customer's time-caused
evaluations happen at the first UTC midnight (or value_drop instant) at
which evaluating it emits something, before any later event of it, and
the final sweep runs everything due by the last purchase's time. Checked:
the segment-change and churn topics hold exactly cpmodel's CloudEvents
(ids, times, causes, figures); the number of customers warned per month
(a `warn` or `escalate` with its time in that month) is printed and equal;
every customer hash equals cpmodel's; the due index holds every customer
at its dd.
"""
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
from harness import SOURCE_DIR, Custpulse, Stack, config, topic_name  # noqa
from itest_util import (Timer, check, check_customer_states,  # noqa: E402
                        check_due_index, check_eq, checks_made,
                        customer_hashes, outputs_by_customer, say)

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "data"))
import cdnow_events  # noqa: E402

SAMPLE = os.path.join(SOURCE_DIR, "tests", "data", "cdnow",
                      "CDNOW_sample.txt")
ORDERS = topic_name("customer.orders")
SEGMENTS = topic_name("customer.segment-changes")
CHURN = topic_name("customer.churn-warnings")
REF = cpmodel.Fixed(recency_days=90, frequency=2, monetary="100.00")


def events():
    """The sample's purchases as order events, in date order (stable)."""
    evs = []
    for n, cust, date, value in cdnow_events.purchases(SAMPLE):
        amount, _ = cdnow_events.normalise_amount(value)
        evs.append(cdnow_events.event(n, cust, date, amount))
    evs.sort(key=lambda e: e["occurred_at"])
    return evs


def warned_per_month(outputs):
    """{YYYY-MM: customers with a warn or escalate in that month}."""
    by = collections.defaultdict(set)
    for o in outputs:
        if o["type"] == "com.custpulse.churn.warning":
            by[o["time"][:7]].add(o["subject"])
    return {m: len(s) for m, s in sorted(by.items())}


def topic_docs(rows):
    out = []
    for cid, recs in outputs_by_customer(rows).items():
        out += [json.loads(r["value"]) for r in recs]
    return out


def main():
    evs = events()
    with Stack() as st:
        st.create_topic(ORDERS, partitions=1)
        cfg = config(st, **dict(REF.config(), **{
            "clock": "event", "due.sweep_ms": "100", "batch.size": "200",
            "topic.orders": ORDERS, "topic.browsing": "",
            "topic.support": "", "topic.profile": "", "topic.churn": CHURN}))
        st.produce(ORDERS, [{"key": e["customer_id"], "value": e,
                             "partition": 0} for e in evs])
        with Timer() as t:
            res = Custpulse(st, cfg).run(["run", "--exit-at-end"],
                                         timeout=300)
        check_eq(res.returncode, 0, f"exit code ({res.stderr[-2000:]})")
        stopped = [json.loads(ln) for ln in res.stderr.splitlines()
                   if '"msg":"stopped"' in ln][-1]
        say(f"custpulse: {len(evs)} purchases in {t.s:.1f} s; "
            f"sweeps {stopped['sweeps']}, sweep customers "
            f"{stopped['sweep_customers']}, due evaluations "
            f"{stopped['due_evaluations']}, outputs {stopped['outputs']}")

        with Timer() as t:
            recs = [{"value": e, "topic": ORDERS, "partition": 0,
                     "offset": k} for k, e in enumerate(evs)]
            customers, want = cpmodel.replay(recs, REF, churn=True,
                                             timed=True)
            final = max(cpmodel.parse_time_ms(e["occurred_at"])
                        for e in evs)
            want += cpmodel.sweep(customers, final, REF, churn=True)
        say(f"cpmodel: {len(customers)} customers, {len(want)} outputs in "
            f"{t.s:.1f} s")

        got = topic_docs(st.consume(SEGMENTS)) + topic_docs(
            st.consume(CHURN))
        got_by, want_by = (collections.defaultdict(list),
                           collections.defaultdict(list))
        for o in got:
            got_by[o["subject"]].append(o)
        for o in want:
            want_by[o["subject"]].append(o)
        for by in (got_by, want_by):
            for v in by.values():
                v.sort(key=lambda o: o["data"]["seq"])
        check_eq(sorted(got_by), sorted(want_by), "customers with outputs")
        bad = [c for c in want_by if got_by[c] != want_by[c]]
        check(not bad, lambda: f"{len(bad)} customers' outputs differ, "
              f"e.g. {bad[0]}:\n  got  {got_by[bad[0]]}\n  want "
              f"{want_by[bad[0]]}")
        timed = sum(1 for o in want if o["data"]["cause"].get("kind"))
        say(f"topics: {len(got)} CloudEvents equal cpmodel's "
            f"({timed} time-caused)")

        g, w = warned_per_month(got), warned_per_month(want)
        say("customers warned per month (custpulse / recomputed):")
        for m in sorted(set(g) | set(w)):
            say(f"  {m}: {g.get(m, 0):5d} / {w.get(m, 0):5d}")
        check_eq(g, w, "customers warned per month")
        check(sum(g.values()) > 0, "some customers were warned")

        r = st.redis()
        hashes = customer_hashes(r)
        check_customer_states(hashes, customers)
        check_due_index(r, hashes, 1)
        r.close()
    say(f"test_cdnow_warnings: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
