"""Forced re-delivery: a consumer that lost its stored positions re-reads
everything and changes nothing (contracts section 2, De-duplication and
idempotence; docs/fault-tolerance.md, counters).

1. A seeded stream of N valid order events (faultutil.generate without
   invalid records: placed, refunds, cancellations, unknown orders,
   re-placed ids and upstream duplicates), keyed by customer id, in 3
   partitions; N = 4,000 in CI size, 200,000 with CP_LONG=1.
2. `custpulse run --exit-at-end` to the end; its `stopped` line must show
   events == N, skipped_redelivered == 0.
3. Snapshot: every customer hash under the prefix, byte for byte, v
   included; every record of the segment-change, churn and DLQ topics.
4. "Remove the stored positions": run again with a NEW kafka.group.id
   (same input, key prefix and output topics), --exit-at-end. The final
   `stopped` line must show skipped_redelivered == N, applied == 0,
   writes == 0, outputs == 0 (and events == N, duplicates == 0, dlq ==
   0); every customer hash must be byte-identical to the snapshot (no key
   added or removed); the output topics must hold exactly the snapshot's
   records (nothing new); the new group's committed offsets == the end
   offsets.

No invalid records: a DLQ record is not watermark-protected (invalid
input never touches state), so a replay with a new group dead-letters it
again; that is not re-delivery of state-changing events, which is what
this test is about.

    python3 test_redelivery.py        # CI size;  CP_LONG=1: full size
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultutil as fu  # noqa: E402
from cpcheck import Stopwatch, expect, first_diffs  # noqa: E402
from harness import Custpulse, Stack, config, unique_name  # noqa: E402
from itest_util import checks_made, digest_hashes, say  # noqa: E402

SEED = 20250405
N = 200_000 if fu.LONG else 4_000
N_CUSTOMERS = max(50, N // 10)
PARTITIONS = 3
OUT_PARTITIONS = 3
ORDERS = "orders.redelivery"
SEGMENTS = "segments.redelivery"
CHURN = "churn.redelivery"
DLQ = "dlq.redelivery"
PREFIX = "rd:"
RUN_TIMEOUT_S = 1800 if fu.LONG else 300


def run_to_end(st, cfg, name):
    cp = Custpulse(st, cfg, name=name)
    t = Stopwatch()
    rc, lines = fu.run_to_end(cp, RUN_TIMEOUT_S)
    expect(rc == 0, f"{name}: exit status",
           f"{rc}\n{cp.stderr_text()[-3000:]}")
    stopped = fu.last_stopped(lines)
    expect(stopped is not None, f"{name}: no 'stopped' log line",
           cp.stderr_text()[-2000:])
    missing = [k for k in fu.COUNTERS if k not in stopped]
    expect(not missing, f"{name}: counters missing from the 'stopped' line",
           f"{missing}: {json.dumps(stopped)}")
    return stopped, t.s()


def expect_counters(stopped, want, when):
    got = {k: stopped.get(k) for k in want}
    expect(got == want, f"{when}: counters of the 'stopped' line",
           f"got {got}, want {want}; line {json.dumps(stopped)}")


def main():
    total = Stopwatch()
    stream = fu.generate(SEED, N, N_CUSTOMERS, PARTITIONS, invalid_rate=0)
    fig = stream.figures
    expect(fig["invalid"] == 0 and fig["valid"] == N, "generated input", fig)
    expect(fig.get("duplicate", 0) > 0, "the input must hold upstream "
           "duplicates", fig)
    ref = fu.fixed_reference()
    with Stack() as st:
        st.create_topic(ORDERS, partitions=PARTITIONS)
        fu.produce_lines(st, ORDERS, stream.lines)
        ends = stream.ends
        say(f"input: {N} valid events ({fig.get('duplicate', 0)} upstream "
            f"duplicates, {fig.get('cancel', 0)} cancellations, "
            f"{fig.get('refund', 0)} refunds) for {fig['customers']} "
            f"customers in {PARTITIONS} partitions, ends {ends}")
        base = {**ref.config(), "topic.orders": ORDERS,
                "topic.segments": SEGMENTS, "topic.churn": CHURN,
                "topic.dlq": DLQ, "topic.partitions": OUT_PARTITIONS,
                "redis.key_prefix": PREFIX, "clock": "wall",
                "batch.size": 200}

        # 2. the first run
        cfg1 = config(st, **base, **{"kafka.group.id": unique_name("rd1")})
        s1, t1 = run_to_end(st, cfg1, "first")
        expect_counters(s1, {"events": N, "skipped_redelivered": 0,
                             "dlq": 0}, "first run")
        expect(s1["applied"] + s1["duplicates"] == N,
               "first run: applied + duplicates == events", s1)
        expect(s1["outputs"] > 0 and s1["writes"] > 0,
               "first run: outputs and writes", s1)
        expect(st.committed(cfg1["kafka.group.id"], ORDERS) == ends,
               "first run: committed offsets", ends)
        say(f"first run: exit 0 in {t1:.1f}s; applied {s1['applied']}, "
            f"duplicates {s1['duplicates']}, writes {s1['writes']}, "
            f"outputs {s1['outputs']}, batches {s1['batches']}")

        # 3. the snapshot
        with st.redis(timeout=60) as r:
            before = fu.hashes_under(r, PREFIX)
            keys_before = fu.keys_under(r, PREFIX)
        expect(len(before) == fig["customers"], "customer hashes",
               f"{len(before)} != {fig['customers']}")
        topics = (SEGMENTS, CHURN, DLQ)
        rows_before = {t: fu.consume_all(st, t) for t in topics}
        expect(len(rows_before[SEGMENTS]) == s1["outputs"] -
               len(rows_before[CHURN]),
               "segment-change records == outputs - churn records",
               {t: len(v) for t, v in rows_before.items()})
        digest = digest_hashes(before)

        # 4. a new group id: every position forgotten
        cfg2 = config(st, **base, **{"kafka.group.id": unique_name("rd2")})
        expect(cfg2["kafka.group.id"] != cfg1["kafka.group.id"],
               "a new group id", cfg2["kafka.group.id"])
        s2, t2 = run_to_end(st, cfg2, "replay")
        expect_counters(s2, {"events": N, "skipped_redelivered": N,
                             "applied": 0, "writes": 0, "outputs": 0,
                             "duplicates": 0, "dlq": 0}, "replay")
        with st.redis(timeout=60) as r:
            after = fu.hashes_under(r, PREFIX)
            keys_after = fu.keys_under(r, PREFIX)
        expect(sorted(after) == sorted(before), "customers after the replay",
               f"added {first_diffs(sorted(set(after) - set(before)))}; "
               f"removed {first_diffs(sorted(set(before) - set(after)))}")
        changed = [c for c in before if before[c] != after[c]]
        expect(not changed, f"{len(changed)} customer hash(es) changed by "
               "the replay", first_diffs(
                   f"{c}: {sorted(before[c].items())!r:.300} -> "
                   f"{sorted(after[c].items())!r:.300}" for c in changed))
        expect(digest_hashes(after) == digest, "digest of every hash")
        rows_after = {t: fu.consume_all(st, t) for t in topics}
        for t in topics:
            expect(rows_after[t] == rows_before[t],
                   f"{t}: records changed by the replay",
                   f"{len(rows_before[t])} -> {len(rows_after[t])}")
        expect(st.committed(cfg2["kafka.group.id"], ORDERS) == ends,
               "replay: committed offsets", ends)
        other = sorted(set(keys_before) | set(keys_after))
        other = [k for k in other if not k.startswith(PREFIX + "c:")]
        say(f"replay with group {cfg2['kafka.group.id']}: exit 0 in "
            f"{t2:.1f}s; skipped_redelivered {s2['skipped_redelivered']} "
            f"= N, applied 0, writes 0, outputs 0, batches "
            f"{s2['batches']}, redis round trips "
            f"{s2['redis_round_trips']}; all {len(after)} customer hashes "
            f"byte-identical (v, e, r included; sha256 {digest[:16]}); "
            f"output topics unchanged ({len(rows_after[SEGMENTS])} "
            f"segment changes, {len(rows_after[CHURN])} churn, "
            f"{len(rows_after[DLQ])} DLQ); other keys under {PREFIX}: "
            f"{len(other)} ({', '.join(other[:4])})")
    say(f"test_redelivery: passed in {total.s():.1f}s "
        f"({checks_made()} checks)")


if __name__ == "__main__":
    main()
