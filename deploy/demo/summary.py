#!/usr/bin/env python3
"""Prints what the quickstart replay left behind: customers per RFM
segment (computed in Redis by one script, no per-key round trips), the live
population averages, and the first segment-change events.

    summary.py --redis-port P --bootstrap HOST:PORT --kafkatool PATH
"""
import argparse
import collections
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..",
                                "tests", "integration"))
from harness import Redis  # noqa: E402  (stdlib-only RESP client)

COUNT_LUA = """
local counts, cursor = {}, '0'
repeat
  local r = redis.call('SCAN', cursor, 'MATCH', ARGV[1], 'COUNT', 1000)
  cursor = r[1]
  for _, k in ipairs(r[2]) do
    local s = redis.call('HGET', k, 's') or 'none'
    counts[s] = (counts[s] or 0) + 1
  end
until cursor == '0'
local out = {}
for k, v in pairs(counts) do out[#out + 1] = k; out[#out + 1] = v end
return out
"""

NAMES = [
    ("important_value", "重要价值客户", "recent, frequent, high spend"),
    ("important_develop", "重要发展客户", "recent, infrequent, high spend"),
    ("important_keep", "重要保持客户", "lapsing, frequent, high spend"),
    ("important_retain", "重要挽留客户", "lapsing, infrequent, high spend"),
    ("general_value", "一般价值客户", "recent, frequent, low spend"),
    ("general_develop", "一般发展客户", "recent, infrequent, low spend"),
    ("general_keep", "一般保持客户", "lapsing, frequent, low spend"),
    ("general_retain", "一般挽留客户", "lapsing, infrequent, low spend"),
    ("none", "-", "no counted order"),
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--redis-port", type=int, required=True)
    ap.add_argument("--bootstrap", required=True)
    ap.add_argument("--kafkatool", required=True)
    ap.add_argument("--prefix", default="cp:")
    ap.add_argument("--first", type=int, default=5)
    a = ap.parse_args()

    r = Redis(a.redis_port)
    flat = r.cmd("EVAL", COUNT_LUA, "0", a.prefix + "c:*")
    counts = {flat[i].decode(): int(flat[i + 1]) for i in range(0, len(flat), 2)}
    total = sum(counts.values())
    print("\nCustomers per RFM segment (%d customers):" % total)
    for code, zh, what in NAMES:
        n = counts.get(code, 0)
        if n or code != "none":
            print("  %-18s %-8s %7d  %5.1f%%   %s" % (code, zh, n, 100.0 * n / max(total, 1), what))

    pop = r.hgetall(a.prefix + "pop")
    if pop and int(pop.get("n", 0)):
        n = int(pop["n"])
        print("\nPopulation averages: frequency %.2f orders, monetary %.2f USD, "
              "last order on day %.1f since 1970" %
              (int(pop["sf"]) / n, int(pop["sm"]) / n / 100.0, int(pop["sl"]) / n))

    rows = consume(a, "customer.segment-changes")
    by_model = collections.Counter(ev["data"]["model"] for ev in rows)
    timed = sum(1 for ev in rows if ev["data"]["cause"].get("kind") == "time")
    print("\nSegment-change events: %d (%s), %d of them caused by time "
          "(customers going quiet)." % (len(rows), ", ".join(
              "%s %d" % kv for kv in sorted(by_model.items())), timed))
    rfm8 = [ev for ev in rows if ev["data"]["model"] == "rfm8"]
    print("The first %d RFM 8-type changes:" % min(a.first, len(rfm8)))
    for ev in rfm8[:a.first]:
        d = ev["data"]
        print("  %s  customer %-6s %-17s -> %-17s (R %d days, F %d, M %s USD)" %
              (ev["time"][:10], ev["subject"], d["from"] or "(new)", d["to"],
               d["recency_days"], d["frequency"], d["monetary"]))

    warnings = consume(a, "customer.churn-warnings")
    warned = collections.defaultdict(set)
    for ev in warnings:
        if ev["type"] == "com.custpulse.churn.warning":
            warned[ev["time"][:7]].add(ev["subject"])
    print("\nChurn warnings: %d events; customers warned per month:" %
          len(warnings))
    print("  " + "  ".join("%s %d" % (m, len(c))
                           for m, c in sorted(warned.items())))

    metrics = consume(a, "customer.metrics")
    if metrics:
        last = metrics[-1]["data"]
        print("\nDaily metrics: %d days in customer.metrics; the last, %s: "
              "active %d, new %d, churned %d, churn rate %s; lifecycle %s" %
              (len(metrics), last["day"], last["active"], last["new"],
               last["churned"], last["churn_rate"], ", ".join(
                   "%s %d" % kv for kv in last["lifecycle"].items() if kv[1])))
        print("  (every day: `build/custpulse report -X redis.port=%d` while "
              "the stack runs: quickstart.sh --keep)" % a.redis_port)


def consume(a, topic):
    """The CloudEvents of a topic, parsed."""
    out = subprocess.run([a.kafkatool, "consume", "-b", a.bootstrap, "-t",
                          topic], capture_output=True, text=True, check=True)
    return [json.loads(json.loads(line)["value"])
            for line in out.stdout.splitlines() if line.strip()]

if __name__ == "__main__":
    main()
