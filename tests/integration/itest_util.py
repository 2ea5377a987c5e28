"""itest_util.py - helpers shared by custpulse's integration tests.

harness.py runs the services; cpmodel.py computes what custpulse must do;
this module holds what the tests themselves need on top: checks that raise
(so `python -O` cannot strip them), order-event builders, reading every
customer hash in one round trip, offsets of a topic, the output topic
grouped by customer, and timing/reporting.

Python 3 standard library only.
"""
import hashlib
import json
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "data"))

import cpmodel  # noqa: E402
import storecodec  # noqa: E402
from cdnow_events import kafka_partition  # noqa: E402,F401  (re-exported)
from harness import topic_name  # noqa: E402

# custpulse's default names; on the shared broker in this test's namespace
# (harness.py), which config() gives custpulse too.
ORDERS_TOPIC = topic_name("customer.orders")
SEGMENTS_TOPIC = topic_name("customer.segment-changes")
DLQ_TOPIC = topic_name("custpulse.dlq")
CE_CONTENT_TYPE = b"application/cloudevents+json"

# Fields of a customer hash that cpmodel.expected_hash() does not cover.
INTERNAL_FIELDS = {"v", "e", "r", "dd"}
# dd (the next evaluation instant, scoring/due.c) is not mirrored by
# cpmodel: check_customer_states checks its form and the due index
# (check_due_index) its copy; test_churn_events compares it with values
# worked out by hand.
# customer_hashes() shows a customer's outbox key <prefix>x:{<id>} (layout
# 3), when it exists, as this pseudo-field holding the key's x; an outbox
# written by layout 2 or before is x and xq inside the hash. A check for
# "no outbox left" on OUTBOX_FIELDS covers both places.
OUTBOX_KEY = "<outbox key>"
OUTBOX_FIELDS = {"x", "xq", OUTBOX_KEY}


def schema_validator(path, ref=None):
    """A JSON Schema validator (formats checked) of the schema file at path,
    or of the part of it at ref ("#/$defs/data"). Needs jsonschema
    (Debian's python3-jsonschema), imported here so that tests without
    schemas do not."""
    try:
        import jsonschema
    except ImportError:  # an interpreter beside Debian's: use its package
        sys.path.append("/usr/lib/python3/dist-packages")
        import jsonschema
    with open(path) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    if ref is not None:
        schema = {"$schema": schema["$schema"], "$ref": ref,
                  "$defs": schema.get("$defs", {})}
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


# ---------------------------------------------------------------------------
# Checks and reporting
# ---------------------------------------------------------------------------

class CheckFailed(AssertionError):
    """A test expectation that did not hold."""


_n_checks = 0


def check(cond, msg):
    """Raises CheckFailed(msg) unless cond; counts the checks made."""
    global _n_checks
    _n_checks += 1
    if not cond:
        raise CheckFailed(msg() if callable(msg) else msg)


def check_eq(got, want, what):
    """Exact equality; the failure names what and shows both sides (and, for
    dicts, the keys that differ)."""
    if got == want:
        check(True, "")
        return
    detail = ""
    if isinstance(got, dict) and isinstance(want, dict):
        keys = sorted(set(got) | set(want), key=str)
        diff = [f"    {k!r}: got {got.get(k, '<absent>')!r}, "
                f"want {want.get(k, '<absent>')!r}"
                for k in keys if got.get(k, object()) != want.get(k, object())]
        detail = "\n" + "\n".join(diff[:40])
    check(False, f"{what}: got {got!r}\n  want {want!r}{detail}")


def checks_made():
    return _n_checks


def say(msg):
    """What the test checked, with figures: stdout, flushed."""
    print(msg, flush=True)


class Timer:
    """with Timer() as t: ...; t.s is the elapsed seconds."""

    def __enter__(self):
        self.t0 = time.monotonic()
        self.s = None
        return self

    def __exit__(self, *exc):
        self.s = time.monotonic() - self.t0
        return False


# ---------------------------------------------------------------------------
# Order events
# ---------------------------------------------------------------------------

def order_event(event_id, etype, customer, occurred_at, order_id, amount,
                currency="USD"):
    """One contract order event as a dict (amount: str, int or float, sent
    as written)."""
    return {"event_id": event_id, "type": "order." + etype,
            "customer_id": customer, "occurred_at": occurred_at,
            "order_id": order_id, "amount": amount, "currency": currency}


def records_for(events, topic=ORDERS_TOPIC, partition=0, first_offset=0):
    """(records for Stack.produce, records for cpmodel.replay): one
    partition, offsets in order from first_offset."""
    produce = [{"key": ev["customer_id"], "value": ev, "partition": partition}
               for ev in events]
    model = [{"value": ev, "topic": topic, "partition": partition,
              "offset": first_offset + i} for i, ev in enumerate(events)]
    return produce, model


# ---------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------

# Every key under a prefix with all its fields, in one round trip:
# {key, {field, value, ...}, key, {...}, ...}. KEYS inside a script is fine
# for a test database of a few ten thousand keys.
_ALL_HASHES_LUA = """
local out = {}
for _, k in ipairs(redis.call('KEYS', ARGV[1])) do
  out[#out + 1] = k
  if redis.call('TYPE', k)['ok'] == 'hash' then
    out[#out + 1] = redis.call('HGETALL', k)
  else
    out[#out + 1] = {'<type>', redis.call('TYPE', k)['ok']}
  end
end
return out
"""


def all_hashes(redis, pattern="*"):
    """{key (str): {field (str): value (bytes)}} for every key matching
    pattern (a non-hash key shows as {"<type>": type})."""
    flat = redis.cmd("EVAL", _ALL_HASHES_LUA, 0, pattern)
    out = {}
    for k, fields in zip(flat[::2], flat[1::2]):
        out[k.decode("utf-8", "surrogateescape")] = {
            f.decode("utf-8", "surrogateescape"): v
            for f, v in zip(fields[::2], fields[1::2])}
    return out


def without_epochs(hashes, prefix="cp:"):
    """hashes (all_hashes) without the partitions' fencing epochs (field e
    of <prefix>ep:*), which every assignment takes anew by design; the
    partitions' positions (o, f) stay."""
    return {k: {f: v for f, v in h.items()
                if not (f == "e" and k.startswith(prefix + "ep:"))}
            for k, h in hashes.items()}


def customer_key(cid, prefix="cp:"):
    return f"{prefix}c:{{{cid}}}"


def outbox_key(cid, prefix="cp:"):
    return f"{prefix}x:{{{cid}}}"


def customer_hashes(redis, prefix="cp:"):
    """{customer id: {field: value (str, surrogateescape)}} of every
    customer hash, plus OUTBOX_KEY: the x of the customer's outbox key
    where one exists."""
    start, out = len(prefix) + 3, {}
    for k, h in all_hashes(redis, prefix + "c:*").items():
        check(k.startswith(prefix + "c:{") and k.endswith("}"),
              f"unexpected customer key {k!r}")
        out[k[start:-1]] = storecodec.expand_w(
            {f: v.decode("utf-8", "surrogateescape") for f, v in h.items()})
    for k, h in all_hashes(redis, prefix + "x:*").items():
        check(k.startswith(prefix + "x:{") and k.endswith("}"),
              f"unexpected outbox key {k!r}")
        out.setdefault(k[start:-1], {})[OUTBOX_KEY] = h.get(
            "x", b"").decode("utf-8", "surrogateescape")
    return out


def digest_hashes(hashes):
    """sha256 over every key, field and value (sorted): equal digests mean
    byte-identical hashes."""
    h = hashlib.sha256()
    for k in sorted(hashes):
        h.update(b"K" + k.encode("utf-8", "surrogateescape") + b"\0")
        for f in sorted(hashes[k]):
            v = hashes[k][f]
            if isinstance(v, str):
                v = v.encode("utf-8", "surrogateescape")
            h.update(b"F" + f.encode("utf-8", "surrogateescape") + b"\0" +
                     v + b"\0")
    return h.hexdigest()


def check_customer_states(got, customers, prefix="cp:"):
    """Every customer hash equals cpmodel.expected_hash() on those fields
    (layout 4: lv, o, m, q, n, f, l, b, s, sl, se, ss, sv, sc, yw, g, gc,
    k, a:*, w:* as the model has them), v is a positive integer, e and r
    are the only other fields and decode (storecodec, as the contract
    describes them) to the model's remembered event ids and orders, no
    outbox is left (no outbox key, no x/xq in the hash), and the set of
    customers is exactly the model's. got: customer_hashes(). Returns the
    compared field names."""
    check_eq(sorted(got), sorted(customers), "customers in Redis")
    compared = set()
    for cid, c in customers.items():
        h = got[cid]
        want = cpmodel.expected_hash(c)
        compared |= set(want)
        check_eq({f: h.get(f) for f in want}, want,
                 f"hash {customer_key(cid, prefix)!r}")
        v = h.get("v", "")
        check(v.isdigit() and int(v) > 0,
              f"{cid!r}: v = {v!r} is not a positive integer")
        left = set(h) - set(want) - INTERNAL_FIELDS
        check(not left & OUTBOX_FIELDS,
              f"{cid!r}: outbox left after the run (the outbox key, or "
              f"x/xq in the hash): {sorted(left & OUTBOX_FIELDS)}")
        check(not left, f"{cid!r}: unexpected fields {sorted(left)}")
        dd = h.get("dd")
        check(dd is None or (dd.isdigit() and dd[0] != "0"),
              f"{cid!r}: dd = {dd!r} is not a positive integer")
        check_eq(storecodec.stored_memories(h),
                 storecodec.model_memories(c),
                 f"{cid!r}: e and r decoded (event-id hashes; order hash, "
                 "net, cancelled, day)")
    return compared


def due_keys(redis, prefix="cp:"):
    """The due index shards, <prefix>due:<shard>."""
    return sorted(redis.keys(prefix + "due:*"))


def check_due_index(redis, hashes, shards, prefix="cp:"):
    """The due index holds exactly the customers with a dd, each at its dd
    in shard murmur2(id) mod shards (the partition Kafka's default
    partitioner gives the id). hashes: customer_hashes()."""
    want = {}
    for cid, h in hashes.items():
        if "dd" in h:
            shard = kafka_partition(cid.encode(), shards)
            want.setdefault(f"{prefix}due:{shard}", {})[cid] = int(h["dd"])
    got = {}
    for k in due_keys(redis, prefix):
        flat = redis.cmd("ZRANGE", k, 0, -1, "WITHSCORES")
        got[k] = {m.decode(): int(float(sc)) for m, sc in
                  zip(flat[::2], flat[1::2])}
    check_eq(got, want, "due index (shard: {customer: dd})")
    return want


def check_near(got, want, what, tol=1e-9):
    """got == want, except that numbers (int or float) need only be within
    tol of each other; dicts compare key by key, lists item by item."""
    def diffs(g, w, path):
        num = (int, float)
        if isinstance(w, bool) or isinstance(g, bool):
            return [] if g is w else [(path, g, w)]
        if isinstance(w, num) and isinstance(g, num):
            return [] if abs(g - w) <= tol else [(path, g, w)]
        if isinstance(w, dict) and isinstance(g, dict):
            out = []
            for k in sorted(set(g) | set(w), key=str):
                if k not in g or k not in w:
                    out.append((f"{path}.{k}", g.get(k, "<absent>"),
                                w.get(k, "<absent>")))
                else:
                    out += diffs(g[k], w[k], f"{path}.{k}")
            return out
        if isinstance(w, list) and isinstance(g, list) and len(g) == len(w):
            return [d for i, (a, b) in enumerate(zip(g, w))
                    for d in diffs(a, b, f"{path}[{i}]")]
        return [] if g == w else [(path, g, w)]
    found = diffs(got, want, "")
    check(not found, lambda: f"{what}: " + "; ".join(
        f"{p or '.'}: got {g!r}, want {w!r}" for p, g, w in found[:20]))


def check_inspect(got, c, hashes_v, tol=1e-9):
    """`custpulse inspect` JSON (parsed) against cpmodel customer c: the
    state fields exactly, layout 4, the events count, the profile, and the
    models section evaluated at its own evaluated_at (wall clock) with
    floats within tol. hashes_v: the customer's v from Redis."""
    cid = c.cid
    want = {
        "customer_id": cid, "orders": c.orders,
        "monetary": cpmodel.money_str(c.monetary), "currency": "USD",
        "first_order_at": cpmodel.format_time_ms(c.first)
        if c.first is not None else None,
        "last_order_at": cpmodel.format_time_ms(c.last)
        if c.last is not None else None,
        "segment": c.segment, "version": int(hashes_v),
        "seq": c.seq,
        "offsets": {f"{t}:{p}": o for (t, p), o in c.watermarks.items()},
        "layout": 4, "events": c.events, "profile": dict(c.attrs),
    }
    check_eq({k: got.get(k, "<absent>") for k in want}, want,
             f"inspect {cid!r}")
    extra = {k: v for k, v in got.items() if k not in want and k != "models"}
    # Not in the contract's example; if present it must say nothing pending.
    check(extra in ({}, {"pending_outputs": 0}),
          f"inspect {cid!r}: unexpected fields {extra}")
    models = got.get("models")
    check(isinstance(models, dict) and "evaluated_at" in models,
          f"inspect {cid!r}: no models section: {models!r}")
    now = cpmodel.parse_time_ms(models["evaluated_at"])
    check_near(models, c.inspect_models(now), f"inspect {cid!r} models", tol)
    return models


# ---------------------------------------------------------------------------
# Kafka
# ---------------------------------------------------------------------------

def end_offsets(rows):
    """{partition: high watermark} from Stack.consume() rows of a topic that
    only ever received plain (non-transactional) appends."""
    ends = {}
    for r in rows:
        ends[r["partition"]] = max(ends.get(r["partition"], 0),
                                   r["offset"] + 1)
    return ends


def outputs_by_customer(rows):
    """Stack.consume() rows of the segments topic -> {customer id: [rows in
    offset order]} (one customer's records share a partition)."""
    by = {}
    for r in rows:
        cid = r["key"].decode("utf-8") if r["key"] is not None else None
        by.setdefault(cid, []).append(r)
    return by


def check_output_records(rows, expected, partitions):
    """The segments topic holds exactly the expected CloudEvents: per
    customer the same parsed JSON in the same order, key = customer id =
    subject, the single header content-type: application/cloudevents+json,
    and the partition murmur2_random gives the key. No duplicates."""
    want = {}
    for ev in expected:
        want.setdefault(ev["subject"], []).append(ev)
    got = outputs_by_customer(rows)
    check_eq(sorted(got, key=str), sorted(want), "customers with outputs")
    for cid, recs in got.items():
        check_eq([json.loads(r["value"]) for r in recs], want[cid],
                 f"output events of {cid!r}")
        for r in recs:
            check_record_envelope(r, cid, partitions)
    check_eq(len(rows), len(expected), "output records")


def check_record_envelope(r, cid, partitions):
    check_eq(r["headers"], [("content-type", CE_CONTENT_TYPE)],
             f"headers of output record {r['partition']}/{r['offset']}")
    check_eq(r["key"], cid.encode(), "output record key")
    check_eq(r["partition"], kafka_partition(cid.encode(), partitions),
             f"partition of {cid!r}'s output (murmur2_random)")
