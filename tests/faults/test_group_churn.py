"""Group churn under load: custpulse instances come and go in one consumer
group while events keep coming; nothing is lost or counted twice.

Three instances share a group on a 6-partition input topic while a
producer feeds valid order events at a steady rate (loadgen.EventStream:
one UTC day, so the exact state and CloudEvents do not depend on how the
partitions were spread). Every CHURN_S seconds a new instance joins and,
half a period later, the oldest one leaves - alternately by SIGTERM (must
exit 0) and by kill -9, each sent just after a WRITE round began in Redis
(loadgen.wait_write_round), so batches are often in flight. Short
sessions (broker group.min.session.timeout.ms lowered) make the group
notice a killed member quickly, so every change is a rebalance
(cooperative-sticky) while events keep coming. After the
load, the last three instances run until the group's committed offsets
equal the end offsets, then get SIGTERM (exit 0).

Checked (loadgen.check_end_state): every customer hash equals cpmodel's
replay of the input topic on lv, o, m, n, f, l, s, q, sl, sv and
the watermarks in w (no outbox left, no customer missing or extra);
the output topic holds every expected CloudEvent with exactly the expected
content, duplicates (from kill -9) only as byte-identical copies; the DLQ is
empty; committed = end on every partition.

CI size: ~45 s of load, a change every 5 s; CP_LONG=1: 6 minutes.
"""
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

SEED = 20240415
PARTITIONS = 6
OUT_PARTITIONS = 3
N_CUSTOMERS = 6000 if loadgen.LONG else 2000
RATE = 400                          # events per second
LOAD_S = 360 if loadgen.LONG else 45
CHURN_S = 5.0                       # one instance in, one out, per period
INSTANCES = 3
SESSION_MS = 3000
HEARTBEAT_MS = 500
DRAIN_TIMEOUT_S = 120


def main():
    total = Stopwatch()
    say(f"group churn: {INSTANCES} instances, {PARTITIONS} partitions, "
        f"{RATE} events/s for {LOAD_S}s, one in and one out every "
        f"{CHURN_S:.0f}s (seed {SEED})")
    with Stack(broker_props={"group.min.session.timeout.ms": 1000}) as st:
        st.create_topic(ORDERS_TOPIC, partitions=PARTITIONS)
        cfg = config(st, clock="event", **loadgen.REF.config(), **{
            "topic.partitions": OUT_PARTITIONS,
            "kafka.session.timeout.ms": SESSION_MS,
            "kafka.heartbeat.interval.ms": HEARTBEAT_MS,
            "shutdown.timeout_ms": 5000})
        group = cfg["kafka.group.id"]
        all_cps = []
        live = []
        n = [0]

        def start_one():
            n[0] += 1
            cp = Custpulse(st, cfg, name=f"cp{n[0]:02d}")
            cp.start(["run"])
            all_cps.append(cp)
            live.append(cp)
            return cp

        for _ in range(INSTANCES):
            start_one()
        stream = loadgen.EventStream(SEED, N_CUSTOMERS)
        prod = loadgen.SteadyProducer(st, ORDERS_TOPIC, stream, RATE).start()
        stops = []              # (name, how, status, seconds to exit)
        try:
            t_load = time.monotonic()
            step = 0
            while True:
                t_next = t_load + (step + 1) * CHURN_S
                if t_next + CHURN_S / 2 > t_load + LOAD_S:
                    break
                time.sleep(max(0.0, t_next - time.monotonic()))
                loadgen.expect_alive(live)
                new = start_one()
                time.sleep(CHURN_S / 2)
                loadgen.expect_alive(live)
                victim = live.pop(0)
                how = "SIGTERM" if step % 2 == 0 else "kill -9"
                # Aimed just after some instance's WRITE round began, so a
                # batch is more likely in flight in the victim too.
                loadgen.wait_write_round(st, timeout=2)
                t0 = time.monotonic()
                if how == "SIGTERM":
                    rc = victim.stop(signal.SIGTERM, timeout=30)
                else:
                    rc = victim.kill9()
                secs = time.monotonic() - t0
                stops.append((victim.name, how, rc, secs))
                say(f"  [{time.monotonic() - t_load:5.1f}s] +{new.name} "
                    f"-{victim.name} ({how}: status {rc} after {secs:.2f}s); "
                    f"{prod.written} events produced")
                expect(rc == (0 if how == "SIGTERM" else -signal.SIGKILL),
                       f"{victim.name}: exit status after {how}",
                       f"{rc}\n{victim.stderr_text()[-2000:]}")
                step += 1
            time.sleep(max(0.0, t_load + LOAD_S - time.monotonic()))
            loadgen.expect_alive(live)
            produced = prod.stop()
        finally:
            prod.kill()
        say(f"  load done: {produced} events in {prod.elapsed():.1f}s; "
            f"{len(all_cps)} instances started, {len(stops)} stopped "
            f"({sum(1 for s in stops if s[1] == 'SIGTERM')} SIGTERM, "
            f"{sum(1 for s in stops if s[1] == 'kill -9')} kill -9)")

        ends, _ = loadgen.end_offsets_of(st, ORDERS_TOPIC, PARTITIONS)
        waited = loadgen.wait_committed(
            st, group, ORDERS_TOPIC, ends, DRAIN_TIMEOUT_S,
            alive=lambda: loadgen.expect_alive(live))
        say(f"  committed = end {sum(ends.values())} on every partition "
            f"{waited:.1f}s after the load ended")
        for cp in list(live):
            t0 = time.monotonic()
            rc = cp.stop(signal.SIGTERM, timeout=30)
            secs = time.monotonic() - t0
            stops.append((cp.name, "SIGTERM (end)", rc, secs))
            expect(rc == 0, f"{cp.name}: exit status after the final SIGTERM",
                   f"{rc}\n{cp.stderr_text()[-2000:]}")
        live.clear()

        fig = loadgen.check_end_state(st, ORDERS_TOPIC, SEGMENTS_TOPIC,
                                      DLQ_TOPIC, group, produced, PARTITIONS,
                                      OUT_PARTITIONS)

        # Figures from the logs (kill -9'd instances have no stopped line).
        assigned = sum(loadgen.count_msgs(c, "partitions assigned",
                                          lambda l: l.get("count", 0) > 0)
                       for c in all_cps)
        revoked = sum(loadgen.count_msgs(c, "partitions revoked",
                                         lambda l: l.get("count", 0) > 0)
                      for c in all_cps)
        lost = sum(loadgen.count_msgs(c, "partitions revoked",
                                      lambda l: l.get("lost"))
                   for c in all_cps)
        counters = {}
        for c in all_cps:
            lines = [l for l in c.log_lines() if l.get("msg") == "stopped"]
            for k, v in (lines[-1] if lines else {}).items():
                if isinstance(v, int) and k != "exit_code":
                    counters[k] = counters.get(k, 0) + v
        term_s = [s[3] for s in stops if s[1].startswith("SIGTERM")]
        say(f"  rebalances seen by the instances: {assigned} non-empty "
            f"assignments, {revoked} non-empty revocations ({lost} lost)")
        say(f"  SIGTERM exits: {len(term_s)}, all status 0, "
            f"{min(term_s):.2f}..{max(term_s):.2f}s")
        say("  counters summed over the cleanly stopped instances: "
            + ", ".join(f"{k}={counters[k]}" for k in (
                "events", "applied", "skipped_redelivered", "duplicates",
                "write_conflicts", "writes_fenced", "epochs_acquired",
                "batches", "outputs") if k in counters))
        say(f"  end state: {fig['customers']} customer hashes = cpmodel "
            f"(lv, o, m, n, f, l, s, q, sl, sv, w:*; no outbox), "
            f"{fig['orders']} counted "
            f"orders; {fig['outputs']} CloudEvents as {fig['records']} "
            f"records ({fig['dups']} byte-identical duplicates); DLQ "
            f"empty; committed = end")
        say(f"test_group_churn: passed in {total.s():.1f}s "
            f"({checks_made()} checks)")


if __name__ == "__main__":
    main()
