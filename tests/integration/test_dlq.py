"""Guarantee 4 (docs/contracts.md section 1): bad input never stops the
consumer and never touches state.

Run 1 applies a few valid events of two customers (c-1 and c-2, the ids the
decode cases use, so a reject that touched "its" customer would show) and
snapshots Redis and the output topic. Run 2 (same group) consumes every
invalid case of tests/cases/decode/, a generated oversize message and a few
cases carrying a PII marker, each with original headers, then one valid
event of a third customer. Checked: the dead-letter topic holds exactly one
record per bad message, in order, byte-identical key/value, original headers
first, then the five cp.* headers (class, a message that does not echo the
customer id, source topic/partition/offset); Redis is unchanged except for
the third customer, whose state and segment change equal cpmodel's; the
output topic gained only that change; the committed offset is the end.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
from cpcheck import (Stopwatch, expect, first_diffs,  # noqa: E402
                     model_records, output_check, state_diffs, stopped_line)
from harness import (SOURCE_DIR, Custpulse, Stack, config,  # noqa: E402
                     topic_name)
from itest_util import all_hashes, customer_hashes, order_event  # noqa: E402

TOPIC = topic_name("customer.orders")
SEGMENTS = topic_name("customer.segment-changes")
DLQ = topic_name("custpulse.dlq")
PREFIX = "cp:"
MAX_BYTES = 65536  # input.max_bytes, set explicitly below
CASES_DIR = os.path.join(SOURCE_DIR, "tests", "cases", "decode")
DLQ_HEADERS = ["cp.error.class", "cp.error.message", "cp.source.topic",
               "cp.source.partition", "cp.source.offset"]
# A customer id nobody would write by accident: it must never appear in a
# cp.error.message (the message names the field, never echoes its value).
MARK = "PII-Zq7x-Marker"
FIXED = cpmodel.Fixed()


ev = order_event  # (event_id, "placed"|"refunded"|"cancelled", customer, ...)


def valid(e):
    return {"key": e["customer_id"], "value": json.dumps(e).encode()}


# Run 1: c-1 becomes general_develop then important_value; c-2 has a
# refund, an upstream duplicate and a cancellation. Run 2: c-3, later than
# all of them (so the per-instance event clock agrees with cpmodel's).
RUN1 = [
    ev("e-c1-1", "placed", "c-1", "2024-01-05T10:00:00Z", "o-1", "40.00"),
    ev("e-c2-1", "placed", "c-2", "2024-01-06T11:00:00+01:00", "o-1",
       "30.00"),
    ev("e-c2-2", "refunded", "c-2", "2024-01-07T09:00:00Z", "o-1",
       "10.00"),
    ev("e-c2-2", "refunded", "c-2", "2024-01-07T09:00:00Z", "o-1",
       "10.00"),
    ev("e-c1-2", "placed", "c-1", "2024-01-20T12:30:00Z", "o-2", 70),
    ev("e-c2-3", "placed", "c-2", "2024-01-21T08:00:00Z", "o-2", "5.5"),
    ev("e-c2-4", "cancelled", "c-2", "2024-01-22T08:00:00Z", "o-2",
       "5.50"),
]
RUN2_VALID = ev("e-c3-1", "placed", "c-3", "2024-02-01T00:00:00.5Z",
                "o-1", "150.00")


def read_cases():
    """Every invalid decode case: (name, class, key bytes|None, value)."""
    cases = []
    for name in sorted(os.listdir(CASES_DIR)):
        d = os.path.join(CASES_DIR, name)
        with open(os.path.join(d, "class")) as f:
            cls = f.read().strip()
        if cls == "none":
            continue
        key = None
        if os.path.exists(os.path.join(d, "key")):
            with open(os.path.join(d, "key"), "rb") as f:
                key = f.read()
        with open(os.path.join(d, "value"), "rb") as f:
            value = f.read()
        cases.append((name, cls, key, value))
    return cases


def oversize_value():
    """Valid-looking JSON of exactly input.max_bytes + 1 bytes."""
    e = ev("e-big", "placed", MARK, "2024-02-01T00:00:00Z", "o-big",
           "1.00")
    e["pad"] = ""
    base = len(json.dumps(e).encode())
    e["pad"] = "x" * (MAX_BYTES + 1 - base)
    v = json.dumps(e).encode()
    assert len(v) == MAX_BYTES + 1
    return v


def marker_cases():
    """Generated cases whose customer id (and key) is MARK-bearing."""
    at = "2024-02-01T00:00:00Z"
    long_id = (MARK * 10)[:129]

    def c(name, cls, e, key=MARK):
        return (name, cls, key.encode(), json.dumps(e).encode())
    return [
        c("gen_marker_key_mismatch", "key_mismatch",
          ev("e-m1", "placed", MARK, at, "o-m", "1.00"),
          key=MARK + "-other"),
        c("gen_marker_customer_id_too_long", "invalid_customer_id",
          ev("e-m2", "placed", long_id, at, "o-m", "1.00"),
          key=long_id),
        c("gen_marker_amount", "invalid_amount",
          ev("e-m3", "placed", MARK, at, "o-m", "-0.01")),
        c("gen_marker_timestamp", "invalid_timestamp",
          ev("e-m4", "placed", MARK, "2024-02-30T00:00:00Z", "o-m",
             "1.00")),
        c("gen_marker_currency", "currency_mismatch",
          ev("e-m5", "placed", MARK, at, "o-m", "1.00", "EUR")),
        c("gen_marker_type", "unknown_event_type",
          ev("e-m6", "returned", MARK, at, "o-m", "1.00")),
        ("gen_oversize", "oversize", MARK.encode(), oversize_value()),
    ]


def original_headers(name):
    """Each bad message's own headers; the oversize one also carries a
    binary and a null header value, which must survive too."""
    h = [("trace", b"case-" + name.encode())]
    if name == "gen_oversize":
        h += [("bin", b"\x00\xff\x80"), ("nullhdr", None)]
    return h


def pii_values(key, value):
    """Strings that must not appear in the error message: the customer id
    (when the value has a non-empty string one) and the key, if it is a
    marker or equals that customer id."""
    out = set()
    try:
        obj = json.loads(value)
    except ValueError:
        obj = None
    cid = obj.get("customer_id") if isinstance(obj, dict) else None
    if isinstance(cid, str) and cid:
        out.add(cid.replace("\0", ""))
    if key and (MARK.encode() in key or
                (isinstance(cid, str) and key == cid.encode())):
        out.add(key.decode("utf-8", "replace"))
    return sorted(o for o in out if o)


def snapshot_redis(r):
    """(DBSIZE, {key: {field: value bytes}}) of the whole database."""
    return r.dbsize(), all_hashes(r)


def run_once(st, cfg, what):
    cp = Custpulse(st, cfg, name=what)
    t = Stopwatch()
    res = cp.run(["run", "--exit-at-end"], timeout=120)
    expect(res.returncode == 0, f"{what}: custpulse exit status",
           f"{res.returncode}\n{res.stderr[-3000:]}")
    counters = stopped_line(cp)
    print(f"{what}: exit 0 in {t.s():.1f}s; events={counters.get('events')} "
          f"dlq={counters.get('dlq')} outputs={counters.get('outputs')} "
          f"batches={counters.get('batches')}")
    return counters


def check_dlq_record(rec, bad, in_offset):
    """One dead-letter record against the bad message it stands for."""
    name, cls, key, value, headers = bad
    where = f"DLQ record for {name}"
    expect(rec["key"] == key, f"{where}: key", f"{rec['key']!r} != {key!r}")
    expect(rec["value"] == value, f"{where}: value not byte-identical",
           f"{len(rec['value'] or b'')} vs {len(value)} bytes")
    n = len(headers)
    expect(rec["headers"][:n] == headers, f"{where}: original headers first",
           rec["headers"])
    extra = rec["headers"][n:]
    expect([h for h, _ in extra] == DLQ_HEADERS, f"{where}: cp.* headers",
           extra)
    got = {h: (v or b"").decode("utf-8", "replace") for h, v in extra}
    expect(got["cp.error.class"] == cls, f"{where}: class",
           f"{got['cp.error.class']} != {cls}")
    msg = got["cp.error.message"]
    expect(msg.strip() != "", f"{where}: empty cp.error.message")
    for pii in pii_values(key, value):
        expect(pii not in msg, f"{where}: cp.error.message echoes the "
               f"customer id {pii!r}", msg)
    expect(got["cp.source.topic"] == TOPIC, f"{where}: source topic",
           got["cp.source.topic"])
    expect(got["cp.source.partition"] == "0", f"{where}: source partition",
           got["cp.source.partition"])
    expect(got["cp.source.offset"] == str(in_offset), f"{where}: source "
           f"offset", f"{got['cp.source.offset']} != {in_offset}")
    return msg


def main():
    total = Stopwatch()
    with Stack() as st:
        st.create_topic(TOPIC, partitions=1)
        # One partition for DLQ and outputs too, so "in order" is exact.
        cfg = config(st, **FIXED.config(), **{
            "topic.orders": TOPIC, "topic.segments": SEGMENTS,
            "topic.dlq": DLQ, "topic.partitions": 1, "clock": "event",
            "input.max_bytes": MAX_BYTES, "redis.key_prefix": PREFIX,
            # Small batches: all-invalid batches and a mixed last batch.
            "batch.size": 7})

        # ---- run 1: valid events of c-1 and c-2 -------------------------
        st.produce(TOPIC, [valid(e) for e in RUN1])
        run_once(st, cfg, "run1")
        r = st.redis()
        rows1 = st.consume(TOPIC)
        customers, outputs = cpmodel.replay(model_records(rows1, TOPIC),
                                            FIXED)
        diffs = state_diffs(customer_hashes(r, PREFIX), customers)
        expect(not diffs, "run1 state != cpmodel", first_diffs(diffs))
        out1 = st.consume(SEGMENTS)
        dups, problems = output_check(out1, outputs, 1)
        expect(not problems and dups == 0, "run1 outputs",
               first_diffs(problems))
        expect(st.consume(DLQ) == [], "run1: DLQ not empty")
        size0, snap = snapshot_redis(r)
        print(f"run1: {len(rows1)} events, {len(customers)} customers, "
              f"{len(out1)} outputs; snapshot DBSIZE={size0}")

        # ---- run 2: every bad message, then c-3 -------------------------
        bad = [(n, c, k, v, original_headers(n))
               for n, c, k, v in read_cases() + marker_cases()]
        classes = sorted({b[1] for b in bad})
        st.produce(TOPIC, [{"key": k, "value": v, "headers": h}
                           for _, _, k, v, h in bad] + [valid(RUN2_VALID)])
        counters = run_once(st, cfg, "run2")

        rows = st.consume(TOPIC)
        expect(len(rows) == len(rows1) + len(bad) + 1, "input topic size",
               len(rows))
        in_off = {}
        for row in rows[len(rows1):len(rows1) + len(bad)]:
            trace = dict(row["headers"]).get("trace", b"")
            in_off[trace.decode()[len("case-"):]] = row["offset"]
        expect(len(in_off) == len(bad), "input offsets of bad messages",
               in_off)

        dlq = st.consume(DLQ)
        expect(len(dlq) == len(bad), "DLQ records",
               f"{len(dlq)} != {len(bad)} bad messages")
        expect(all(d["partition"] == 0 for d in dlq), "DLQ partition")
        print(f"\n{'case':34} {'class':20} {'in off':>6}  cp.error.message")
        for rec, b in zip(dlq, bad):
            msg = check_dlq_record(rec, b, in_off[b[0]])
            print(f"{b[0]:34} {b[1]:20} {in_off[b[0]]:>6}  {msg[:60]}")
        print(f"\nDLQ: {len(dlq)} records = {len(bad)} bad messages, "
              f"{len(classes)} classes: {', '.join(classes)}")
        expect(counters.get("dlq") == len(bad), "run2 'stopped' dlq count",
               counters)

        # Redis: the snapshot untouched, plus exactly c-3.
        size1, after = snapshot_redis(r)
        expect(size1 == size0 + 1, "DBSIZE", f"{size1} != {size0} + 1")
        epkey = f"{PREFIX}ep:{TOPIC}:0"
        for k, h in snap.items():
            if k != epkey:
                expect(after.get(k) == h, f"hash {k!r} changed",
                       f"{h} -> {after.get(k)}")
        # The partition's position moved past c-3's event (the last one),
        # not past any bad message.
        expect(after[epkey]["o"] == str(rows[-1]["offset"] + 1).encode(),
               "partition position o after run2",
               f"{after[epkey]} (c-3 at offset {rows[-1]['offset']})")
        new_keys = sorted(set(after) - set(snap))
        c3_key = f"{PREFIX}c:{{c-3}}"
        expect(new_keys == [c3_key], "new Redis keys", new_keys)
        customers, outputs = cpmodel.replay(
            model_records(rows1 + [rows[-1]], TOPIC), FIXED)
        diffs = state_diffs(customer_hashes(r, PREFIX), customers)
        expect(not diffs, "state after run2 != cpmodel", first_diffs(diffs))
        print(f"Redis: DBSIZE {size0} -> {size1}; {len(snap)} snapshot "
              f"hashes byte-identical; c-3 = cpmodel "
              f"{cpmodel.expected_hash(customers['c-3'])}")

        # Outputs: run 1's records unchanged, then only c-3's change(s).
        out2 = st.consume(SEGMENTS)
        expect(out2[:len(out1)] == out1, "run1 output records changed")
        new = out2[len(out1):]
        expected_new = [o for o in outputs if o["subject"] == "c-3"]
        dups, problems = output_check(new, expected_new, 1)
        expect(not problems and dups == 0, "run2 outputs",
               first_diffs(problems))
        print(f"outputs: {len(out1)} -> {len(out2)} (new: "
              + ", ".join(f"{o['subject']} {o['data']['model']} "
                          f"{o['data']['from']}->"
                          f"{o['data']['to']}" for o in expected_new) + ")")

        committed = st.committed(cfg["kafka.group.id"], TOPIC)
        expect(committed == {0: len(rows)}, "committed offset",
               f"{committed} != end {len(rows)}")
        print(f"committed offset {committed[0]} = end offset {len(rows)}")
        r.close()
    print(f"test_dlq passed in {total.s():.1f}s")


if __name__ == "__main__":
    main()
