"""Broker errors injected into the embedded mock cluster (librdkafka's mock
inside custpulse, kafka.bootstrap.servers = embedded; real Redis).

CUSTPULSE_MOCK_FAULTS="<request>:<count>:<ERROR>[,...]" (consumer/kafka.c,
push_mock_faults) makes the mock cluster fail the next <count> requests of
that kind with that broker error. The mock cluster listens on loopback; as
in tests/integration/test_embedded.py the test reads its address from
custpulse's "using the embedded mock Kafka cluster" log line and produces
the input, reads the input back (partitions, offsets), the output topic,
the DLQ and the group's committed offsets with cpkafka - all while
custpulse runs, since the cluster dies with the process.

Events: loadgen.EventStream (one UTC day; clock = event, loadgen.REF), so
cpmodel.replay of the input topic gives the exact state and CloudEvents
however the partitions interleave. Every scenario checks:
- custpulse keeps running through the faults and stops with exit 0 (after
  SIGTERM, or by itself with --exit-at-end);
- every customer hash equals cpmodel on lv, o, m, n, f, l, s, q, sl, sv,
  w:* with no outbox (key or x/xq) left and no customer missing or extra (v, e, r not
  compared);
- SIGTERM scenarios, before the stop: the output topic holds every
  expected CloudEvent with exactly the expected content, key, header and
  partition, nothing else, a repeated id only as a byte-identical copy;
  the DLQ is empty; committed offsets = end offsets;
- --exit-at-end scenarios: the ends custpulse fixed are the input's ends;
  exit 0 means the final commit succeeded; no outbox left means every
  CloudEvent was acknowledged by the broker, and the "stopped" line
  counted at least as many outputs as expected;
- the fault reached custpulse (not only the test's own clients):
    produce: librdkafka's "MessageSet ... encountered error" debug lines
      of custpulse's producer (log.level = debug, kafka.producer.debug =
      msg) or custpulse's "produce failed; retrying" lines;
    commit: librdkafka's COMMITFAIL warnings and (kafka.consumer.debug =
      cgrp) COMMIT lines of custpulse's consumer naming the error.

Scenarios:
  produce      produce:5:NOT_LEADER_FOR_PARTITION (retriable), SIGTERM
  produce-perm produce:3:INVALID_RECORD (not retriable: the records' delivery
               fails and custpulse must produce them again), SIGTERM
  commit       commit:3:REQUEST_TIMED_OUT, SIGTERM (auto-commits meet them)
  commit-end   commit:3:REQUEST_TIMED_OUT with --exit-at-end and no
               auto-commit before the end, so the final synchronous commit
               meets the errors
  commit-gen   commit:3:ILLEGAL_GENERATION likewise: the group moved on
               while custpulse stopped; the commit is refused at once,
               logged, and the exit is 0

The mock's error stacks are cluster-wide: the next requests of that kind
from ANY client take the errors, including the test's own cpkafka. So the
test produces all its input before custpulse's first batch, which is when
custpulse arms the faults; the produce errors the test's input producer
took anyway are counted (cpkafka -X debug=msg) and printed. Fetch and
commit requests of the test come later (cpkafka's `committed` is an
OffsetFetch, not a commit). The "reached custpulse" check fails a run that
never met the fault: it would prove nothing.

A failed scenario is reported and the next one still runs; the exit status
is 1 if any failed.

    python3 test_mock_faults.py [produce produce-perm commit commit-end
                                 commit-gen]
"""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
import faultutil  # noqa: E402
import harness  # noqa: E402
import loadgen  # noqa: E402
from cpcheck import (CheckFailed, Stopwatch, expect,  # noqa: E402
                     first_diffs, model_records, output_check, state_diffs)
from harness import Custpulse, Stack, config, kafkatool, wait_until  # noqa
from itest_util import (DLQ_TOPIC, ORDERS_TOPIC, SEGMENTS_TOPIC,  # noqa: E402
                        checks_made, customer_hashes, say)

LONG = loadgen.LONG
PARTITIONS = 3            # topic.partitions: every topic of the mock
N_EVENTS = 10000 if LONG else 1500
N_CUSTOMERS = 150
CONVERGE_TIMEOUT_S = 120
RUN_TIMEOUT_S = 120
MOCK_MSG = "using the embedded mock Kafka cluster"


class Case:
    def __init__(self, tag, faults, exit_at_end=False, title="", cfg=None,
                 reach="produce", err_text="Request timed out", log_msg=None):
        self.tag, self.faults, self.exit_at_end = tag, faults, exit_at_end
        self.title, self.cfg, self.reach = title, dict(cfg or {}), reach
        # librdkafka's text of the injected error, and a custpulse log
        # message the scenario must produce (None: no such check).
        self.err_text, self.log_msg = err_text, log_msg


CASES = [
    Case("produce", "produce:5:NOT_LEADER_FOR_PARTITION",
         title="5 produce errors, retriable"),
    Case("produce-perm", "produce:3:INVALID_RECORD",
         title="3 produce errors, not retriable"),
    Case("commit", "commit:3:REQUEST_TIMED_OUT", title="3 commit errors",
         reach="commit", cfg={"kafka.consumer.debug": "cgrp"}),
    Case("commit-end", "commit:3:REQUEST_TIMED_OUT", exit_at_end=True,
         title="3 errors at the final commit", reach="commit",
         cfg={"kafka.consumer.auto.commit.interval.ms": 600000,
              "kafka.consumer.debug": "cgrp"}),
    # The group rebalanced while the instance stopped (seen in
    # test_group_churn when a member joins as another leaves): the final
    # commit is refused, not retried until the deadline, and the exit is 0.
    Case("commit-gen", "commit:3:ILLEGAL_GENERATION", exit_at_end=True,
         title="final commit of a stale generation", reach="commit",
         cfg={"kafka.consumer.auto.commit.interval.ms": 600000,
              "kafka.consumer.debug": "cgrp"},
         err_text="Specified group generation id is not valid",
         log_msg="final commit refused: the group "
         "rebalanced during shutdown; the new owners consume the last "
         "offsets again (skipped by the customers' watermarks)"),
]


def mock_bootstrap(cp):
    for line in cp.log_lines():
        if MOCK_MSG in line.get("msg", ""):
            return line["bootstrap"].split(",")[0]
    return None


def tool(bs, *args, **kw):
    return kafkatool(args[0], "-b", bs, *args[1:], **kw)


def consume(bs, topic):
    res = tool(bs, "consume", "-t", topic, "--timeout-ms", "60000",
               timeout=120)
    return [harness._decode_row(json.loads(l))
            for l in res.stdout.splitlines() if l.strip()]


def committed(bs, group, topic):
    res = tool(bs, "committed", "-g", group, "-t", topic)
    return {int(p): o for p, o in json.loads(res.stdout)["offsets"].items()}


def produce_errors_seen(lines):
    """librdkafka MSGSET debug lines of custpulse's producer reporting a
    failed produce request, plus custpulse's own retry lines."""
    dbg = sum(1 for l in lines if l.get("msg") == "librdkafka"
              and l.get("facility") == "MSGSET"
              and "encountered error" in l.get("detail", ""))
    own = sum(1 for l in lines if l.get("msg") == "produce failed; retrying")
    return dbg, own


def run_case(st, case, seed):
    t = Stopwatch()

    def note(s):
        print(f"  [{case.tag} {t.s():5.1f}s] {s}", flush=True)

    prefix = f"m{case.tag}:"
    cfg = config(st, clock="event", **loadgen.REF.config(), **{
        "kafka.bootstrap.servers": "embedded", "redis.key_prefix": prefix,
        "topic.partitions": PARTITIONS, "stats.interval_ms": 1000,
        "log.level": "debug", "kafka.producer.debug": "msg", **case.cfg})
    group = cfg["kafka.group.id"]
    cp = Custpulse(st, cfg, name=f"custpulse-{case.tag}",
                   env={"CUSTPULSE_MOCK_FAULTS": case.faults})
    cp.start(["run", "--exit-at-end"] if case.exit_at_end else ["run"])
    try:
        bs = wait_until(lambda: mock_bootstrap(cp) or (
            not cp.running() and "exited"), 30, "the mock cluster's address")
        expect(bs != "exited", f"{case.tag}: custpulse exited at start-up",
               f"status {cp.proc.returncode}\n{cp.stderr_text()[-1500:]}")

        stream = loadgen.EventStream(seed, N_CUSTOMERS, prefix=case.tag[:2])
        events = [stream.next() for _ in range(N_EVENTS)]
        lines = "".join(json.dumps({"key": e["customer_id"],
                                    "value": json.dumps(e)}) + "\n"
                        for e in events)
        res = tool(bs, "produce", "-t", ORDERS_TOPIC, "-X", "debug=msg",
                   input=lines, check=False, timeout=180)
        taken = sum(1 for l in res.stderr.splitlines()
                    if "encountered error" in l)
        expect(res.returncode == 0, f"{case.tag}: the test's input producer "
               f"failed: it took {taken} of the injected produce errors "
               "(the mock's error stack is cluster-wide and armed before any "
               "input exists)", res.stderr.strip().splitlines()[-1:])
        rows = consume(bs, ORDERS_TOPIC)
        expect(len(rows) == N_EVENTS, f"{case.tag}: input records",
               len(rows))
        ends = {p: 0 for p in range(PARTITIONS)}
        for r in rows:
            ends[r["partition"]] = max(ends[r["partition"]], r["offset"] + 1)
        customers, outputs = cpmodel.replay(
            model_records(rows, ORDERS_TOPIC), loadgen.REF)
        note(f"mock cluster at {bs}; faults {case.faults}; {N_EVENTS} "
             f"events produced (the test's producer took {taken} injected "
             f"produce errors), ends {ends}; cpmodel: {len(customers)} "
             f"customers, {len(outputs)} CloudEvents")

        fig = {"events": N_EVENTS, "outputs": len(outputs), "taken": taken}
        if case.exit_at_end:
            try:
                rc = cp.wait(RUN_TIMEOUT_S)
            except Exception:  # noqa: BLE001 - reported below
                cp.kill9()
                expect(False, f"{case.tag}: --exit-at-end did not exit in "
                       f"{RUN_TIMEOUT_S}s", cp.stderr_text()[-2000:])
            log = cp.log_lines()
            # Only the orders topic's: the mock cluster also holds the
            # (empty) browsing, support and profile topics custpulse
            # subscribes to, whose ends are fixed at 0.
            fixed = {l["partition"]: l["end"] for l in log
                     if l.get("msg") == "partition end fixed"
                     and l.get("topic") == ORDERS_TOPIC}
            expect(fixed == ends, f"{case.tag}: ends fixed at assignment = "
                   "the input's ends (the input was produced before the "
                   "first assignment)", f"{fixed} != {ends}")
            c = loadgen.stopped_counters(cp, faultutil.COUNTERS)
            errs = [l for l in log if l.get("level") == "error"]
            commits = [l.get("detail", "")[-90:] for l in log
                       if l.get("facility") in ("COMMIT", "COMMITFAIL")]
            expect(rc == 0, f"{case.tag}: --exit-at-end exit status",
                   f"{rc}; stopped line exit_code={c.get('exit_code')} "
                   f"events={c.get('events')} outputs={c.get('outputs')}; "
                   + ("error lines: " + "; ".join(json.dumps(l)[:300]
                                                  for l in errs)
                      if errs else "custpulse logged NO error line")
                   + f"; librdkafka commit lines: {commits[-4:]}")
            expect(c["outputs"] >= len(outputs),
                   f"{case.tag}: outputs counted >= expected",
                   f"{c['outputs']} < {len(outputs)}")
            fig["records"] = c["outputs"]
            fig["dups"] = c["outputs"] - len(outputs)
        else:
            deadline = time.monotonic() + CONVERGE_TIMEOUT_S
            last = "nothing checked yet"
            r = st.redis()
            try:
                while True:
                    loadgen.expect_alive([cp])
                    com = committed(bs, group, ORDERS_TOPIC)
                    diffs = state_diffs(customer_hashes(r, prefix),
                                        customers)
                    out = consume(bs, SEGMENTS_TOPIC)
                    dups, problems = output_check(out, outputs, PARTITIONS)
                    if com == ends and not diffs and not problems:
                        break
                    last = (f"committed {com} (end {ends}); state: "
                            f"{first_diffs(diffs, 2) or 'exact'}; outputs: "
                            f"{first_diffs(problems, 2) or 'exact'}")
                    expect(time.monotonic() < deadline,
                           f"{case.tag}: no convergence in "
                           f"{CONVERGE_TIMEOUT_S}s", last)
                    time.sleep(0.5)
            finally:
                r.close()
            dlq = consume(bs, DLQ_TOPIC)
            expect(dlq == [], f"{case.tag}: DLQ records", len(dlq))
            fig["records"], fig["dups"] = len(out), dups
            note(f"converged: committed = end, state exact, all "
                 f"{len(outputs)} CloudEvents as {len(out)} records "
                 f"({dups} byte-identical duplicates), DLQ empty")
            rc = cp.stop(signal.SIGTERM, timeout=30)
            expect(rc == 0, f"{case.tag}: exit status after SIGTERM",
                   f"{rc}\n{cp.stderr_text()[-2000:]}")
            c = loadgen.stopped_counters(cp, faultutil.COUNTERS)
    finally:
        if cp.running():
            cp.kill9()

    with st.redis() as r:
        diffs = state_diffs(customer_hashes(r, prefix), customers)
    expect(not diffs, f"{case.tag}: state != cpmodel after the stop",
           first_diffs(diffs))
    log = cp.log_lines()
    armed = [f"{l.get('request')}:{l.get('count')}:{l.get('error')}"
             for l in log if l.get("msg") == "mock cluster fault armed"]
    expect(armed == case.faults.split(","), f"{case.tag}: 'mock cluster "
           "fault armed' lines", armed)
    dbg, own = produce_errors_seen(log)
    # librdkafka's COMMITFAIL warnings (auto-commit) and, with
    # kafka.consumer.debug = cgrp, its COMMIT lines for every OffsetCommit
    # answered with the injected error (the final commit included).
    commitfail = [l for l in log if l.get("facility") in ("COMMIT",
                                                          "COMMITFAIL")
                  and case.err_text in l.get("detail", "")]
    if case.log_msg:
        expect(any(l.get("msg") == case.log_msg for l in log),
               f"{case.tag}: log line {case.log_msg!r}",
               [l.get("msg") for l in log if l.get("level") != "debug"][-8:])
    fig.update(dbg=dbg, own=own, commitfail=len(commitfail),
               restarts=c["producer_restarts"], secs=t.s())
    note(f"exit 0; state exact ({len(customers)} hashes, no outbox); custpulse "
         f"saw {dbg} failed produce requests, logged {own} 'produce failed; "
         f"retrying', {len(commitfail)} commits failed with the injected "
         f"error; stopped: "
         f"events={c['events']} outputs={c['outputs']} batches={c['batches']}"
         f" producer_restarts={c['producer_restarts']}")
    if commitfail:
        note(f"e.g. {commitfail[0].get('detail', '')[:200]}")
    if case.reach == "produce":
        expect(dbg + own > 0, f"{case.tag}: the injected produce errors never "
               f"reached custpulse's producer: the test's input producer "
               f"took {taken} of them (CUSTPULSE_MOCK_FAULTS pushes them on "
               "the cluster-wide stack at start-up, before any input "
               "exists; see the module docstring)")
    else:
        expect(commitfail, f"{case.tag}: no commit answered with the "
               "injected error: the commit errors never reached custpulse")
    return fig


def main():
    total = Stopwatch()
    only = set(sys.argv[1:])
    cases = [c for c in CASES if not only or c.tag in only]
    say(f"mock cluster faults ({'long' if LONG else 'CI'} size, {N_EVENTS} "
        f"events each): " + ", ".join(c.tag for c in cases))
    results = []
    with Stack(kafka=False) as st:
        for i, case in enumerate(cases):
            print(f"\n{case.tag}: {case.title} "
                  f"({'--exit-at-end' if case.exit_at_end else 'SIGTERM'})",
                  flush=True)
            try:
                results.append((case, run_case(st, case, 20241100 + i),
                                None))
            except (CheckFailed, TimeoutError, RuntimeError) as e:
                print(f"  [{case.tag}] FAILED: {e}", flush=True)
                results.append((case, None, e))
                for app in list(harness._apps):
                    app.kill9()
        print(f"\n{'case':13} {'faults':36} {'result':6} {'outputs':>7} "
              f"{'records':>7} {'test took':>9} {'cp saw':>6} "
              f"{'commitfail':>10} {'secs':>5}")
        for case, f, err in results:
            if err is not None:
                print(f"{case.tag:13} {case.faults:36} FAILED "
                      f"{str(err).splitlines()[0][:100]}")
                continue
            print(f"{case.tag:13} {case.faults:36} pass   {f['outputs']:>7} "
                  f"{f['records']:>7} {f['taken']:>9} "
                  f"{f['dbg'] + f['own']:>6} {f['commitfail']:>10} "
                  f"{f['secs']:>5.1f}")
        failed = [c.tag for c, _, err in results if err is not None]
        print(f"test_mock_faults: {len(results) - len(failed)} of "
              f"{len(results)} cases passed in {total.s():.1f}s "
              f"({checks_made()} checks)")
        if failed:
            raise SystemExit(f"test_mock_faults FAILED: {', '.join(failed)}")


if __name__ == "__main__":
    main()
