"""cpcheck.py - checks for the fault tests (test_dlq.py, test_outages.py),
on top of itest_util.py.

What itest_util's checks do not cover: comparing state while custpulse is
still converging (differences as a list, not a raise; the outbox optionally
ignored), an output topic that may hold at-least-once duplicates (allowed
only as byte-identical copies), and reading custpulse's log. Failures raise
itest_util.CheckFailed, so every test has one failure type.

Python 3 standard library only.
"""
import json
import time

import cpmodel
from itest_util import (CE_CONTENT_TYPE, INTERNAL_FIELDS,  # noqa: F401
                        OUTBOX_FIELDS, CheckFailed, check, customer_hashes,
                        kafka_partition)


def expect(cond, what, detail=None):
    """Raises CheckFailed("what: detail") unless cond."""
    check(cond, lambda: what if detail is None else f"{what}: {detail}")


def first_diffs(items, limit=5):
    """The first `limit` items joined, and how many more there are."""
    items = list(items)
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return "; ".join(str(i) for i in items[:limit]) + more


def model_records(rows, topic):
    """Stack.consume() rows of an input topic holding only valid events ->
    cpmodel.replay records."""
    return [{"value": json.loads(r["value"]), "topic": topic,
             "partition": r["partition"], "offset": r["offset"]}
            for r in rows]


# ---- Redis state --------------------------------------------------------

def state_diffs(hashes, customers, ignore_outbox=False):
    """Differences between customer_hashes() and cpmodel customers
    ({cid: cpmodel.Customer}) on cpmodel.expected_hash's fields plus the
    outbox (the outbox key, or x and xq in the hash: expected absent
    unless ignore_outbox); [] when equal.
    v, e and r are not compared (v depends on batching, e and r are
    internal encodings)."""
    skip = INTERNAL_FIELDS | (OUTBOX_FIELDS if ignore_outbox else set())
    diffs = [f"{cid}: missing in Redis"
             for cid in sorted(set(customers) - set(hashes))]
    diffs += [f"{cid}: unexpected hash {hashes[cid]}"
              for cid in sorted(set(hashes) - set(customers))]
    for cid in sorted(set(hashes) & set(customers)):
        got = {k: v for k, v in hashes[cid].items() if k not in skip}
        want = cpmodel.expected_hash(customers[cid])
        if got != want:
            d = {k: (got.get(k), want.get(k)) for k in sorted(set(got) |
                                                              set(want))
                 if got.get(k) != want.get(k)}
            diffs.append(f"{cid}: (got, want) {d}")
    return diffs


def outbox_left(hashes):
    """Customers with an outbox left: an outbox key, or x/xq in the hash
    (customer_hashes() shows the key as the field OUTBOX_KEY)."""
    return sorted(cid for cid, h in hashes.items() if OUTBOX_FIELDS & set(h))


# ---- output topic -------------------------------------------------------

def output_check(rows, expected, partitions):
    """The segments topic against cpmodel's expected CloudEvents, allowing
    at-least-once duplicates.

    Every expected id is there with exactly the expected content; key =
    subject, the single header content-type: application/cloudevents+json
    and the partition murmur2_random gives the key (as itest_util's
    check_record_envelope); nothing else is there; a repeated id must be
    byte-identical to its first copy (key, value, headers). Returns (number
    of duplicate records, [problems])."""
    problems = []
    first = {}
    dups = 0
    want = {e["id"]: e for e in expected}
    if len(want) != len(expected):
        problems.append("cpmodel produced repeated ids")
    for r in rows:
        where = f"{r['partition']}/{r['offset']}"
        try:
            ev = json.loads(r["value"])
            eid = ev["id"]
        except (TypeError, ValueError, KeyError):
            problems.append(f"not a CloudEvent at {where}: "
                            f"{r['value']!r:.120}")
            continue
        copy = (r["key"], r["value"], r["headers"])
        if eid in first:
            dups += 1
            if copy != first[eid]:
                problems.append(f"duplicate of {eid} at {where} differs "
                                f"from its first copy: {r['value']!r:.200}")
            continue
        first[eid] = copy
        exp = want.get(eid)
        if exp is None:
            problems.append(f"unexpected output at {where}: "
                            f"{r['value']!r:.200}")
            continue
        if cpmodel.canonical(ev) != cpmodel.canonical(exp):
            problems.append(f"output {eid}\n   got {cpmodel.canonical(ev)}"
                            f"\n  want {cpmodel.canonical(exp)}")
        key = exp["subject"].encode()
        if r["key"] != key:
            problems.append(f"output {eid}: key {r['key']!r} != subject")
        if r["headers"] != [("content-type", CE_CONTENT_TYPE)]:
            problems.append(f"output {eid}: headers {r['headers']}")
        if r["partition"] != kafka_partition(key, partitions):
            problems.append(f"output {eid}: partition {r['partition']} is "
                            f"not murmur2_random's for {key!r}")
    missing = sorted(set(want) - set(first))
    if missing:
        problems.append(f"{len(missing)} expected outputs missing, e.g. "
                        + first_diffs((want[i]["subject"],
                                       want[i]["data"]["seq"])
                                      for i in missing))
    return dups, problems


# ---- logs ---------------------------------------------------------------

def log_lines_where(cp, level=None, contains=()):
    """custpulse's parsed log lines at `level` whose text (the whole line
    as JSON, lower-cased) contains every string in contains."""
    out = []
    for line in cp.log_lines():
        if level is not None and line.get("level") != level:
            continue
        text = json.dumps(line, ensure_ascii=False).lower()
        if all(c.lower() in text for c in contains):
            out.append(line)
    return out


def stopped_line(cp):
    """custpulse's last "stopped" log line (its counters), or {}."""
    lines = [l for l in cp.log_lines() if l.get("msg") == "stopped"]
    return lines[-1] if lines else {}


class Stopwatch:
    """Seconds since creation, for the printed figures (never asserted)."""

    def __init__(self):
        self.t0 = time.monotonic()

    def s(self):
        return time.monotonic() - self.t0
