"""The state cache (cache.mb; docs/performance.md "Hot path"): a customer
custpulse wrote is not read again, and a cached state that another writer
made stale is caught by the write's version check, never applied.

Instance A runs on the orders topic with the cache on. Customer c-1 gets
e1 (A writes it: c-1 is cached). Instance B (another group, on a second
orders topic: another writer of the same hash, as a new owner after a
rebalance would be) applies e2 to c-1. Then e3 for c-1 reaches A: A's
cached c-1 is stale, its write is refused (write_conflicts 1), A reads
Redis and applies e3 on top of e2. Customer c-2 gets two events in two
batches of A: the second is applied from the cache (cache_hits) with no
conflict. The final hashes equal cpmodel's replay of e1, e2, e3 (and c-2's
events); A's counters say which reads the cache served.

A second pass with cache.mb = 0 does the same with fresh customers: same
states, no cache hit, every customer read from Redis, and no conflict
(A's read of c-1 comes after B's write).
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
import storecodec  # noqa: E402
from harness import (Custpulse, Stack, config, topic_name,  # noqa
                     unique_name, wait_until)
from itest_util import (check, check_customer_states, check_eq,  # noqa
                        checks_made, customer_hashes, order_event, say)

ORDERS = topic_name("customer.orders")
ORDERS_B = topic_name("customer.orders-b")


def stats_of(cp):
    lines = [l for l in cp.log_lines() if l.get("msg") == "stopped"]
    check_eq(len(lines), 1, "one final stats line")
    return lines[0]


def applied_offset(r, cid, topic):
    """The watermark of (topic, 0) in cid's hash, or -1."""
    v = storecodec.expand_w(r.hgetall("cp:c:{%s}" % cid)).get(
        storecodec.w_field(topic, 0))
    return int(v) if v is not None else -1


def run_pass(st, tag, cache_mb, now_ms, base, base_b, groups):
    """One pass over fresh customers <tag>-1 and <tag>-2, whose events
    start at offset base of ORDERS and base_b of ORDERS_B (A and B go on
    in their groups from the previous pass); returns A's final stats."""
    c1, c2 = tag + "-1", tag + "-2"
    e1 = order_event(tag + "-e1", "placed", c1, "2024-05-01T08:00:00Z",
                     tag + "-o1", "20.00")
    e2 = order_event(tag + "-e2", "placed", c1, "2024-05-02T08:00:00Z",
                     tag + "-o2", "35.50")
    e3 = order_event(tag + "-e3", "placed", c1, "2024-05-03T08:00:00Z",
                     tag + "-o3", "7.25")
    f1 = order_event(tag + "-f1", "placed", c2, "2024-05-01T09:00:00Z",
                     tag + "-p1", "11.00")
    f2 = order_event(tag + "-f2", "refunded", c2, "2024-05-02T09:00:00Z",
                     tag + "-p1", "4.00")
    r = st.redis()
    cfg_a = config(st, **{"rfm.reference": "fixed", "cache.mb": cache_mb,
                          "stats.interval_ms": "0",
                          "kafka.group.id": groups[0]})
    a = Custpulse(st, cfg_a)
    a.start(["run"])
    # e1 and f1 (one batch or two: either way both customers are written)
    st.produce(ORDERS, [{"key": c1, "value": json.dumps(e1)},
                        {"key": c2, "value": json.dumps(f1)}])
    wait_until(lambda: applied_offset(r, c2, ORDERS) == base + 1,
               what=f"{tag}: A applied e1 and f1")
    # B writes c-1 behind A's back
    cfg_b = config(st, **{"rfm.reference": "fixed",
                          "topic.orders": ORDERS_B,
                          "kafka.group.id": groups[1]})
    b = Custpulse(st, cfg_b)
    st.produce(ORDERS_B, [{"key": c1, "value": json.dumps(e2)}])
    res = b.run(["run", "--exit-at-end"], timeout=120)
    check_eq(res.returncode, 0, f"{tag}: B's exit status")
    check_eq(applied_offset(r, c1, ORDERS_B), base_b,
             f"{tag}: B applied e2")
    # e3 (stale cache for c-1) and f2 (warm, valid cache for c-2)
    st.produce(ORDERS, [{"key": c1, "value": json.dumps(e3)},
                        {"key": c2, "value": json.dumps(f2)}])
    wait_until(lambda: applied_offset(r, c1, ORDERS) == base + 2 and
               applied_offset(r, c2, ORDERS) == base + 3,
               what=f"{tag}: A applied e3 and f2")
    check_eq(a.stop(), 0, f"{tag}: A's exit status")

    recs = [{"value": e1, "topic": ORDERS, "partition": 0, "offset": base},
            {"value": f1, "topic": ORDERS, "partition": 0,
             "offset": base + 1},
            {"value": e2, "topic": ORDERS_B, "partition": 0,
             "offset": base_b},
            {"value": e3, "topic": ORDERS, "partition": 0,
             "offset": base + 2},
            {"value": f2, "topic": ORDERS, "partition": 0,
             "offset": base + 3}]
    custs, _ = cpmodel.replay(recs, cpmodel.Fixed(), now_ms=now_ms)
    got = {cid: h for cid, h in customer_hashes(r).items()
           if cid in (c1, c2)}
    check_customer_states(got, custs)
    return stats_of(a)


def main():
    now_ms = int(time.time() * 1000)
    groups = (unique_name("cache-a"), unique_name("cache-b"))
    with Stack() as st:
        st.create_topic(ORDERS, 1)
        st.create_topic(ORDERS_B, 1)

        s = run_pass(st, "a", "64", now_ms, 0, 0, groups)
        # c-1 read once (new), then cached; c-2 likewise: the e3/f2 batch
        # finds both in the cache; c-1's write is refused (B moved v) and
        # c-1 is read from Redis.
        check_eq(s["write_conflicts"], 1, "cache on: conflicts (stale c-1)")
        check_eq(s["cache_hits"], 2,
                 "cache on: hits (c-1 and c-2 after their first write, put "
                 "once their outbox clears answered)")
        check_eq(s["cache_misses"], 3,
                 "cache on: misses (c-1 and c-2 new, c-1 after the "
                 "conflict)")
        check_eq(s["writes"], 4, "cache on: writes accepted")

        s = run_pass(st, "b", "0", now_ms, 4, 1, groups)
        check_eq(s["cache_hits"], 0, "cache off: hits")
        check_eq(s["write_conflicts"], 0,
                 "cache off: conflicts (every read is fresh)")
        check_eq(s["cache_misses"], 4, "cache off: misses (every read)")
        say("state_cache: a stale cached state refused by the version "
            "check and re-read, warm ones served; same states with the "
            "cache off; %d checks" % checks_made())


if __name__ == "__main__":
    main()
