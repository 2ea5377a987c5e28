"""The current layout (4) reads what layout 2 wrote: the upgrade path of
issues 5 and 7.

Layout 3 (docs/contracts.md section 2) keeps the outbox in its own key
<prefix>x:{<id>} and the de-duplication memories e and r in binary;
layout 4 the partition watermarks in one binary field w instead of a
field w:<topic>:<partition> each. A customer written by a version before
layout 3 has lv = 2, e and r as text, a w:<topic>:<partition> field and
maybe an outbox (x, xq) inside its hash - left there by a crash during
the upgrade. This test makes such customers and checks that nothing is
lost or counted twice across the upgrade:

1. Phase 1 (per customer 2-5 orders, a refund) runs to its end. Every hash
   is layout 4 and e, r and w decode - by storecodec.py, written from the
   contract's description - to cpmodel's remembered event ids, orders and
   watermarks.
2. Every hash is turned into its layout-2 form (lv 2, e and r as text, the
   watermark as w:<topic>:<partition>); a
   third of the customers get a legacy outbox in the hash holding their
   last phase-1 CloudEvent (byte for byte), some also an outbox key with
   their previous one (both places at once).
3. Phase 2 for most customers: each re-sends its phase-1 refund (same
   event_id: e must recognise it), places a phase-1 order id again (r),
   refunds and cancels phase-1 orders (r's nets), and places a new order.
   The run crashes (failpoint after_redis_write:1) once the first batch is
   written: every written customer is layout 4, binary, without x/xq or
   w:<topic>:<partition> in its hash, and its outbox key holds the legacy
   records before its new ones.
4. The same group again to the end: the events are skipped as applied,
   the outboxes (planted and new records) produced; every customer with
   phase-2 events equals cpmodel over both phases (lv 4, e, r and w decoded
   exactly; o, m and n would differ had a duplicate been applied), no
   outbox anywhere among them.
5. A new group replays everything: the idle customers (no phase-2 event)
   are read, their legacy outbox produced and cleared by the clear
   script's layout-2 branch (v + 1, x and xq gone, the rest of the layout-2
   hash untouched); nothing else changes. The output topic holds every
   expected CloudEvent and, as byte-identical duplicates, exactly the
   records planted in outboxes; the DLQ is empty.
"""
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
import storecodec  # noqa: E402
from cpcheck import output_check, stopped_line  # noqa: E402
from harness import Custpulse, Stack, config  # noqa: E402
from itest_util import (DLQ_TOPIC, ORDERS_TOPIC, OUTBOX_KEY,  # noqa: E402
                        SEGMENTS_TOPIC, Timer, check, check_customer_states,
                        check_eq, checks_made, customer_hashes, customer_key,
                        order_event, outbox_key, records_for, say,
                        without_epochs, all_hashes)

N_CUSTOMERS = 45
N_IDLE = 6            # the last ones get no phase-2 event
OUTPUT_PARTITIONS = 3
REF = cpmodel.Fixed(recency_days=30, frequency=2, monetary="100.00")
T0 = datetime.datetime(2024, 1, 1, tzinfo=datetime.timezone.utc)
T1 = datetime.datetime(2024, 6, 1, tzinfo=datetime.timezone.utc)


def iso(t):
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def money(minor):
    return cpmodel.money_str(minor)


def generate():
    """(phase-1 events, phase-2 events), times increasing within each
    phase and phase 2 after phase 1 (one partition, clock = event)."""
    p1, p2 = [], []
    for i in range(N_CUSTOMERS):
        cid = f"u-{i:02d}"
        k = 2 + i % 4
        for j in range(k):
            t = T0 + datetime.timedelta(days=j * (3 + i % 5), hours=i)
            p1.append(order_event(f"{cid}-e{j}", "placed", cid, iso(t),
                                  f"{cid}-o{j}",
                                  money(500 + (i * 3701 + j * 1117) % 29000)))
        t = T0 + datetime.timedelta(days=k * 5, hours=i)
        p1.append(order_event(f"{cid}-e{k}", "refunded", cid, iso(t),
                              f"{cid}-o0", money(100)))
    p1.sort(key=lambda e: e["occurred_at"])
    for i in range(N_CUSTOMERS - N_IDLE):
        cid = f"u-{i:02d}"
        k = 2 + i % 4
        t = T1 + datetime.timedelta(hours=i)

        def at(n):
            return iso(t + datetime.timedelta(days=n))
        # The phase-1 refund again (same event_id): only e can tell, and
        # applied twice it would take m down once more.
        refund = next(e for e in p1 if e["event_id"] == f"{cid}-e{k}")
        p2.append(dict(refund))
        p2.append(order_event(f"{cid}-again", "placed", cid, at(0),
                              f"{cid}-o1", money(999)))   # same order: r
        p2.append(order_event(f"{cid}-rf", "refunded", cid, at(1),
                              f"{cid}-o1", money(250)))
        if i % 2:
            p2.append(order_event(f"{cid}-cx", "cancelled", cid, at(2),
                                  f"{cid}-o{k - 1}", money(1)))
        p2.append(order_event(f"{cid}-new", "placed", cid, at(3),
                              f"{cid}-o9", money(4200 + i)))
    p2.sort(key=lambda e: e["occurred_at"])
    return p1, p2


def base_config(st, **extra):
    return config(st, clock="event", **REF.config(), **extra)


def run(st, cfg, what, want_rc=0, env=None):
    """(seconds, counters of the stopped line) of one --exit-at-end run."""
    cp = Custpulse(st, cfg, name=what, env=env)
    with Timer() as t:
        res = cp.run(["run", "--exit-at-end"], timeout=180)
    check_eq(res.returncode, want_rc, f"{what}: exit status\n"
             f"{res.stderr[-3000:]}")
    return t.s, stopped_line(cp)


def raw(v):
    return v.encode("utf-8", "surrogateescape") if isinstance(v, str) else v


# ---------------------------------------------------------------------------
# 2. the layout-2 form the previous version wrote
# ---------------------------------------------------------------------------

def downgrade(r, hashes, rows):
    """Rewrites every customer hash as layout 2 and plants outboxes.
    Returns ({cid: planted records (value bytes)}, {cid: legacy x text})."""
    by_cust = {}
    for row in rows:
        ev = json.loads(row["value"])
        by_cust.setdefault(ev["subject"], []).append((ev["data"]["seq"],
                                                      row["value"]))
    planted, legacy = {}, {}
    for n, cid in enumerate(sorted(hashes)):
        h = hashes[cid]
        e, rr = storecodec.stored_memories(h)
        key = customer_key(cid)
        r.cmd("HSET", key, "lv", "2", "e", storecodec.text_e(e),
              "r", storecodec.text_r(rr))
        r.cmd("HDEL", key, "w")
        for f, off in h.items():
            if f.startswith("w:#"):
                r.cmd("HSET", key, legacy_w(f), off)
        if n % 3:
            continue
        recs = sorted(by_cust[cid])
        seq, value = recs[-1]
        x = b"s\t" + value + b"\n"
        r.cmd("HSET", key, "x", x, "xq", str(seq))
        planted[cid] = [value]
        legacy[cid] = x
        if n % 6 == 0 and len(recs) > 1:
            seq2, value2 = recs[-2]
            r.cmd("HSET", outbox_key(cid), "x", b"s\t" + value2 + b"\n",
                  "xq", str(seq2))
            planted[cid].append(value2)
    return planted, legacy


# ---------------------------------------------------------------------------
# 3. after the crash: what the first written batch moved
# ---------------------------------------------------------------------------

def legacy_w(field):
    """The layout-3 name of a watermark expand_w shows as field."""
    p = int(field.rsplit(":", 1)[1])
    check_eq(field, storecodec.w_field(ORDERS_TOPIC, p), "watermark field")
    return f"w:{ORDERS_TOPIC}:{p}"


def check_moved(r, legacy):
    hashes = customer_hashes(r)
    moved = 0
    written = [c for c, h in hashes.items() if h.get("lv") == "4"]
    check(written, "the crashed run wrote some customers")
    for cid in written:
        h = hashes[cid]
        storecodec.stored_memories(h)   # binary, or ValueError
        check(not {"x", "xq"} & set(h), f"{cid}: x/xq left in a written "
              "layout-4 hash")
        check([f for f in h if f.startswith("w:")] ==
              [storecodec.w_field(ORDERS_TOPIC, 0)],
              f"{cid}: not exactly one watermark, in w: {sorted(h)}")
        if cid not in legacy:
            continue
        x = raw(h.get(OUTBOX_KEY, ""))
        check(x.startswith(legacy[cid]), f"{cid}: the outbox key does not "
              f"begin with the legacy outbox: {x[:120]!r}")
        check(x.count(b"\n") > legacy[cid].count(b"\n"),
              f"{cid}: no new record after the legacy ones")
        moved += 1
    check(moved > 0, "the crashed run moved no legacy outbox")
    return len(written), moved


def main():
    p1, p2 = generate()
    produce1, recs1 = records_for(p1)
    produce2, recs2 = records_for(p2, first_offset=len(p1))
    cust1, _ = cpmodel.replay(recs1, REF)
    customers, outputs = cpmodel.replay(recs1 + recs2, REF)
    idle = {f"u-{i:02d}" for i in range(N_CUSTOMERS - N_IDLE, N_CUSTOMERS)}
    active = set(customers) - idle
    with Stack() as st:
        st.create_topic(ORDERS_TOPIC, partitions=1)
        st.produce(ORDERS_TOPIC, produce1)
        # Static membership: the run after the crash takes the crashed
        # member's place at once instead of waiting out its session.
        cfg = base_config(st, **{"kafka.group.instance.id": "upgrade"})
        s, _ = run(st, cfg, "phase1")
        r = st.redis()
        hashes = customer_hashes(r)
        check_customer_states(hashes, cust1)
        say(f"1. phase 1: {len(p1)} events in {s:.1f}s; {len(cust1)} "
            "layout-4 hashes equal cpmodel, e, r and w decoded exactly")

        rows1 = st.consume(SEGMENTS_TOPIC)
        planted, legacy = downgrade(r, hashes, rows1)
        n_planted = sum(len(v) for v in planted.values())
        both = sum(len(v) > 1 for v in planted.values())
        check(both > 0 and len(set(planted) & idle) > 0,
              "outboxes planted in both places and for idle customers")
        say(f"2. every hash rewritten as layout 2 (text e and r, "
            f"w:<topic>:<partition>); legacy "
            f"outbox in {len(planted)} hashes ({both} also with an outbox "
            f"key): {n_planted} records planted")

        st.produce(ORDERS_TOPIC, produce2)
        s, _ = run(st, cfg, "phase2-crash", want_rc=-9,
                env={"CUSTPULSE_FAILPOINT": "after_redis_write:1"})
        written, moved = check_moved(r, legacy)
        say(f"3. phase 2 crashed after its first write round ({s:.1f}s): "
            f"{written} customers written as layout 4, {moved} legacy "
            "outboxes moved into the outbox key (ahead of the new records), "
            "no x/xq or w:<topic>:<partition> left in those hashes")

        s, counters = run(st, cfg, "phase2")
        hashes = customer_hashes(r)
        check_customer_states({c: hashes[c] for c in active},
                              {c: customers[c] for c in active})
        # The crashed run applied the batch; this one skips it and
        # produces the outboxes: the new records and the planted ones
        # (each once).
        new_out = len(outputs) - len(rows1)
        planted_active = sum(len(v) for c, v in planted.items()
                             if c in active)
        check_eq((counters.get("skipped_redelivered"), counters.get("outputs")),
                 (len(p2), new_out + planted_active),
                 "phase 2 run after the crash: (skipped, outputs)")
        say(f"4. phase 2 to its end ({s:.1f}s): {len(p2)} events skipped as "
            f"applied, {new_out} new and {planted_active} planted records "
            f"produced; {len(active)} customers equal cpmodel over both "
            "phases (the layout-2 text memories recognised the re-sent "
            "refunds and order ids), no outbox")

        before = without_epochs(all_hashes(r))
        keys_x = {outbox_key(c) for c in idle & set(planted)
                  if len(planted[c]) > 1}
        check_eq(sorted(k for k in before if k.startswith("cp:x:")),
                 sorted(keys_x), "outbox keys before the replay (idle "
                 "customers' planted ones)")
        s, _ = run(st, base_config(st), "replay")
        after = without_epochs(all_hashes(r))
        check_eq(sorted(after), sorted(set(before) - keys_x),
                 "keys after the replay")
        for k in sorted(set(before) - keys_x):
            if k not in {customer_key(c) for c in idle & set(legacy)}:
                check_eq(after[k], before[k], f"{k} unchanged by the replay")
                continue
            want = {f: v for f, v in before[k].items() if f not in ("x", "xq")}
            want["v"] = str(int(before[k]["v"]) + 1).encode()
            check_eq(after[k], want, f"{k}: legacy outbox cleared")
            check_eq(after[k]["lv"], b"2", f"{k}: still layout 2")
        hashes = customer_hashes(r)
        left = [c for c, h in hashes.items() if {"x", "xq", OUTBOX_KEY}
                & set(h)]
        check_eq(left, [], "customers with an outbox after the replay")
        for cid in idle:
            want = {legacy_w(f) if f.startswith("w:#") else f: v
                    for f, v in cpmodel.expected_hash(customers[cid]).items()}
            want["lv"] = "2"
            check_eq({f: hashes[cid].get(f) for f in want}, want,
                     f"idle {cid} (layout 2)")
        say(f"5. replay with a new group ({s:.1f}s): idle customers' legacy "
            "outboxes produced and cleared (v + 1, still layout 2), "
            "nothing else changed")

        rows = st.consume(SEGMENTS_TOPIC)
        dups, problems = output_check(rows, outputs, OUTPUT_PARTITIONS)
        check_eq(problems, [], "output topic")
        check_eq(dups, n_planted, "duplicates = planted outbox records")
        check_eq(st.consume(DLQ_TOPIC), [], "DLQ records")
        say(f"   output: {len(outputs)} CloudEvents as {len(rows)} records, "
            f"the {dups} duplicates byte-identical: the planted ones; DLQ "
            "empty")
        r.close()
    say(f"test_layout_upgrade: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
