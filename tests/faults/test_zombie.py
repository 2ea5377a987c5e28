"""A zombie is fenced: an instance that stalled past max.poll.interval.ms
while its partitions moved to another one must not write when it wakes.

Two instances, B then A, share a group on a 6-partition input topic under
a steady load (loadgen.EventStream: one UTC day, so the exact state and
CloudEvents do not depend on how the partitions were spread). A runs with

    CUSTPULSE_FAILPOINT=between_read_write:K:pause:MS

so on its K-th READ round (replies in, WRITE not sent) its event loop
blocks for MS ms, far beyond kafka.max.poll.interval.ms. librdkafka's
threads go on: A leaves the group when the poll interval passes, B gets
A's partitions and processes them from A's last committed offsets -
including the events of A's stalled batch. When A wakes its WRITE round
must be refused.

Checked:
- while A is still paused (no "failpoint resumed" line yet), the highest
  applied offset (the watermarks in w over all customers) of EVERY partition
  moved past where it was when A paused: B processed batches of each of
  A's partitions (A could write nothing meanwhile);
- A logs "writes refused: a newer owner holds the partition" with
  refused >= 1 and accepted == 0 (the first such line after it resumed);
- A's final stats ("stopped" line) have writes_fenced >= 1;
- after the load, both run until committed = end, SIGTERM: both exit 0;
- the end state is exact (loadgen.check_end_state): every customer hash equals
  cpmodel's replay of the input topic on lv, o, m, n, f, l, s, q, sl, sv,
  w:*, no outbox left; every expected CloudEvent is there with exactly the
  expected content, duplicates only byte-identical; DLQ empty; committed =
  end.

CI size: pause 20 s; CP_LONG=1: pause 40 s and longer load around it.
"""
import json
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import loadgen  # noqa: E402
from cpcheck import Stopwatch, expect  # noqa: E402
from harness import Custpulse, Stack, config  # noqa: E402
from itest_util import (DLQ_TOPIC, ORDERS_TOPIC, SEGMENTS_TOPIC,  # noqa: E402
                        checks_made, say)

SEED = 20240416
PARTITIONS = 6
OUT_PARTITIONS = 3
N_CUSTOMERS = 6000 if loadgen.LONG else 2000
RATE = 200                          # events per second
SESSION_MS = 3000
HEARTBEAT_MS = 500
MAX_POLL_MS = 6000                  # librdkafka: >= session.timeout.ms
PAUSE_AT = 20                       # A's K-th READ round
PAUSE_MS = 40000 if loadgen.LONG else 20000
AFTER_S = 60 if loadgen.LONG else 10   # load after A resumed
WARMUP_S = 30 if loadgen.LONG else 0   # load before A joins
FENCE_MSG = "writes refused: a newer owner holds the partition"
DRAIN_TIMEOUT_S = 120


def main():
    total = Stopwatch()
    say(f"zombie: B, then A with a {PAUSE_MS} ms pause at its READ round "
        f"#{PAUSE_AT} (max.poll.interval.ms {MAX_POLL_MS}, session "
        f"{SESSION_MS} ms); {PARTITIONS} partitions, {RATE} events/s "
        f"(seed {SEED})")
    with Stack(broker_props={"group.min.session.timeout.ms": 1000}) as st:
        st.create_topic(ORDERS_TOPIC, partitions=PARTITIONS)
        cfg = config(st, clock="event", **loadgen.REF.config(), **{
            "topic.partitions": OUT_PARTITIONS,
            "kafka.session.timeout.ms": SESSION_MS,
            "kafka.heartbeat.interval.ms": HEARTBEAT_MS,
            "kafka.max.poll.interval.ms": MAX_POLL_MS,
            "shutdown.timeout_ms": 5000})
        group = cfg["kafka.group.id"]
        b = Custpulse(st, cfg, name="B")
        a = Custpulse(st, cfg, name="A", env={
            "CUSTPULSE_FAILPOINT":
                f"between_read_write:{PAUSE_AT}:pause:{PAUSE_MS}"})
        stream = loadgen.EventStream(SEED, N_CUSTOMERS)
        prod = loadgen.SteadyProducer(st, ORDERS_TOPIC, stream, RATE).start()
        try:
            clock = Stopwatch()

            def note(s):
                say(f"  [{clock.s():5.1f}s] {s}")

            b.start(["run"])
            loadgen.wait_log(b, lambda l: l.get("msg") == "partitions assigned"
                       and l.get("count") == PARTITIONS, 60,
                       f"B assigned all {PARTITIONS} partitions")
            note(f"B has all {PARTITIONS} partitions")
            time.sleep(WARMUP_S)
            a.start(["run"], env=None)
            loadgen.wait_log(a, lambda l: l.get("msg") == "partitions assigned"
                       and l.get("count", 0) > 0, 60, "A assigned partitions")
            a_parts = [l["count"] for l in a.log_lines()
                       if l.get("msg") == "partitions assigned"]
            note(f"A joined: assigned {sum(a_parts)} partition(s)")

            pause = loadgen.wait_log(a, "failpoint", 60, "A's failpoint line")
            t_pause = time.monotonic()
            expect(pause.get("name") == "between_read_write"
                   and pause.get("action") == "pause"
                   and pause.get("hit") == PAUSE_AT,
                   "A's failpoint line", json.dumps(pause))
            loadgen.expect_alive([a, b])
            with st.redis() as r:
                before = loadgen.max_watermarks(r, ORDERS_TOPIC)
            b_assigned_before = loadgen.count_msgs(b, "partitions assigned")
            note(f"A paused (failpoint hit {pause.get('hit')}); highest "
                 f"applied offsets {dict(sorted(before.items()))}")

            # B takes A's partitions and processes each of them while A is
            # still stalled.
            t_takeover = None
            t_all = None
            with st.redis() as r:
                deadline = t_pause + PAUSE_MS / 1000 + 5
                while True:
                    loadgen.expect_alive([a, b])
                    resumed = loadgen.count_msgs(a, "failpoint resumed")
                    if t_takeover is None and loadgen.count_msgs(
                            b, "partitions assigned") > b_assigned_before:
                        t_takeover = time.monotonic()
                        note(f"B assigned more partitions "
                             f"{t_takeover - t_pause:.1f}s into A's pause")
                    now = loadgen.max_watermarks(r, ORDERS_TOPIC)
                    moved = [p for p in range(PARTITIONS)
                             if now.get(p, -1) > before.get(p, -1)]
                    if len(moved) == PARTITIONS:
                        t_all = time.monotonic()
                        break
                    expect(not resumed and time.monotonic() < deadline,
                           "B processed every partition while A was paused",
                           f"A resumed (or {deadline - t_pause:.0f}s passed)"
                           f" with partitions "
                           f"{sorted(set(range(PARTITIONS)) - set(moved))} "
                           f"not moved since A paused; B took over "
                           + (f"{t_takeover - t_pause:.1f}s into the pause"
                              if t_takeover else "never"))
                    time.sleep(0.2)
            # A's resumed line comes before any of its writes: none yet, so
            # every advance above was B's.
            expect(loadgen.count_msgs(a, "failpoint resumed") == 0,
                   "A still paused when every partition had moved on")
            note(f"every partition advanced by B "
                 f"{t_all - t_pause:.1f}s into A's pause: "
                 f"{dict(sorted(now.items()))}")

            loadgen.wait_log(a, "failpoint resumed", PAUSE_MS / 1000 + 30,
                       "A's failpoint resumed line")
            t_resume = time.monotonic()
            note(f"A resumed after {t_resume - t_pause:.1f}s")
            fence = loadgen.wait_log(a, FENCE_MSG, 30, "A's fencing line")
            note(f"A: {json.dumps(fence)}")
            lines = a.log_lines()
            i_res = next(i for i, l in enumerate(lines)
                         if l.get("msg") == "failpoint resumed")
            after = [l for l in lines[i_res:] if l.get("msg") == FENCE_MSG]
            first = after[0] if after else {}
            expect(first.get("refused", 0) >= 1 and first.get("accepted") == 0,
                   "A's first fencing line after it resumed: refused >= 1, "
                   "accepted == 0", json.dumps(first))

            time.sleep(AFTER_S)
            loadgen.expect_alive([a, b])
            produced = prod.stop()
        finally:
            prod.kill()
        note(f"load done: {produced} events in {prod.elapsed():.1f}s")

        ends, _ = loadgen.end_offsets_of(st, ORDERS_TOPIC, PARTITIONS)
        waited = loadgen.wait_committed(
            st, group, ORDERS_TOPIC, ends, DRAIN_TIMEOUT_S,
            alive=lambda: loadgen.expect_alive([a, b]))
        note(f"committed = end {sum(ends.values())} {waited:.1f}s after the "
             "load")
        for cp in (a, b):
            rc = cp.stop(signal.SIGTERM, timeout=30)
            expect(rc == 0, f"{cp.name}: exit status after SIGTERM",
                   f"{rc}\n{cp.stderr_text()[-2000:]}")
        need = ("writes_fenced", "writes", "events", "skipped_redelivered",
                "epochs_acquired")
        ca = loadgen.stopped_counters(a, need)
        cb = loadgen.stopped_counters(b, need)
        expect(ca["writes_fenced"] >= 1, "A's stopped line: writes_fenced "
               ">= 1", json.dumps(ca))

        fig = loadgen.check_end_state(st, ORDERS_TOPIC, SEGMENTS_TOPIC,
                                      DLQ_TOPIC, group, produced, PARTITIONS,
                                      OUT_PARTITIONS)
        fences = [l for l in a.log_lines() if l.get("msg") == FENCE_MSG]
        say(f"  A's fencing lines: {len(fences)}: "
            + "; ".join(f"refused={l.get('refused')} "
                        f"accepted={l.get('accepted')}" for l in fences[:5]))
        for name, c in (("A", ca), ("B", cb)):
            say(f"  {name} stopped: " + ", ".join(
                f"{k}={c.get(k)}" for k in (
                    "events", "applied", "skipped_redelivered", "duplicates",
                    "writes", "write_conflicts", "writes_fenced",
                    "epochs_acquired", "batches", "outputs")))
        a_lost = loadgen.count_msgs(a, "partitions revoked",
                                    lambda l: l.get("lost"))
        say(f"  rebalances: A {loadgen.count_msgs(a, 'partitions assigned')}"
            f" assignments / {loadgen.count_msgs(a, 'partitions revoked')} "
            f"revocations ({a_lost} lost), "
            f"B {loadgen.count_msgs(b, 'partitions assigned')} / "
            f"{loadgen.count_msgs(b, 'partitions revoked')}")
        say(f"  end state: {fig['customers']} customer hashes = cpmodel "
            f"(lv, o, m, n, f, l, s, q, sl, sv, w:*; no outbox), "
            f"{fig['orders']} counted "
            f"orders; {fig['outputs']} CloudEvents as {fig['records']} "
            f"records ({fig['dups']} byte-identical duplicates); DLQ "
            f"empty; committed = end")
        say(f"test_zombie: passed in {total.s():.1f}s ({checks_made()} "
            "checks)")


if __name__ == "__main__":
    main()
