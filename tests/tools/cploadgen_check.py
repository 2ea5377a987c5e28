#!/usr/bin/env python3
"""Checks bench/cploadgen's --print output (ctest tools.cploadgen; no
services needed).

    cploadgen_check.py CPLOADGEN SOURCE_DIR

1. The same arguments give byte-identical output; another seed does not.
2. Every line is `topic<TAB>key<TAB>json`. A line whose event_id was seen
   before with the same bytes is a duplicate; any other line either is valid
   against its topic's schema (schemas/*-event.schema.json, formats checked)
   with key == customer_id, or is malformed. Both counts and the records per
   topic equal the summary line on stderr.
3. The distinct events split orders : browsing : support as 1 : 10 : 0.3,
   each share within 2 percentage points; event times stay inside
   [start, start + days).
4. The replays equal tests/data/cdnow_events.py --raw and
   tests/data/online_retail_events.py --raw, byte for byte.
5. --id-prefix P gives the same bytes with "lg-" replaced by P in event,
   order and ticket ids only (customer, session, product ids unchanged).
"""
import json
import os
import subprocess
import sys

ARGS = ["--print", "--customers", "1000", "--events", "20000", "--seed", "7",
        "--stats-every", "0"]
TOPICS = {"customer.orders": "order", "customer.browsing": "browsing",
          "customer.support": "support"}
SHARES = {"customer.orders": 1 / 11.3, "customer.browsing": 10 / 11.3,
          "customer.support": 0.3 / 11.3}


def fail(msg):
    print(f"cploadgen_check: FAIL: {msg}", file=sys.stderr)
    sys.exit(1)


def run(binary, args):
    """(stdout bytes, the summary line as a dict)."""
    p = subprocess.run([binary] + args, capture_output=True, timeout=60)
    if p.returncode != 0:
        fail(f"{args}: exit {p.returncode}: {p.stderr.decode()[-500:]}")
    lines = [json.loads(l) for l in p.stderr.decode().splitlines()]
    summary = [l for l in lines if l.get("msg") == "summary"]
    if len(summary) != 1:
        fail(f"{args}: expected one summary line, got {lines[-3:]}")
    return p.stdout, summary[0]


def validators(source):
    sys.path.insert(0, os.path.join(source, "tests", "integration"))
    from itest_util import schema_validator
    return {topic: schema_validator(os.path.join(
        source, "schemas", f"{name}-event.schema.json"))
        for topic, name in TOPICS.items()}


def is_valid(validator, key, text):
    try:
        ev = json.loads(text)
    except ValueError:
        return False
    if not isinstance(ev, dict) or ev.get("customer_id") != key:
        return False
    return not any(True for _ in validator.iter_errors(ev))


def check_stream(out, summary, vals):
    seen = {}
    per_topic = dict.fromkeys(TOPICS, 0)
    distinct = dict.fromkeys(TOPICS, 0)
    dups = bad = 0
    for line in out.decode().splitlines():
        topic, key, text = line.split("\t", 2)
        if topic not in TOPICS:
            fail(f"unknown topic in {line!r}")
        per_topic[topic] += 1
        try:
            eid = json.loads(text).get("event_id")
        except ValueError:
            eid = None
        if eid is not None and seen.get(eid) == line:
            dups += 1
            continue
        if eid is not None:
            seen[eid] = line
        distinct[topic] += 1
        if not is_valid(vals[topic], key, text):
            bad += 1
            continue
        at = json.loads(text)["occurred_at"]
        if not "2024-01-01" <= at < "2025-01-01":
            fail(f"occurred_at outside the year: {line!r}")
    for topic, name in ((t, t.split(".")[1]) for t in TOPICS):
        if per_topic[topic] != summary[name]:
            fail(f"{topic}: {per_topic[topic]} records, summary says "
                 f"{summary[name]}")
    if dups != summary["duplicates"] or bad != summary["malformed"]:
        fail(f"{dups} duplicates / {bad} malformed seen, summary says "
             f"{summary['duplicates']} / {summary['malformed']}")
    if dups == 0 or bad == 0:
        fail("expected some duplicates and some malformed events")
    total = sum(distinct.values())
    for topic, share in SHARES.items():
        got = distinct[topic] / total
        if abs(got - share) > 0.02:
            fail(f"{topic}: share {got:.4f}, expected {share:.4f} +- 0.02")
    print(f"cploadgen_check: {total} events, {dups} duplicates, {bad} "
          f"malformed, per topic {distinct}")


def check_replay(binary, source, flag, path, script):
    out, _ = run(binary, ["--print", "--stats-every", "0", flag, path])
    got = b"".join(l.split(b"\t", 2)[2] + b"\n"
                   for l in out.splitlines())
    want = subprocess.run([sys.executable, script, "--raw", "--input", path],
                          capture_output=True, check=True,
                          timeout=60).stdout
    if got != want:
        fail(f"{flag} {path}: output differs from {script} --raw")
    n = got.count(b"\n")
    print(f"cploadgen_check: {flag}: {n} events as {os.path.basename(script)}")


def check_id_prefix(binary, first):
    out, _ = run(binary, ARGS + ["--id-prefix", "p2."])
    want = first
    for kind in (b"event_id", b"order_id", b"ticket_id"):
        want = want.replace(b'"%s":"lg-' % kind, b'"%s":"p2.' % kind)
    if out != want:
        fail("--id-prefix p2. differs from the default output with the "
             "event, order and ticket ids renamed")
    print("cploadgen_check: --id-prefix renames event, order and ticket ids "
          "only")


def main():
    binary, source = sys.argv[1], sys.argv[2]
    first, summary = run(binary, ARGS)
    second, _ = run(binary, ARGS)
    if first != second:
        fail("two runs with the same arguments differ")
    other, _ = run(binary, ARGS[:-3] + ["8", "--stats-every", "0"])
    if other == first:
        fail("seeds 7 and 8 gave the same output")
    check_stream(first, summary, validators(source))
    check_id_prefix(binary, first)
    data = os.path.join(source, "tests", "data")
    check_replay(binary, source, "--cdnow",
                 os.path.join(data, "cdnow", "CDNOW_sample.txt"),
                 os.path.join(data, "cdnow_events.py"))
    check_replay(binary, source, "--online-retail",
                 os.path.join(data, "online-retail",
                              "online_retail_subset.csv.gz"),
                 os.path.join(data, "online_retail_events.py"))
    print("cploadgen_check: ok")


if __name__ == "__main__":
    main()
