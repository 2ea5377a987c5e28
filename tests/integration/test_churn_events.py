"""Event-driven churn warnings (docs/churn.md "Consumer integration";
issue 6, step A: no sweep yet) on the harness's real Kafka and Redis.

clock = event, rfm.reference = fixed, topic.churn set (harness.config()
turns it off for the other tests), one partition per input topic, no BTYD
parameters (p_alive_low off). Events themselves make the warnings:

  ch-ann  orders on days 0 and 30 (a spend norm); a complaint on day 31
          (service_risk, score 0.4: warn low); a complaint on day 100 while
          overdue (70 days > 2 x gap 30: overdue + service_risk = 0.7:
          escalate to high); an order on day 101 (overdue gone, the
          complaints still above 0.5: low, no recovery - an order while a
          reason remains does not end the episode); a CSAT 5 on day 200
          (complaints below 0.25, nothing active: recovered by order, the
          day-101 order being after the episode's start); a complaint on
          day 201 (re-armed: warn low again);
  ch-bob  no orders; a complaint on day 10 (warn low); a CSAT 4 on day 80
          (complaints 2^(-70/30) < 0.25: recovered by signals); a
          complaint on day 90 (warn low again);
  ch-cat  20 sessions on day 0 (engagement 20, its peak 20); a page view
          on day 45 (engagement/peak 0.22 < 0.25 with the peak 11.9 >= 5:
          engagement_drop, warn low); 20 sessions on day 46 (ratio 1:
          recovered by signals).

Why phases: with clock = event "now" is the greatest event time the
process has seen; each phase writes one partition of one topic and is
followed by `custpulse run --exit-at-end` (a fresh clock), so "now" of
every event is known. cpmodel replays the phases the same way (replay(...,
churn=True), a port of scoring/churn.c's rules, score and hysteresis).

Checked after every phase: every customer hash equals cpmodel's, gp
(engagement peak), sp (spend sums) and cw (warning episode) included; dd
is a positive integer, later than the customer's last evaluation, and the
due index <prefix>due:0 holds exactly every customer at its dd (one orders
partition: one shard). At the end: the exact churn CloudEvents per
customer in seq order (ids, times, figures), the story above, the segment
changes unchanged in number, and every churn record valid against
schemas/churn-warning.schema.json. dd itself is not mirrored (scoring/due.c
is not ported to Python): its values are printed.
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
                        check_due_index, check_eq, check_output_records,
                        checks_made, customer_hashes, due_keys, say)

ORDERS = topic_name("customer.orders")
BROWSING = topic_name("customer.browsing")
SUPPORT = topic_name("customer.support")
SEGMENTS = topic_name("customer.segment-changes")
CHURN = topic_name("customer.churn-warnings")
OUTPUT_PARTITIONS = 3  # topic.partitions default
REF = cpmodel.Fixed(recency_days=90, frequency=2, monetary="100.00")
BASE = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
SCHEMA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                      "schemas", "churn-warning.schema.json")
ANN, BOB, CAT = "ch-ann", "ch-bob", "ch-cat"


def at(day, hh=12):
    t = BASE + datetime.timedelta(days=day, hours=hh)
    return t.strftime("%Y-%m-%dT%H:%M:%SZ")


def ev(eid, typ, cid, day, hh=12, **fields):
    return dict({"event_id": eid, "type": typ, "customer_id": cid,
                 "occurred_at": at(day, hh)}, **fields)


def order(eid, cid, day, oid, amount="100.00"):
    return ev(eid, "order.placed", cid, day, order_id=oid, amount=amount,
              currency="USD")


def complaint(eid, cid, day):
    return ev(eid, "complaint.filed", cid, day, ticket_id="t-" + eid)


def csat(eid, cid, day, score):
    return ev(eid, "survey.answered", cid, day, survey="csat", score=score)


def sessions(prefix, cid, day, n):
    return [ev(f"{prefix}-{i}", "session.started", cid, day,
               session_id=f"{prefix}-{i}") for i in range(n)]


def phases():
    """[(name, topic, events in partition order)]: each phase's events in
    order of time, so every event's "now" is its own time."""
    return [
        ("ann's first two orders", ORDERS,
         [order("a-o1", ANN, 0, "ao-1"), order("a-o2", ANN, 30, "ao-2")]),
        ("complaints: bob day 10, ann day 31 (warn, warn)", SUPPORT,
         [complaint("b-c1", BOB, 10), complaint("a-c1", ANN, 31)]),
        ("cat's 20 sessions, a page view on day 45 (warn)", BROWSING,
         sessions("c-s", CAT, 0, 20) +
         [ev("c-p1", "page.viewed", CAT, 45, url="https://shop.example/",
             session_id="c-s-x")]),
        ("bob's CSAT 4 on day 80 (recovered), ann's complaint on day 100 "
         "(escalate)", SUPPORT,
         [csat("b-q1", BOB, 80, 4), complaint("a-c2", ANN, 100)]),
        ("ann's order on day 101 (no recovery)", ORDERS,
         [order("a-o3", ANN, 101, "ao-3")]),
        ("cat's 20 sessions on day 46 (recovered)", BROWSING,
         sessions("c-t", CAT, 46, 20)),
        ("bob's complaint on day 90 (warn again), ann's CSAT 5 on day 200 "
         "(recovered by order)", SUPPORT,
         [complaint("b-c2", BOB, 90), csat("a-q1", ANN, 200, 5)]),
        ("ann's complaint on day 201 (warn again)", SUPPORT,
         [complaint("a-c3", ANN, 201)]),
    ]


# The story: per customer, (action, level, previous level / recovered_by,
# reasons, time).
STORY = {
    ANN: [("warn", "low", None, ["service_risk"], at(31)),
          ("escalate", "high", "low", ["overdue", "service_risk"], at(100)),
          ("recovered", "high", "order", None, at(200)),
          ("warn", "low", None, ["service_risk"], at(201))],
    BOB: [("warn", "low", None, ["service_risk"], at(10)),
          ("recovered", "low", "signals", None, at(80)),
          ("warn", "low", None, ["service_risk"], at(90))],
    CAT: [("warn", "low", None, ["engagement_drop"], at(45)),
          ("recovered", "low", "signals", None, at(46))],
}


def story_of(outputs):
    out = {}
    for o in outputs:
        d = o["data"]
        rec = d["action"] == "recovered"
        out.setdefault(o["subject"], []).append((
            d["action"], d["level"],
            d["recovered_by"] if rec else d["previous_level"],
            None if rec else [r["code"] for r in d["reasons"]],
            o["time"].replace(".000Z", "Z")))
    return out


def check_dd(hashes, customers, last_now):
    """dd: a positive integer after the customer's last evaluation."""
    for cid, h in hashes.items():
        dd = h.get("dd")
        if dd is not None and cid in last_now:
            check(int(dd) > last_now[cid],
                  f"{cid}: dd {dd} not after its last evaluation "
                  f"{last_now[cid]}")


def main():
    with open(SCHEMA) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    with Stack() as st:
        for topic in (ORDERS, BROWSING, SUPPORT):
            st.create_topic(topic, partitions=1)
        cfg = config(st, **dict(REF.config(), **{
            "clock": "event", "topic.orders": ORDERS,
            "topic.browsing": BROWSING, "topic.support": SUPPORT,
            "topic.profile": "", "topic.churn": CHURN}))
        cp = Custpulse(st, cfg)
        r = st.redis()
        customers, outputs, ends, last_now = {}, [], {}, {}
        for i, (name, topic, events) in enumerate(phases(), 1):
            first = ends.get(topic, 0)
            st.produce(topic, [{"key": e["customer_id"], "value": e,
                                "partition": 0} for e in events])
            ends[topic] = first + len(events)
            recs = [{"value": e, "topic": topic, "partition": 0,
                     "offset": first + k} for k, e in enumerate(events)]
            _, new = cpmodel.replay(recs, REF, customers=customers, clock=0,
                                    churn=True)
            outputs += new
            for e in events:
                last_now[e["customer_id"]] = cpmodel.parse_time_ms(
                    e["occurred_at"])
            res = cp.run(["run", "--exit-at-end"], timeout=120)
            check_eq(res.returncode, 0,
                     f"phase {i}: exit code ({res.stderr[-2000:]})")
            hashes = customer_hashes(r)
            check_customer_states(hashes, customers)
            check_dd(hashes, customers, last_now)
            check_due_index(r, hashes, 1)
            churn_new = [o for o in new if o["type"].startswith(
                "com.custpulse.churn.")]
            say(f"phase {i} {name}: {len(events)} events, "
                f"{len(churn_new)} churn events; hashes = cpmodel (gp sp cw)"
                f"; dd: " + ", ".join(f"{c}={h.get('dd', '-')}" for c, h in
                                      sorted(hashes.items())))
        check_eq(due_keys(r), ["cp:due:0"], "due index shards")

        churn = [o for o in outputs
                 if o["type"].startswith("com.custpulse.churn.")]
        segs = [o for o in outputs if o not in churn]
        check_eq(story_of(churn), STORY, "the churn story")
        rows = st.consume(CHURN)
        check_output_records(rows, churn, OUTPUT_PARTITIONS)
        for row in rows:
            doc = json.loads(row["value"])
            errs = [e.message for e in validator.iter_errors(doc)]
            check(not errs, f"churn record {doc['id']}: schema: {errs[:3]}")
        check_output_records(st.consume(SEGMENTS), segs, OUTPUT_PARTITIONS)
        say(f"churn topic: {len(rows)} CloudEvents equal cpmodel's and "
            f"valid against the schema; {len(segs)} segment changes equal")
        for o in churn:
            d = o["data"]
            say(f"  {o['subject']} seq {d['seq']} {d['action']} "
                f"{d['level']} at {o['time']}: " + json.dumps(
                    d.get("reasons", d.get("recovered_by")),
                    separators=(",", ":")))
        for cid, h in sorted(customer_hashes(r).items()):
            say(f"  {cid}: " + " ".join(f"{f}={h[f]}" for f in
                                        ("gp", "sp", "cw", "dd") if f in h))
        r.close()
    say(f"test_churn_events: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
