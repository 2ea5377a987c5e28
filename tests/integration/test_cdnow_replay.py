"""Guarantee 2: a replay of history gives exact figures.

All 69,659 CDNOW purchases (tests/data/cdnow_events.py) go into a
3-partition customer.orders; custpulse runs once with --exit-at-end,
rfm.reference = live and clock = event. For all 23,570 customers o, m, f and
l must equal a plain recomputation from CDNOW_master.txt (rows counted,
cents summed, first/last date as epoch ms at 00:00Z), and so must n (events
applied), b (BTYD x: purchase days after the first) and lv (4); the live
population hash cp:pop must hold n, sf, sm and sl exactly. Segments,
lifecycle stages and value tiers depend on the interleaving of partitions
(live mode, event clock), so only their consistency is checked (every
customer has each, it is the `to` of that model's last output event, all
its outputs are seq 1..q). A second run with the same group has nothing to
do: it exits 0 and changes no byte in Redis and no record in Kafka.
"""
import collections
import datetime
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import SOURCE_DIR, Custpulse, Stack, config  # noqa: E402
from itest_util import (DLQ_TOPIC, ORDERS_TOPIC, SEGMENTS_TOPIC,  # noqa: E402
                        Timer, all_hashes, check, check_due_index, check_eq,
                        check_record_envelope, checks_made, digest_hashes,
                        end_offsets, outputs_by_customer, say,
                        without_epochs)

PARTITIONS = 3
MASTER = os.path.join(SOURCE_DIR, "tests", "data", "cdnow", "CDNOW_master.txt")
EVENTS_PY = os.path.join(SOURCE_DIR, "tests", "data", "cdnow_events.py")
N_PURCHASES = 69659
N_CUSTOMERS = 23570
SEGMENT_CODES = {"important_value", "important_develop", "important_keep",
                 "important_retain", "general_value", "general_develop",
                 "general_keep", "general_retain"}
EPOCH = datetime.date(1970, 1, 1)
DAY_MS = 86400000


def day_number(yyyymmdd):
    d = datetime.date(int(yyyymmdd[:4]), int(yyyymmdd[4:6]),
                      int(yyyymmdd[6:]))
    return (d - EPOCH).days


def cents(text):
    whole, _, frac = text.partition(".")
    check(len(frac) == 2 and whole.isdigit() and frac.isdigit(),
          f"CDNOW amount {text!r} is not d.dd")
    return int(whole) * 100 + int(frac)


def expected_from_master():
    """{customer id: [orders, cents, first day, last day, distinct days]}
    straight from the file (header line skipped)."""
    want = {}
    with open(MASTER) as f:
        for line in f:
            cols = line.split()
            if not cols or not cols[0].isdigit():
                continue
            cust, date, _cds, value = cols
            day = day_number(date)
            w = want.get(cust)
            if w is None:
                want[cust] = [1, cents(value), day, day, {day}]
            else:
                w[0] += 1
                w[1] += cents(value)
                w[2] = min(w[2], day)
                w[3] = max(w[3], day)
                w[4].add(day)
    return want


def event_lines():
    res = subprocess.run([sys.executable, EVENTS_PY, "--partitions",
                          str(PARTITIONS)], capture_output=True, text=True,
                         check=True)
    lines = res.stdout.splitlines(keepends=True)
    per_part = collections.Counter(json.loads(l)["partition"] for l in lines)
    return lines, dict(per_part)


def check_customers(hashes, want):
    keys = {k for k in hashes if k.startswith("cp:c:{")}
    check_eq(len(keys), N_CUSTOMERS, "customer hashes in Redis")
    bad = []
    # n: every purchase is an applied event (distinct event and order ids).
    # b (BTYD x): days with a purchase after the first such day (absent
    # when 0); exact for every customer, even beyond dedup.orders, because
    # each customer's purchases come in date order (the file is sorted by
    # customer, then date), so a same-day order is always the newest one
    # remembered. lv: every hash is written by layout 4.
    fields = ("o", "m", "f", "l", "n", "b", "lv")
    for cid, (o, m, first, last, days) in want.items():
        h = hashes.get("cp:c:{%s}" % cid)
        got = None if h is None else tuple(h.get(f) for f in fields)
        exp = tuple(None if x is None else str(x).encode()
                    for x in (o, m, first * DAY_MS, last * DAY_MS, o,
                              len(days) - 1 or None, 4))
        if got != exp:
            bad.append((cid, got, exp))
    check(not bad, lambda: f"{len(bad)} customers differ in "
          f"{'/'.join(fields)}, e.g. "
          + "; ".join(f"{c}: got {g} want {e}" for c, g, e in bad[:5]))


def check_population(pop, want):
    exp = {"n": len(want), "sf": sum(w[0] for w in want.values()),
           "sm": sum(w[1] for w in want.values()),
           "sl": sum(w[3] for w in want.values())}
    got = {k: int(v) for k, v in pop.items()}
    check_eq(got, exp, "cp:pop")
    check_eq(exp["sf"], N_PURCHASES, "purchases in CDNOW_master.txt")
    return exp


# The level field of each emitted model (docs/contracts.md section 2).
LEVEL_FIELDS = {"rfm8": "s", "lifecycle": "sl", "engagement": "se",
                "satisfaction": "ss", "value": "sv"}
# Orders only: engagement and satisfaction never get a level.
STAGES = {"new", "active", "loyal", "at_risk", "churned", "won_back"}
TIERS = {"high_value", "potential", "churn_risk", "low_value"}


def check_segments(hashes, rows):
    """Every customer has a segment, a lifecycle stage and a value tier;
    each equals the `to` of its model's last output (and no engagement or
    satisfaction level exists); all its outputs together are seq 1..q,
    each once. Returns the (segment, stage, tier) counts."""
    by = outputs_by_customer(rows)
    counts = collections.Counter()
    bad = []
    for key, h in hashes.items():
        if not key.startswith("cp:c:{"):
            continue
        cid = key[6:-1]
        levels = {m: h[f].decode() if f in h else None
                  for m, f in LEVEL_FIELDS.items()}
        counts[(levels["rfm8"], levels["lifecycle"], levels["value"])] += 1
        data = [json.loads(r["value"])["data"] for r in by.get(cid, [])]
        seqs = [d["seq"] for d in data]
        last_to = {}
        for d in data:
            last_to[d["model"]] = d["to"]
        q = int(h.get("q", b"0"))
        if (levels["rfm8"] not in SEGMENT_CODES
                or levels["lifecycle"] not in STAGES
                or levels["value"] not in TIERS
                or seqs != list(range(1, q + 1))
                or any(last_to.get(m) != lv for m, lv in levels.items())):
            bad.append((cid, levels, q, seqs, last_to))
    check(not bad, lambda: f"{len(bad)} customers with inconsistent "
          f"levels/outputs, e.g. {bad[:3]}")
    check_eq(sum(len(v) for v in by.values()), len(rows), "keyed outputs")
    for r in rows[:200]:  # the envelope, on a sample
        check_record_envelope(r, r["key"].decode(), PARTITIONS)
    return counts


def main():
    want = expected_from_master()
    check_eq(len(want), N_CUSTOMERS, "customers in CDNOW_master.txt")
    lines, per_part = event_lines()
    check_eq(len(lines), N_PURCHASES, "events from cdnow_events.py")

    with Stack() as st:
        st.create_topic(ORDERS_TOPIC, partitions=PARTITIONS)
        with Timer() as t_prod:
            st.produce_lines(ORDERS_TOPIC, lines)
        say(f"produce: {N_PURCHASES} events into {PARTITIONS} partitions "
            f"{per_part} in {t_prod.s:.1f}s")

        cfg = config(st, clock="event", **{"rfm.reference": "live"})
        cp = Custpulse(st, cfg)
        with Timer() as t_run:
            res = cp.run(["run", "--exit-at-end"], timeout=400)
        check_eq(res.returncode, 0, "custpulse run exit code")
        say(f"custpulse run --exit-at-end: {t_run.s:.1f}s, "
            f"{N_PURCHASES / t_run.s:,.0f} events/s (including start-up)")

        r = st.redis(timeout=60)
        with Timer() as t_read:
            hashes = all_hashes(r)
        say(f"read {len(hashes)} hashes in one EVAL in {t_read.s:.1f}s")
        check_customers(hashes, want)
        say(f"o, m, f, l, n, b, lv of all {N_CUSTOMERS} customers equal the "
            "recomputation from CDNOW_master.txt")
        # Besides customers: the population sums, one fencing epoch per
        # orders partition and the due index, one shard per orders
        # partition, holding every customer at its dd.
        check_eq(set(hashes) - {k for k in hashes if k.startswith("cp:c:{")},
                 {"cp:pop"} | {f"cp:ep:{ORDERS_TOPIC}:{p}"
                               for p in range(PARTITIONS)}
                 | {f"cp:due:{p}" for p in range(PARTITIONS)},
                 "keys besides the customers")
        custs = {k[len("cp:c:{"):-1]: {f: v.decode() for f, v in h.items()
                                       if f == "dd"}
                 for k, h in hashes.items() if k.startswith("cp:c:{")}
        check_due_index(r, custs, PARTITIONS)
        exp = check_population(hashes["cp:pop"], want)
        say(f"cp:pop: n={exp['n']} sf={exp['sf']} sm={exp['sm']} "
            f"sl={exp['sl']}")

        committed = st.committed(cfg["kafka.group.id"], ORDERS_TOPIC)
        check_eq(committed, per_part, "committed offsets = end offsets")
        check_eq(st.consume(DLQ_TOPIC), [], "DLQ records")
        with Timer() as t_cons:
            rows = st.consume(SEGMENTS_TOPIC, timeout=120)
        counts = check_segments(hashes, rows)
        say(f"committed {committed}; DLQ empty; {len(rows)} CloudEvents "
            f"(read in {t_cons.s:.1f}s) consistent with s, sl, sv and q")
        say("  customers by (segment, lifecycle, value), the 10 largest:")
        for (seg, stage, tier), n in counts.most_common(10):
            say(f"  {seg:18} {stage:9} {tier:11} {n:6}")

        # Again with the same group: nothing to do, nothing changes.
        # (every assignment takes the fencing epochs anew)
        before = digest_hashes(without_epochs(hashes))
        out_ends = end_offsets(rows)
        with Timer() as t_again:
            res = cp.run(["run", "--exit-at-end"], timeout=120)
        check_eq(res.returncode, 0, "second run exit code")
        after = digest_hashes(without_epochs(all_hashes(r)))
        check_eq(after, before, "digest of all hashes after the second run")
        check_eq(end_offsets(st.consume(SEGMENTS_TOPIC, timeout=120)),
                 out_ends, "output end offsets after the second run")
        check_eq(st.committed(cfg["kafka.group.id"], ORDERS_TOPIC), per_part,
                 "committed offsets after the second run")
        say(f"second run (same group): exit 0 in {t_again.s:.1f}s, hashes "
            f"unchanged (sha256 {before[:16]}), no new output record")
        r.close()
    say(f"test_cdnow_replay: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
