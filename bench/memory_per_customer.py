#!/usr/bin/env python3
"""Redis bytes per customer for the whole model (issue 5: "report Redis
bytes per customer ... MEMORY USAGE over a sample").

Starts the test stack (real Kafka 3.9 + redis-server on free loopback
ports, tests/integration/harness.py), produces a seeded mix of events for
N customers on the four input topics (orders, browsing, support, profile),
runs `custpulse run --exit-at-end`, then reports MEMORY USAGE (SAMPLES 0:
exact) of a random sample of customer hashes, their encodings (listpack or
hashtable), the outbox keys left (none after a clean run), and the share
of each field in the hash's payload (field name + value bytes), for three
profiles:

  orders-only   5 orders per customer
  full          5 orders + 20 browsing + 4 support + 1 profile (4 attrs)
  heavy         40 orders + 100 browsing + 10 support + 1 profile

Prints figures; no pass/fail (the target of <= 300 B and the trade-off are
discussed in docs/operations.md "Memory per customer"). Redis runs with
deploy/local/redis.conf (hash-max-listpack-value 512); --listpack-value
sets another value first (64 = Redis' default).

    python3 bench/memory_per_customer.py [--customers N] [--sample K]
                                         [--listpack-value BYTES]

Environment as for the integration tests (CP_BIN = the custpulse binary).
"""
import argparse
import collections
import json
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
from harness import Custpulse, Stack, config  # noqa: E402

T0 = 1704067200000  # 2024-01-01T00:00:00Z
DAY = 86400000
BROWSING = ["session.started", "page.viewed", "product.viewed",
            "search.performed", "cart.item_added", "cart.abandoned"]


def iso(ms):
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ms / 1000)) + \
        ".%03dZ" % (ms % 1000)


def events_for(rnd, cid, n_orders, n_browse, n_support, profile):
    """{topic kind: [event dicts]} of one customer, times increasing."""
    out = collections.defaultdict(list)
    t = T0 + rnd.randrange(0, 30 * DAY)
    seq = 0

    def eid():
        nonlocal seq
        seq += 1
        return f"{cid}-e{seq}"

    for i in range(n_orders):
        t += rnd.randrange(DAY, 20 * DAY)
        out["orders"].append({"event_id": eid(), "type": "order.placed",
                              "customer_id": cid, "occurred_at": iso(t),
                              "order_id": f"{cid}-o{i}",
                              "amount": "%d.%02d" % (rnd.randrange(5, 300),
                                                     rnd.randrange(100)),
                              "currency": "USD"})
    t = T0
    for i in range(n_browse):
        t += rnd.randrange(3600000, 3 * DAY)
        typ = rnd.choice(BROWSING)
        ev = {"event_id": eid(), "type": typ, "customer_id": cid,
              "occurred_at": iso(t), "session_id": f"s{i // 5}"}
        if typ == "page.viewed":
            ev["url"] = f"https://shop.example/p/{rnd.randrange(1000)}"
        elif typ in ("product.viewed", "cart.item_added"):
            ev["product_id"] = f"sku-{rnd.randrange(5000)}"
        elif typ == "search.performed":
            ev["query"] = "shoes"
        if typ == "cart.abandoned":
            ev["value"] = "49.90"
            ev["currency"] = "USD"
        out["browsing"].append(ev)
    t = T0
    for i in range(n_support):
        t += rnd.randrange(DAY, 10 * DAY)
        k = i % 4
        ev = {"event_id": eid(), "customer_id": cid, "occurred_at": iso(t)}
        if k == 0:
            ev.update(type="ticket.opened", ticket_id=f"t{i}")
        elif k == 1:
            ev.update(type="ticket.resolved", ticket_id=f"t{i - 1}",
                      resolution_minutes=rnd.randrange(5, 600))
        elif k == 2:
            ev.update(type="survey.answered", survey="csat",
                      score=rnd.randrange(1, 6))
        else:
            ev.update(type="survey.answered", survey="nps",
                      score=rnd.randrange(0, 11))
        out["support"].append(ev)
    if profile:
        out["profile"].append({
            "event_id": eid(), "type": "profile.updated", "customer_id": cid,
            "occurred_at": iso(T0),
            "attributes": {"country": rnd.choice(["DE", "US", "CN", "FR"]),
                           "city": "Springfield", "plan": "pro",
                           "is_strategic": rnd.random() < 0.1}})
    return out


def run_profile(name, n_customers, sample, shape, listpack_value):
    rnd = random.Random(20261123)
    topics = {"orders": f"orders.{name}", "browsing": f"browsing.{name}",
              "support": f"support.{name}", "profile": f"profile.{name}"}
    with Stack() as st:
        if listpack_value:
            with st.redis() as r:
                r.cmd("CONFIG", "SET", "hash-max-listpack-value",
                      str(listpack_value))
        for t in topics.values():
            st.create_topic(t, partitions=3)
        recs = collections.defaultdict(list)
        for c in range(n_customers):
            cid = f"c-{c:07d}"
            for kind, evs in events_for(rnd, cid, *shape).items():
                recs[kind] += [{"key": cid, "value": e} for e in evs]
        n_events = sum(len(v) for v in recs.values())
        for kind, rows in recs.items():
            st.produce(topics[kind], rows)
        cfg = config(st, **{
            "topic.orders": topics["orders"],
            "topic.browsing": topics["browsing"],
            "topic.support": topics["support"],
            "topic.profile": topics["profile"],
            "clock": "event", "rfm.reference": "fixed",
            # the product's default (the test harness defaults to fixed):
            # each customer carries h, its quantile RFM histogram buckets
            "rfmq.mode": "live",
            "segment.de_pro.rule":
                'profile.country == "DE" and profile.plan == "pro"',
            "stats.interval_ms": 0})
        cp = Custpulse(st, cfg, name=f"mem-{name}")
        t = time.monotonic()
        res = cp.run(["run", "--exit-at-end"], timeout=1800)
        secs = time.monotonic() - t
        if res.returncode != 0:
            sys.exit(f"{name}: custpulse exited {res.returncode}\n"
                     f"{res.stderr[-2000:]}")
        with st.redis(timeout=60) as r:
            keys = r.keys("cp:c:*")
            outboxes = len(r.keys("cp:x:*"))
            picked = rnd.sample(keys, min(sample, len(keys)))
            usage, fields, rebuilt = [], collections.Counter(), []
            encs = collections.Counter()
            for k in picked:
                usage.append(r.cmd("MEMORY", "USAGE", k, "SAMPLES", "0"))
                enc = r.cmd("OBJECT", "ENCODING", k)
                encs[enc.decode() if isinstance(enc, bytes) else enc] += 1
                h = r.hgetall_bytes(k)
                for f, v in h.items():
                    tag = f.split(b":")[0] + (b":*" if b":" in f else b"")
                    fields[tag.decode()] += len(f) + len(v)
                # The same fields in a fresh hash: Redis never turns a
                # hashtable back into a listpack, so a hash that once held a
                # long value (layout 2's outbox x) stays large.
                r.cmd("DEL", "bench:tmp")
                args = [a for fv in h.items() for a in fv]
                r.cmd("HSET", "bench:tmp", *args)
                rebuilt.append(r.cmd("MEMORY", "USAGE", "bench:tmp",
                                     "SAMPLES", "0"))
            rb_enc = r.cmd("OBJECT", "ENCODING", "bench:tmp")
            r.cmd("DEL", "bench:tmp")
            rb_enc = rb_enc.decode() if isinstance(rb_enc, bytes) else rb_enc
            lpv = r.cmd("CONFIG", "GET", "hash-max-listpack-value")[1]
            lpv = lpv.decode() if isinstance(lpv, bytes) else lpv
        usage.sort()
        mean = sum(usage) / len(usage)
        payload = sum(fields.values()) / len(picked)
        print(f"{name}: {n_customers} customers, {n_events} events in "
              f"{secs:.1f}s; MEMORY USAGE over {len(picked)} hashes: mean "
              f"{mean:.0f} B, median {usage[len(usage) // 2]} B, max "
              f"{usage[-1]} B; encodings {dict(encs)} (hash-max-listpack-"
              f"value {lpv}); payload {payload:.0f} B; same fields rebuilt: "
              f"mean {sum(rebuilt) / len(rebuilt):.0f} B ({rb_enc} for the "
              f"last); outbox keys left {outboxes}")
        top = sorted(fields.items(), key=lambda kv: -kv[1])
        print("  payload by field (B per customer): " + ", ".join(
            f"{f} {v / len(picked):.0f}" for f, v in top))
        return mean


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=2000)
    ap.add_argument("--sample", type=int, default=500)
    ap.add_argument("--listpack-value", type=int, default=0,
                    help="CONFIG SET hash-max-listpack-value first (Redis "
                    "default 64: a longer value turns the hash into a "
                    "hashtable)")
    args = ap.parse_args()
    shapes = {"orders-only": (5, 0, 0, False),
              "full": (5, 20, 4, True),
              "heavy": (40, 100, 10, True)}
    res = {}
    for name, shape in shapes.items():
        res[name] = run_profile(name, args.customers, args.sample, shape,
                                args.listpack_value)
    print(json.dumps({"bytes_per_customer": {k: round(v) for k, v in
                                             res.items()}}))


if __name__ == "__main__":
    main()
