"""SIGTERM under load: a clean stop is quick and exact, and a restart with
the same group re-consumes nothing.

One instance consumes a 3-partition input topic while a producer feeds
valid order events at a steady rate (loadgen.EventStream). It is stopped
with SIGTERM in the middle of the stream and restarted with the same group
CYCLES times (the load goes on while it is down); the last instance runs
until the group's committed offsets equal the end offsets, then gets
SIGTERM too. A stop under load is aimed: the signal goes out as soon as
Redis has run a new EVALSHA (a WRITE round began), so the batch's outputs
and outbox clears are in flight and must be finished before the exit.

Checked for every stop: exit status 0 within shutdown.timeout_ms (5000)
plus MARGIN_S (time from the signal to the process's exit, printed).
For every instance's final stats ("stopped" line): skipped_redelivered == 0
(a restart starts exactly where the previous instance committed). Over all
instances: the events counters add up to exactly the events produced
(nothing consumed twice, nothing left out). End state
(loadgen.check_end_state): every customer hash equals cpmodel's replay of
the input topic on lv, o, m, n, f, l, s, q, sl, sv, w:* with no outbox left,
every expected CloudEvent is there with exactly the expected content - and,
since every stop was clean, not a single duplicate - DLQ empty, committed =
end.

CI size: 3 restarts, 8 s of running each; CP_LONG=1: 15 restarts.
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

SEED = 20240417
PARTITIONS = 3
OUT_PARTITIONS = 3
N_CUSTOMERS = 6000 if loadgen.LONG else 2000
RATE = 250                          # events per second
CYCLES = 15 if loadgen.LONG else 3  # SIGTERM + restart while loaded
RUN_S = 8.0                         # each instance runs this long
DOWN_S = 2.0                        # stopped this long, load going on
SHUTDOWN_MS = 5000
MARGIN_S = 2.0
DRAIN_TIMEOUT_S = 120
NEED = ("events", "skipped_redelivered", "applied", "duplicates", "dlq",
        "batches", "outputs")


def sigterm(cp):
    """SIGTERM; returns (exit status, seconds from the signal to the
    exit)."""
    t0 = time.monotonic()
    cp.proc.send_signal(signal.SIGTERM)
    try:
        rc = cp.wait(SHUTDOWN_MS / 1000 + 30)
    except Exception:  # noqa: BLE001 - still running: fail below
        cp.kill9()
        rc = None
    return rc, time.monotonic() - t0


def main():
    total = Stopwatch()
    say(f"SIGTERM under load: {CYCLES} stops and restarts with the same "
        f"group, {RATE} events/s on {PARTITIONS} partitions, "
        f"shutdown.timeout_ms {SHUTDOWN_MS} (seed {SEED})")
    with Stack() as st:
        st.create_topic(ORDERS_TOPIC, partitions=PARTITIONS)
        cfg = config(st, clock="event", **loadgen.REF.config(), **{
            "topic.partitions": OUT_PARTITIONS,
            "shutdown.timeout_ms": SHUTDOWN_MS})
        group = cfg["kafka.group.id"]
        stream = loadgen.EventStream(SEED, N_CUSTOMERS)
        prod = loadgen.SteadyProducer(st, ORDERS_TOPIC, stream, RATE).start()
        clock = Stopwatch()
        runs = []       # (instance, exit status, seconds to exit, counters)

        def run_once(i, last):
            cp = Custpulse(st, cfg, name=f"run{i:02d}")
            cp.start(["run"])
            loadgen.wait_log(cp, lambda l: l.get("msg") == "partitions "
                             "assigned" and l.get("count", 0) > 0, 60,
                             f"{cp.name}: partitions assigned")
            time.sleep(RUN_S)
            produced = None
            if last:
                produced = prod.stop()
                ends, _ = loadgen.end_offsets_of(st, ORDERS_TOPIC,
                                                 PARTITIONS)
                loadgen.wait_committed(
                    st, group, ORDERS_TOPIC, ends, DRAIN_TIMEOUT_S,
                    alive=lambda: loadgen.expect_alive([cp]))
            loadgen.expect_alive([cp])
            before = prod.written
            # Under load: aimed just after a WRITE round began, so the
            # batch's outputs and outbox clears are still in flight.
            aimed = not last and loadgen.wait_write_round(st)
            rc, secs = sigterm(cp)
            expect(rc is not None, f"{cp.name}: still running "
                   f"{secs:.0f}s after SIGTERM (then SIGKILLed)",
                   "stderr tail:\n" + cp.stderr_text()[-2000:])
            expect(rc == 0, f"{cp.name}: exit status after SIGTERM",
                   f"{rc}\n{cp.stderr_text()[-2000:]}")
            expect(secs <= SHUTDOWN_MS / 1000 + MARGIN_S,
                   f"{cp.name}: exited within shutdown.timeout_ms + "
                   f"{MARGIN_S}s", f"took {secs:.2f}s")
            c = loadgen.stopped_counters(cp, NEED)
            expect(c["skipped_redelivered"] == 0,
                   f"{cp.name}: skipped_redelivered == 0 (a restart "
                   "re-consumes nothing)", json.dumps(c))
            runs.append((cp, rc, secs, c))
            say(f"  [{clock.s():5.1f}s] {cp.name}: SIGTERM "
                f"{'after the end' if last else 'under load'}"
                f"{' (aimed at a write round)' if aimed else ''} "
                f"({before} events produced): exit {rc} in {secs:.2f}s; "
                f"events={c['events']} applied={c['applied']} "
                f"skipped_redelivered={c['skipped_redelivered']} "
                f"batches={c['batches']} outputs={c['outputs']}")
            return produced

        try:
            for i in range(CYCLES):
                run_once(i, last=False)
                time.sleep(DOWN_S)
            produced = run_once(CYCLES, last=True)
        finally:
            prod.kill()

        total_events = sum(c["events"] for _, _, _, c in runs)
        expect(total_events == produced, "events counted over all instances"
               " = events produced (nothing consumed twice or left out)",
               f"{total_events} != {produced}")
        fig = loadgen.check_end_state(st, ORDERS_TOPIC, SEGMENTS_TOPIC,
                                      DLQ_TOPIC, group, produced, PARTITIONS,
                                      OUT_PARTITIONS)
        expect(fig["dups"] == 0, "no duplicate output after clean stops",
               f"{fig['dups']} duplicates")
        secs = [s for _, _, s, _ in runs]
        say(f"  {len(runs)} SIGTERMs ({CYCLES} under load): all exit 0 in "
            f"{min(secs):.2f}..{max(secs):.2f}s (limit "
            f"{SHUTDOWN_MS / 1000 + MARGIN_S:.1f}s); skipped_redelivered 0 "
            f"in every instance; events counted {total_events} = produced")
        say(f"  end state: {fig['customers']} customer hashes = cpmodel "
            f"(lv, o, m, n, f, l, s, q, sl, sv, w:*; no outbox), "
            f"{fig['orders']} counted "
            f"orders; exactly the {fig['outputs']} CloudEvents, no "
            f"duplicate; DLQ empty; committed = end")
        say(f"test_sigterm_load: passed in {total.s():.1f}s "
            f"({checks_made()} checks)")


if __name__ == "__main__":
    main()
