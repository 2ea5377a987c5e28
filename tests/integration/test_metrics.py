"""Population metrics (issue 6; docs/metrics.md) on the harness's real
Kafka and Redis: the counters each write adds, the daily customer.metrics
records and `custpulse report`.

clock = event, the due-time sweep on (time-caused stage changes count on
the day of their due instant), rfm.reference = fixed, topic.metrics set,
one orders partition. 40 customers over 60 days with 1 to 4 orders each
(seeded), a clock keeper ordering daily until day 120, and one duplicate
delivery of an order.

The expectation is recomputed here from what the test knows, not from
custpulse's counters: the lifecycle and rfm8 CloudEvents cpmodel expects
(their times give the day of every stage and segment move), each
customer's event days (activity: once a day, a day later than any before)
and order days (cohort: the first order's day; retention: the first
repeat order day within 2/7/14/30 days). Checked:

  - every md:<day> and mc:<day> hash and the mdays index equal that
    recomputation exactly (run 1 is killed after its 5th batch write,
    failpoint after_redis_write:5, and run 2 completes it: no increment
    is lost or counted twice);
  - customer.metrics holds one record per listed day up to the day before
    the final clock, each exactly the recomputed figures (gauges as
    running sums, churn rate over the day before's base, the cohorts of
    the 30-day window with retention null until complete), valid against
    schemas/customer-metrics.schema.json, key = the day;
  - `custpulse report --json` prints the same data objects;
  - a third run with nothing new emits nothing (mstate's `emitted`).
"""
import collections
import datetime
import json
import os
import random
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
try:
    import jsonschema
except ImportError:
    sys.path.append("/usr/lib/python3/dist-packages")
    import jsonschema  # noqa: E402
from harness import Custpulse, Stack, config, topic_name  # noqa: E402
from itest_util import check, check_eq, checks_made, say  # noqa: E402

ORDERS = topic_name("customer.orders")
SEGMENTS = topic_name("customer.segment-changes")
METRICS = topic_name("customer.metrics")
REF = cpmodel.Fixed(recency_days=30, frequency=2, monetary="100.00")
BASE = datetime.datetime(2024, 3, 1, tzinfo=datetime.timezone.utc)
BASE_DAY = cpmodel.utc_day(int(BASE.timestamp() * 1000))
HERE = os.path.dirname(os.path.abspath(__file__))
SCHEMA = os.path.join(HERE, "..", "..", "schemas",
                      "customer-metrics.schema.json")
STAGES = ["prospect", "new", "active", "loyal", "at_risk", "churned",
          "won_back"]
FLOWS = ["new", "at_risk", "churned", "won_back"]
SEGS = ["important_value", "important_develop", "important_keep",
        "important_retain", "general_value", "general_develop",
        "general_keep", "general_retain"]
HORIZONS = [2, 7, 14, 30]
# lifecycle windows short enough for a 120-day story
LIFECYCLE = {"lifecycle.new_days": "7", "lifecycle.at_risk_days": "20",
             "lifecycle.churn_days": "45", "lifecycle.won_back_days": "10",
             "lifecycle.loyal_orders": "3"}


def date(day):
    return (BASE + datetime.timedelta(days=day)).strftime("%Y-%m-%d")


def events():
    rnd = random.Random(6)
    evs = []
    for i in range(40):
        cid = f"mt-{i:02d}"
        d = rnd.randrange(0, 30)
        for k in range(rnd.randint(1, 4)):
            evs.append((d, rnd.randrange(1, 23), cid, k))
            d += rnd.choice([0, 1, 3, 6, 13, 25])
    for d in range(0, 121):
        evs.append((d, 23, "mt-keeper", d))
    evs.sort()
    out = []
    for d, hh, cid, k in evs:
        t = BASE + datetime.timedelta(days=d, hours=hh)
        out.append({"event_id": f"{cid}-e{k}", "type": "order.placed",
                    "customer_id": cid,
                    "occurred_at": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
                    "order_id": f"{cid}-o{k}",
                    "amount": "%d.00" % (20 + 37 * k % 90),
                    "currency": "USD"})
    dup = out[len(out) // 3]
    out.insert(len(out) // 3 + 1, dict(dup))  # an upstream duplicate
    return out


def recompute(evs, outputs):
    """{("md"|"mc", day): {field: value}} from the events and cpmodel's
    lifecycle and rfm8 changes."""
    inc = collections.defaultdict(lambda: collections.Counter())
    for o in outputs:
        d = o["data"]
        day = cpmodel.utc_day(cpmodel.parse_time_ms(o["time"]))
        if d.get("model") == "lifecycle":
            if d["from"]:
                inc[("md", day)]["lc:" + d["from"]] -= 1
            inc[("md", day)]["lc:" + d["to"]] += 1
            if d["to"] in FLOWS:
                inc[("md", day)]["in:" + d["to"]] += 1
        elif d.get("model") == "rfm8":
            if d["from"]:
                inc[("md", day)]["seg:" + d["from"]] -= 1
            if d["to"]:
                inc[("md", day)]["seg:" + d["to"]] += 1
    latest, first, order_days, seen = {}, {}, {}, set()
    for e in evs:
        if e["event_id"] in seen:
            continue  # the duplicate is not applied
        seen.add(e["event_id"])
        cid = e["customer_id"]
        day = cpmodel.utc_day(cpmodel.parse_time_ms(e["occurred_at"]))
        if cid not in latest or day > latest[cid]:
            inc[("md", day)]["act"] += 1
            latest[cid] = day
        days = order_days.setdefault(cid, set())
        if not days:
            first[cid] = day
            inc[("mc", day)]["n"] += 1
        elif day not in days and len(days) == 1:
            c = first[cid]
            for k in HORIZONS:
                if abs(day - c) <= k - 1:
                    inc[("mc", c)]["r%d" % k] += 1
        days.add(day)
    return {k: dict(c) for k, c in inc.items()}


def read_counters(r):
    got = {}
    for k in r.cmd("KEYS", "cp:m[dc]:*"):
        k = k.decode()
        kind, day = k.split(":")[1], k.split(":", 2)[2]
        d = datetime.date.fromisoformat(day)
        n = (d - datetime.date(1970, 1, 1)).days
        flat = r.cmd("HGETALL", k)
        got[(kind, n)] = {f.decode(): int(v) for f, v in
                          zip(flat[::2], flat[1::2])}
    return got


def nonzero(counters):
    return {k: {f: v for f, v in h.items() if v != 0}
            for k, h in counters.items()}


def expected_records(counters, upto):
    """The data objects of the days up to `upto` (docs/metrics.md "The
    daily figures")."""
    days = sorted({d for (_, d) in counters})
    stage = collections.Counter()
    seg = collections.Counter()
    out = []
    for d in days:
        h = counters.get(("md", d), {})
        base = sum(stage[s] for s in ("new", "active", "loyal", "at_risk",
                                      "won_back"))
        for s in STAGES:
            stage[s] += h.get("lc:" + s, 0)
        for g in SEGS:
            seg[g] += h.get("seg:" + g, 0)
        if d > upto:
            continue
        churned = h.get("in:churned", 0)
        cohorts = []
        for c in days:
            mc = counters.get(("mc", c))
            if mc is None or not (c <= d <= c + 29):
                continue
            n = mc.get("n", 0)
            ret = {}
            for k in HORIZONS:
                done = d >= c + k - 1 and n > 0
                ret["d%d" % k] = (cpmodel.num6(mc.get("r%d" % k, 0) / n)
                                  if done else None)
            cohorts.append({"cohort": date(c - BASE_DAY), "size": n,
                            "retention": ret})
        out.append({
            "day": date(d - BASE_DAY), "timezone": "UTC",
            "active": h.get("act", 0), "new": h.get("in:new", 0),
            "churned": churned, "won_back": h.get("in:won_back", 0),
            "at_risk_entered": h.get("in:at_risk", 0),
            "churn_rate": cpmodel.num6(churned / base) if base > 0 else None,
            "lifecycle": {s: stage[s] for s in STAGES},
            "segments": {g: seg[g] for g in SEGS},
            "cohorts": cohorts})
    return out


def main():
    with open(SCHEMA) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    validator = cls(schema, format_checker=cls.FORMAT_CHECKER)
    evs = events()
    params = cpmodel.Params(LIFECYCLE)
    with Stack() as st:
        st.create_topic(ORDERS, partitions=1)
        cfg = config(st, **dict(REF.config(), **LIFECYCLE, **{
            "clock": "event", "due.sweep_ms": "100", "batch.size": "16",
            "kafka.group.instance.id": "mt-1",
            "topic.orders": ORDERS, "topic.browsing": "",
            "topic.support": "", "topic.profile": "",
            "topic.metrics": METRICS}))
        cp = Custpulse(st, cfg)
        st.produce(ORDERS, [{"key": e["customer_id"], "value": e,
                             "partition": 0} for e in evs])
        res = cp.run(["run", "--exit-at-end"], timeout=120,
                     env={"CUSTPULSE_FAILPOINT": "after_redis_write:5"})
        check(res.returncode != 0, f"run 1 crashed ({res.returncode})")
        res = cp.run(["run", "--exit-at-end"], timeout=120)
        check_eq(res.returncode, 0, f"run 2 ({res.stderr[-2000:]})")

        recs = [{"value": e, "topic": ORDERS, "partition": 0, "offset": k}
                for k, e in enumerate(evs)]
        customers, outputs = cpmodel.replay(recs, REF, params=params,
                                            timed=True)
        final = max(cpmodel.parse_time_ms(e["occurred_at"]) for e in evs)
        outputs += cpmodel.sweep(customers, final, REF)
        r = st.redis()
        got = read_counters(r)
        want = recompute(evs, outputs)
        check_eq(nonzero(got), nonzero(want), "metric counters")
        days = sorted(int(x) for x in r.cmd("ZRANGE", "cp:mdays", 0, -1))
        check_eq(days, sorted({d for (_, d) in want}), "mdays")
        say(f"counters: {len(got)} hashes over {len(days)} days equal the "
            f"recomputation ({len(outputs)} model outputs)")

        upto = cpmodel.utc_day(final) - 1
        rows = st.consume(METRICS)
        docs = [json.loads(x["value"]) for x in rows]
        for x, doc in zip(rows, docs):
            check_eq(x["key"].decode(), doc["subject"], "record key")
            errs = [e.message for e in validator.iter_errors(doc)]
            check(not errs, f"{doc['subject']}: schema: {errs[:3]}")
        byday = {}
        for doc in docs:  # a crash may have emitted a day twice: same
            if doc["subject"] in byday:
                check_eq(doc, byday[doc["subject"]], "re-emitted day")
            byday[doc["subject"]] = doc
        exp = expected_records(nonzero(want), upto)
        check_eq([byday[k]["data"] for k in sorted(byday)], exp,
                 "customer.metrics records")
        check_eq(r.cmd("HGET", "cp:mstate", "emitted"), str(upto).encode(),
                 "mstate emitted")
        rep = cp.run(["report", "--json"])
        check_eq(rep.returncode, 0, f"report ({rep.stderr})")
        printed = [json.loads(x) for x in rep.stdout.splitlines()]
        check_eq(printed[:len(exp)], exp, "report --json")
        last = exp[-1]
        say(f"customer.metrics: {len(byday)} days equal the recomputation "
            f"and the report; {last['day']}: lifecycle {last['lifecycle']}, "
            f"churn rate {last['churn_rate']}")
        for e in exp:
            if e["cohorts"] and e["cohorts"][0]["retention"]["d30"] is not None:
                c = e["cohorts"][0]
                say(f"  {e['day']}: cohort {c['cohort']} size {c['size']} "
                    f"retention {c['retention']}")
                break

        res = cp.run(["run", "--exit-at-end"], timeout=120)
        check_eq(res.returncode, 0, "run 3")
        check_eq(len(st.consume(METRICS)), len(rows), "run 3 emits nothing")
        r.close()
    say(f"test_metrics: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
