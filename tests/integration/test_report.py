"""`custpulse report`: the daily population metrics from the counters in
Redis (consumer/report.h, docs/metrics.md).

Redis only (no Kafka). A hand-made data set - <prefix>mdays, the md:<day>
hashes of seven days and the mc:<day> hashes of three cohorts, the
five-day story of tests/unit/test_scoring_metrics.c plus two later days -
is HSET into Redis; `custpulse report --json` prints exactly the data
objects worked out here by hand (gauges summed over the days, flows, churn
rate over the stages at the end of the day before, cohorts of the 30-day
window with d2/d7/d14/d30 null until final), --from / --to cut the days
printed but not the sums, and the table of one day is exact too.

Every line printed validates against $defs/data of
schemas/customer-metrics.schema.json, and every CloudEvent of
tests/cases/metrics/ (the exact text the unit test
test_consumer_metrics_out.c builds) against the whole schema.

Hostile data under another prefix - mdays members that are not day
numbers, unknown fields, values that are not canonical integers (junk, a
fraction, an overflow), a day key of another type - is reported on stderr,
one line each, and skipped: the other counters are still reported, exit 0.
An empty database prints nothing (exit 0, a note on stderr); mdays of
another type and an unreachable Redis exit 1; usage errors (a bad or
missing date, --from after --to, an unknown option) exit 2.
"""
import glob
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CP_BIN, SOURCE_DIR, Custpulse, Stack,  # noqa: E402
                     config, free_port)
from itest_util import (check, check_eq, checks_made, say,  # noqa: E402
                        schema_validator)

SCHEMA = os.path.join(SOURCE_DIR, "schemas", "customer-metrics.schema.json")
CASES = os.path.join(SOURCE_DIR, "tests", "cases", "metrics")
TZ = "+08:00"
STAGES = ("prospect", "new", "active", "loyal", "at_risk", "churned",
          "won_back")
SEGMENTS = ("important_value", "important_develop", "important_keep",
            "important_retain", "general_value", "general_develop",
            "general_keep", "general_retain")

# The counters, as the consumer's HINCRBYs leave them (a field that went
# back to 0 stays, as "0").
DAY_HASHES = {
    # A, B: first orders (new, general_develop); C browses (prospect)
    "2024-03-01": {"lc:new": 2, "lc:prospect": 1, "in:new": 2,
                   "seg:general_develop": 2, "act": 3},
    # A orders again (important_develop); D: first order
    "2024-03-02": {"lc:new": 1, "in:new": 1, "seg:general_develop": 0,
                   "seg:important_develop": 1, "act": 2},
    # B new -> at_risk; C: first order (prospect -> new)
    "2024-03-03": {"lc:new": 0, "lc:at_risk": 1, "lc:prospect": -1,
                   "in:at_risk": 1, "in:new": 1, "seg:general_develop": 1,
                   "act": 1},
    # B at_risk -> churned (general_retain); A new -> active; E browses
    "2024-03-04": {"lc:at_risk": -1, "lc:churned": 1, "lc:new": -1,
                   "lc:active": 1, "lc:prospect": 1, "in:churned": 1,
                   "seg:general_develop": -1, "seg:general_retain": 1,
                   "act": 1},
    # B orders: churned -> won_back; D new -> at_risk
    "2024-03-05": {"lc:churned": -1, "lc:won_back": 1, "lc:new": -1,
                   "lc:at_risk": 1, "in:won_back": 1, "in:at_risk": 1,
                   "seg:general_retain": -1, "seg:general_develop": 1,
                   "act": 1},
    "2024-03-07": {"act": 2},
    "2024-03-31": {"act": 1},
}
COHORT_HASHES = {
    "2024-03-01": {"n": 2, "r2": 1, "r7": 2, "r14": 2, "r30": 2},
    "2024-03-02": {"n": 1},
    "2024-03-03": {"n": 1},
}
DAY_NUMBERS = {"2024-03-01": 19783, "2024-03-02": 19784, "2024-03-03": 19785,
               "2024-03-04": 19786, "2024-03-05": 19787, "2024-03-07": 19789,
               "2024-03-31": 19813}


def data(day, flows, rate, stages, segments, cohorts):
    """A data object in the order custpulse writes it. flows: active, new,
    churned, won_back, at_risk_entered; stages / segments: {code: count}
    (others 0); cohorts: (cohort, size, d2, d7, d14, d30). Whole numbers
    are ints: custpulse prints 1, not 1.0."""
    keys = ("active", "new", "churned", "won_back", "at_risk_entered")
    return {"day": day, "timezone": TZ, **dict(zip(keys, flows)),
         "churn_rate": rate,
         "lifecycle": {s: stages.get(s, 0) for s in STAGES},
         "segments": {g: segments.get(g, 0) for g in SEGMENTS},
         "cohorts": [{"cohort": c, "size": n, "retention": dict(
             zip(("d2", "d7", "d14", "d30"), r))} for c, n, *r in cohorts]}


N = None  # not final yet
C1_EARLY = ("2024-03-01", 2, 0.5, N, N, N)  # d2: A of A and B
C2_EARLY = ("2024-03-02", 1, 0, N, N, N)
C3_EARLY = ("2024-03-03", 1, 0, N, N, N)
# At the end of 2024-03-05 (and after): C new, A active, D at_risk,
# B won_back, E prospect; A important_develop, B C D general_develop.
END_STAGES = {"prospect": 1, "new": 1, "active": 1, "at_risk": 1,
              "won_back": 1}
END_SEGMENTS = {"important_develop": 1, "general_develop": 3}
EXPECTED = [
    # nobody could churn yet: churn_rate null; nothing final
    data("2024-03-01", (3, 2, 0, 0, 0), None, {"prospect": 1, "new": 2},
         {"general_develop": 2}, [("2024-03-01", 2, N, N, N, N)]),
    data("2024-03-02", (2, 1, 0, 0, 0), 0, {"prospect": 1, "new": 3},
         {"important_develop": 1, "general_develop": 2},
         [C1_EARLY, ("2024-03-02", 1, N, N, N, N)]),
    data("2024-03-03", (1, 1, 0, 0, 1), 0, {"new": 3, "at_risk": 1},
         {"important_develop": 1, "general_develop": 3},
         [C1_EARLY, C2_EARLY, ("2024-03-03", 1, N, N, N, N)]),
    # B churned out of A B C D (new 3 + at_risk 1 the day before)
    data("2024-03-04", (1, 0, 1, 0, 0), 0.25,
         {"prospect": 1, "new": 2, "active": 1, "churned": 1},
         {"important_develop": 1, "general_develop": 2,
          "general_retain": 1}, [C1_EARLY, C2_EARLY, C3_EARLY]),
    data("2024-03-05", (1, 0, 0, 1, 1), 0, END_STAGES, END_SEGMENTS,
         [C1_EARLY, C2_EARLY, C3_EARLY]),
    # 2024-03-01's d7 is final on its 7th day: A and B within 7 days
    data("2024-03-07", (2, 0, 0, 0, 0), 0, END_STAGES, END_SEGMENTS,
         [("2024-03-01", 2, 0.5, 1, N, N), C2_EARLY, C3_EARLY]),
    # 2024-03-01 is 30 days back: out of the window; 2024-03-02 on its
    # 30th day (all final), 2024-03-03 on its 29th (d30 not yet)
    data("2024-03-31", (1, 0, 0, 0, 0), 0, END_STAGES, END_SEGMENTS,
         [("2024-03-02", 1, 0, 0, 0, 0), ("2024-03-03", 1, 0, 0, 0, N)]),
]

TABLE_0304 = (
    "2024-03-04 (+08:00)\n"
    "  active 1   new 0   churned 1   won_back 0   at_risk_entered 0"
    "   churn_rate 25.0% (of 4)\n"
    "  lifecycle  prospect 1  new 2  active 1  loyal 0  at_risk 0"
    "  churned 1  won_back 0\n"
    "  segments   important_value 0  important_develop 1"
    "  important_keep 0  important_retain 0  general_value 0"
    "  general_develop 2  general_keep 0  general_retain 1\n"
    "  cohort         size      d2      d7     d14     d30\n"
    "  2024-03-01        2   50.0%       -       -       -\n"
    "  2024-03-02        1    0.0%       -       -       -\n"
    "  2024-03-03        1    0.0%       -       -       -\n")


def dumps(d):
    return json.dumps(d, separators=(",", ":"), ensure_ascii=False)


def check_cases(whole):
    """The CloudEvents the unit test compares with pass the schema, and a
    spoiled copy of each does not (the schema has teeth)."""
    paths = sorted(glob.glob(os.path.join(CASES, "*.json")))
    check(len(paths) >= 2, f"no metrics cases in {CASES}")
    for p in paths:
        with open(p) as f:
            doc = json.loads(f.readline())
        errs = [e.message for e in whole.iter_errors(doc)]
        check(not errs, f"{p}: schema: {errs[:3]}")
        for spoil in (lambda d: d["data"].pop("churn_rate"),
                      lambda d: d["data"]["lifecycle"].update(none=1),
                      lambda d: d["data"]["cohorts"][0]["retention"]
                      .update(d7="0.5"),
                      lambda d: d.update(subject="2024-3-1")):
            bad = json.loads(json.dumps(doc))
            spoil(bad)
            check(any(True for _ in whole.iter_errors(bad)),
                  f"{p}: a spoiled copy passes the schema")
    say(f"schema: {len(paths)} CloudEvents of tests/cases/metrics valid, "
        f"spoiled copies refused")


def put(r, prefix, days, cohorts, members):
    for day, h in days.items():
        r.cmd("HSET", f"{prefix}md:{day}",
              *[str(x) for kv in h.items() for x in kv])
    for day, h in cohorts.items():
        r.cmd("HSET", f"{prefix}mc:{day}",
              *[str(x) for kv in h.items() for x in kv])
    # score = member = the day number; a hostile member scores 0
    r.cmd("ZADD", f"{prefix}mdays",
          *[x for m in members
            for x in (m if m.lstrip("-").isdigit() else "0", m)])


def run(cp, *args):
    return cp.run(["report", *args], timeout=60)


def check_report(st, data_only):
    r = st.redis()
    put(r, "rp:", DAY_HASHES, COHORT_HASHES,
        [str(n) for n in DAY_NUMBERS.values()])
    cp = Custpulse(st, config(st, **{"redis.key_prefix": "rp:",
                                     "timezone": TZ}))
    res = run(cp, "--json")
    check_eq((res.returncode, res.stderr), (0, ""), "report --json")
    want = "".join(dumps(d) + "\n" for d in EXPECTED)
    check_eq(res.stdout, want, "report --json output")
    for line in res.stdout.splitlines():
        errs = [e.message for e in data_only.iter_errors(json.loads(line))]
        check(not errs, f"report line {line[:40]}...: schema: {errs[:3]}")
    say(f"report --json: {len(EXPECTED)} days exactly as worked out, each "
        f"valid against $defs/data")

    res = run(cp, "--json", "--from", "2024-03-04", "--to", "2024-03-07")
    check_eq((res.returncode, res.stdout),
             (0, "".join(dumps(d) + "\n" for d in EXPECTED[3:6])),
             "report --json --from 2024-03-04 --to 2024-03-07")
    res = run(cp, "--json", "--from", "2024-03-06", "--to", "2024-03-06")
    check_eq((res.returncode, res.stdout), (0, ""), "a day without counters")
    check("no day with metrics in rp:mdays" in res.stderr,
          f"no-day note: {res.stderr!r}")
    res = run(cp, "--from", "2024-03-04", "--to", "2024-03-04")
    check_eq((res.returncode, res.stdout, res.stderr), (0, TABLE_0304, ""),
             "the table of 2024-03-04")
    say("--from/--to cut the days printed, not the sums; the table of "
        "2024-03-04 exact")


def check_hostile(st):
    r = st.redis()
    put(r, "rh:", {"2024-03-01": {
        "lc:new": "2", "lc:bogus": "1", "act": "x3",
        "seg:general_develop": "1.5", "in:active": "1", "lc:active": "07",
        "lc:loyal": "99999999999999999999"}},
        {"2024-03-01": {"n": "2", "r2": " 1"}},
        ["19783", "19784", "junk", "-5", "99999999999", "007", "19785"])
    r.cmd("SET", "rh:md:2024-03-02", "not a hash")
    r.cmd("SET", "rh:mc:2024-03-03", "not a hash")
    cp = Custpulse(st, config(st, **{"redis.key_prefix": "rh:",
                                     "timezone": TZ}))
    res = run(cp, "--json")
    check_eq(res.returncode, 0, f"hostile data: exit ({res.stderr})")
    c1 = [("2024-03-01", 2, N, N, N, N)]
    want = [data("2024-03-01", (0, 0, 0, 0, 0), None, {"new": 2}, {}, c1),
            data("2024-03-02", (0, 0, 0, 0, 0), 0, {"new": 2}, {},
                 [("2024-03-01", 2, 0, N, N, N)]),
            data("2024-03-03", (0, 0, 0, 0, 0), 0, {"new": 2}, {},
                 [("2024-03-01", 2, 0, N, N, N)])]
    check_eq(res.stdout, "".join(dumps(d) + "\n" for d in want),
             "hostile data: what is left")
    lines = res.stderr.splitlines()
    skipped = [
        "rh:mdays: member is not a day number (0..2932896) 'junk'",
        "rh:mdays: member is not a day number (0..2932896) '-5'",
        "rh:mdays: member is not a day number (0..2932896) '99999999999'",
        "rh:mdays: member is not a day number (0..2932896) '007'",
        "rh:md:2024-03-01: unknown field 'lc:bogus'",
        "rh:md:2024-03-01: value is not an integer: 'x3'",
        "rh:md:2024-03-01: value is not an integer: '1.5'",
        "rh:md:2024-03-01: unknown field 'in:active'",
        "rh:md:2024-03-01: value is not an integer: '07'",
        "rh:md:2024-03-01: value is not an integer: '99999999999999999999'",
        "rh:mc:2024-03-01: value is not an integer: ' 1'",
        "rh:md:2024-03-02: not a hash: 'WRONGTYPE",
        "rh:mc:2024-03-03: not a hash: 'WRONGTYPE",
    ]
    for s in skipped:
        check(any(l.startswith("custpulse: report: " + s) and
                  l.endswith("; skipped") for l in lines),
              f"hostile data: no line for {s!r} in {res.stderr!r}")
    check_eq(lines[-1], f"custpulse: report: {len(skipped)} values skipped",
             "hostile data: the count")
    check_eq(len(lines), len(skipped) + 1, "hostile data: stderr lines")
    say(f"hostile data: {len(skipped)} values reported and skipped, the "
        f"rest reported")

    r.cmd("SET", "rw:mdays", "x")
    cp = Custpulse(st, config(st, **{"redis.key_prefix": "rw:"}))
    res = run(cp)
    check_eq((res.returncode, res.stdout), (1, ""), "mdays of another type")
    check("WRONGTYPE" in res.stderr, f"mdays of another type: {res.stderr}")
    cp = Custpulse(st, config(st, **{"redis.key_prefix": "empty:"}))
    res = run(cp, "--json")
    check_eq((res.returncode, res.stdout), (0, ""), "an empty database")
    check("no day with metrics in empty:mdays" in res.stderr,
          f"empty database: {res.stderr!r}")
    say("mdays of another type: exit 1; no metrics: exit 0, a note")


def check_usage():
    cases = [["report", "--from"], ["report", "--to", "2024-02-30"],
             ["report", "--from", "20240301"],
             ["report", "--from", "1969-12-31"], ["report", "--bogus"],
             ["report", "extra"], ["report", "--list"], ["report", "-c"],
             ["report", "--json", "--to"]]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CUSTPULSE_")}
    for args in cases:
        res = subprocess.run([CP_BIN, *args], capture_output=True, text=True,
                             timeout=30, env=env)
        check_eq(res.returncode, 2, f"custpulse {args}: exit code")
        check("usage:" in res.stderr, f"custpulse {args}: no usage text")
        check_eq(res.stdout, "", f"custpulse {args}: stdout")
    res = subprocess.run(
        [CP_BIN, "report", "-X", f"redis.port={free_port()}", "--from",
         "2024-03-02", "--to", "2024-03-01"], capture_output=True, text=True,
        timeout=30, env=env)
    check_eq((res.returncode, res.stdout), (2, ""), "--from after --to")
    check("--from is after --to" in res.stderr, res.stderr)
    res = subprocess.run([CP_BIN, "report", "-X", f"redis.port={free_port()}"],
                         capture_output=True, text=True, timeout=30, env=env)
    check_eq((res.returncode, res.stdout), (1, ""), "no Redis: exit")
    check("cannot connect to redis" in res.stderr, res.stderr)
    say(f"usage: {len(cases)} command lines and --from after --to exit 2; "
        f"no Redis: exit 1")


def main():
    whole = schema_validator(SCHEMA)
    data_only = schema_validator(SCHEMA, "#/$defs/data")
    check_cases(whole)
    check_usage()
    with Stack(kafka=False) as st:
        check_report(st, data_only)
        check_hostile(st)
    say(f"test_report: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
