"""SIGTERM past the shutdown deadline: with Redis or the broker hung, a
stop still ends within shutdown.timeout_ms, and nothing is lost.

One instance consumes a 3-partition input topic while a producer feeds
valid order events at a steady rate (loadgen.EventStream, SteadyProducer).
A service is SIGSTOPped under load, then custpulse gets SIGTERM
(shutdown.timeout_ms 3000: the batch in flight gets three quarters of it,
the final commit and the group leave the rest; app.c begin_stop,
finish_shutdown). The service is SIGCONTed once custpulse has exited.
Two scenarios share one Stack, each with its own topics, Redis key prefix
and group:

  a  Redis hung (redis.timeout_ms 1000). The signal is aimed: Redis is
     stopped just after a WRITE round began (loadgen.wait_write_round),
     and SIGTERM waits for the "redis unavailable; retrying" warn line
     with reason "command deadline passed": a command of the batch timed
     out, so the batch waits for a Redis that does not answer and cannot
     finish (the aim is tried again, Redis resumed in between, when no
     deadline passes). Checked: exit within 3 s + MARGIN_S; the warn line
     "shutdown deadline: abandoning the batch in flight; ..." with
     messages > 0 (batch.c cp__batch_abandon); exit status 0 - the
     broker is fine, so the final commit of the batches finished before
     succeeds (no "final commit failed" line) and begin_stop's code for
     a signal is 0; the "stopped" line is there with exit_code 0. As
     every final commit succeeded, the instances' events counters add up
     to exactly the events produced: the abandoned batch's events were
     counted once, by a later instance (re-consumed, not lost, not
     counted twice).
  b  Broker hung (the broker's JVM SIGSTOPped just after a WRITE round
     began, SIGTERM BROKER_HUNG_S later). The final commit cannot
     complete: exit within 3 s + MARGIN_S; the error line "final commit
     failed; the last offsets may be consumed again after a restart ..."
     (app.c final_commit, which waits until the deadline), then the warn
     line "shutdown deadline: exiting without a clean group leave; ..."
     (close_consumer: no time left); exit status 1 (finish_shutdown: a
     failed final commit turns exit code 0 into 1); the "stopped" line
     with exit_code 1. The batch in flight, if any, is abandoned too
     (printed, not required: with the broker hung, batches without
     outputs still finish). So that the final commit always has offsets
     to commit, the hung instances run with kafka.auto.commit.interval.ms
     60000 (nothing auto-committed during their run; otherwise the
     outcome would depend on whether a batch finished since the last
     auto-commit, exit 0 when none did). Their last commit request may
     still be served once the broker resumes; the next instance starts
     from whatever was committed, so events counted over all instances
     >= produced (re-consumed events printed).

Every scenario then resumes the service (the broker until its metadata
answers with every partition led), stops the load and runs a fresh
instance with the same group to the end (`run --exit-at-end`, exit 0).
Short sessions (kafka.session.timeout.ms 3000, the broker's
group.min.session.timeout.ms lowered) let the group drop a member that
left without a clean leave quickly. The broker's own KRaft session
(broker.session.timeout.ms, 4 s in the template) is raised to 15 s so its
controller - the same process - does not fence it for the seconds it was
stopped: the test is about custpulse, not a broker's recovery. End state
(loadgen.check_end_state): every customer hash equals cpmodel's replay of
the input topic on lv, o, m, n, f, l, s, q, sl, sv, w:* with no outbox
left, every expected CloudEvent is there with exactly the expected content, a
repeated id only as a byte-identical copy (counted), DLQ empty, committed
= end.

CI size: one hung stop per scenario, 4 s of load before it (about 30 s
with the Stack). CP_LONG=1: 3 hung stops per scenario (a new instance
with the same group after each), 8 s of load before each (about 90 s).

    python3 test_shutdown_deadline.py [a b]    # all, or only the named
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import faultutil  # noqa: E402
import harness  # noqa: E402
import loadgen  # noqa: E402
from cpcheck import CheckFailed, Stopwatch, expect  # noqa: E402
from harness import Custpulse, Stack, config  # noqa: E402
from itest_util import checks_made, say  # noqa: E402

LONG = loadgen.LONG
PARTITIONS = 3
OUT_PARTITIONS = 3
N_CUSTOMERS = 1500 if LONG else 400
RATE = 400 if LONG else 200         # events per second
ROUNDS = 3 if LONG else 1           # hung stops per scenario
RUN_S = 8.0 if LONG else 4.0        # load before each stop
SHUTDOWN_MS = 3000
REDIS_TIMEOUT_MS = 1000
MARGIN_S = 3.0
AIM_TRIES = 3                       # a: aims at a batch waiting for Redis
AIM_WAIT_S = 3.0                    # a: beyond redis.timeout_ms
BROKER_HUNG_S = 0.5                 # b: SIGSTOP -> SIGTERM
SESSION_MS = 3000
HEARTBEAT_MS = 500
RUN_TIMEOUT_S = 180                 # the run to the end
SEEDS = {"a": 20240601, "b": 20240602}
TITLES = {"a": "Redis hung at SIGTERM", "b": "broker hung at SIGTERM"}
ABANDON_MSG = "shutdown deadline: abandoning the batch in flight"
COMMIT_MSG = "final commit failed; the last offsets may be consumed again"
LEAVE_MSG = "shutdown deadline: exiting without a clean group leave"
UNAVAILABLE_MSG = "redis unavailable; retrying"
NEED = ("events", "applied", "skipped_redelivered", "duplicates", "outputs",
        "batches", "redis_timeouts", "exit_code")


# ---- the broker's process --------------------------------------------------

def pause_kafka(st):
    """SIGSTOP the broker's JVM: connections stay open, nothing answers."""
    os.kill(st.kafka_proc.pid, signal.SIGSTOP)
    st.kafka_paused = True


def resume_kafka(st, timeout=60):
    """SIGCONT, then wait until its metadata answers with every partition
    led. Returns the seconds waited."""
    os.kill(st.kafka_proc.pid, signal.SIGCONT)
    st.kafka_paused = False
    t0 = time.monotonic()
    harness.wait_until(lambda: harness._kafka_ready(st.kafka_port), timeout,
                       "kafka usable after SIGCONT", 0.1)
    return time.monotonic() - t0


def heal(st):
    """After a failure: every service running and answering again."""
    if st.redis_proc is not None and st.redis_paused:
        st.resume_redis()
    if st.kafka_proc is not None and getattr(st, "kafka_paused", False):
        resume_kafka(st)


# ---- one scenario ----------------------------------------------------------

def lines_with(cp, prefix, level=None):
    """custpulse's parsed log lines whose msg starts with prefix (and at
    level, if given)."""
    return [ln for ln in cp.log_lines()
            if ln.get("msg", "").startswith(prefix)
            and (level is None or ln.get("level") == level)]


class Scenario:
    """One scenario's topics, prefix, group, instances and producer."""

    live = []   # created and not yet cleaned up

    def __init__(self, st, tag):
        Scenario.live.append(self)
        self.st, self.tag = st, tag
        self.topic = f"orders.{tag}"
        self.segments = f"segments.{tag}"
        self.dlq = f"dlq.{tag}"
        self.prefix = f"{tag}:"
        st.create_topic(self.topic, partitions=PARTITIONS)
        self.cfg = config(st, clock="event", **loadgen.REF.config(), **{
            "topic.orders": self.topic, "topic.segments": self.segments,
            "topic.dlq": self.dlq, "redis.key_prefix": self.prefix,
            "topic.partitions": OUT_PARTITIONS,
            "shutdown.timeout_ms": SHUTDOWN_MS,
            "redis.timeout_ms": REDIS_TIMEOUT_MS,
            "kafka.session.timeout.ms": SESSION_MS,
            "kafka.heartbeat.interval.ms": HEARTBEAT_MS})
        self.group = self.cfg["kafka.group.id"]
        self.instances = []
        self.stream = loadgen.EventStream(SEEDS[tag], N_CUSTOMERS,
                                          prefix=tag)
        self.prod = loadgen.SteadyProducer(st, self.topic, self.stream, RATE)
        self.clock = Stopwatch()

    def note(self, s):
        say(f"  [{self.tag} {self.clock.s():5.1f}s] {s}")

    def start(self, name, cfg=None):
        cp = Custpulse(self.st, cfg or self.cfg,
                       name=f"custpulse-{self.tag}-{name}")
        self.instances.append(cp)
        cp.start(["run"])
        loadgen.wait_log(cp, lambda ln: ln.get("msg") == "partitions "
                         "assigned" and ln.get("count", 0) > 0, 60,
                         f"{cp.name}: partitions assigned")
        return cp

    def sleep_alive(self, cp, secs):
        end = time.monotonic() + secs
        while time.monotonic() < end:
            loadgen.expect_alive([cp])
            expect(self.prod.error is None, "producer thread failed",
                   repr(self.prod.error))
            time.sleep(min(0.25, max(0.0, end - time.monotonic())))

    def sigterm(self, cp):
        """SIGTERM; (exit status or None, seconds from the signal to the
        exit). A process still running well past the deadline is
        SIGKILLed and reported as None."""
        loadgen.expect_alive([cp])
        t0 = time.monotonic()
        cp.proc.send_signal(signal.SIGTERM)
        try:
            rc = cp.wait(SHUTDOWN_MS / 1000 + 30)
        except subprocess.TimeoutExpired:
            cp.kill9()
            rc = None
        return rc, time.monotonic() - t0

    def check_exit(self, cp, rc, secs, want_rc):
        """The exit: in time, with want_rc, and the "stopped" line."""
        expect(rc is not None, f"{cp.name}: still running {secs:.0f}s after "
               "SIGTERM (then SIGKILLed)",
               "last log lines:\n" + "\n".join(
                   cp.stderr_text().splitlines()[-12:]))
        limit = SHUTDOWN_MS / 1000 + MARGIN_S
        expect(secs <= limit, f"{cp.name}: exited within shutdown.timeout_ms"
               f" + {MARGIN_S:.0f}s", f"took {secs:.2f}s > {limit:.1f}s")
        expect(rc == want_rc, f"{cp.name}: exit status after SIGTERM",
               f"{rc}, want {want_rc}\n{cp.stderr_text()[-2000:]}")
        c = loadgen.stopped_counters(cp, NEED)
        expect(c["exit_code"] == want_rc, f"{cp.name}: stopped line "
               "exit_code", json.dumps(c))
        return c

    def finish(self, produced):
        """The run to the end with the same group, then the end state.
        Returns (figures, final counters)."""
        cp = Custpulse(self.st, self.cfg, name=f"custpulse-{self.tag}-end")
        self.instances.append(cp)
        t = Stopwatch()
        rc, lines = faultutil.run_to_end(cp, RUN_TIMEOUT_S)
        expect(rc == 0, f"{cp.name}: `run --exit-at-end` exit status",
               f"{rc}\n{cp.stderr_text()[-2000:]}")
        c = faultutil.last_stopped(lines)
        expect(c is not None, f"{cp.name}: no 'stopped' line")
        self.note(f"{cp.name}: run to the end, exit 0 in {t.s():.1f}s; "
                  f"events={c['events']} applied={c['applied']} "
                  f"skipped_redelivered={c['skipped_redelivered']} "
                  f"duplicates={c['duplicates']} outputs={c['outputs']}")
        fig = loadgen.check_end_state(
            self.st, self.topic, self.segments, self.dlq, self.group,
            produced, PARTITIONS, OUT_PARTITIONS, self.prefix)
        self.note(f"end state exact: {fig['customers']} customer hashes = "
                  f"cpmodel on lv, o, m, n, f, l, s, q, sl, sv, w:* "
                  f"(no outbox left), "
                  f"{fig['orders']} counted orders; {fig['outputs']} "
                  f"CloudEvents as {fig['records']} records "
                  f"({fig['dups']} byte-identical duplicates); DLQ empty; "
                  f"committed = end {fig['ends']}")
        return fig, c

    def cleanup(self):
        self.prod.kill()
        for cp in self.instances:
            if cp.running():
                cp.kill9()


# ---- a: Redis hung at SIGTERM ----------------------------------------------

def aim_redis(sc, cp):
    """Stops Redis just after a WRITE round began and waits until a command
    of the batch passes its deadline (the batch then waits for Redis and
    cannot finish). Tries again (Redis resumed in between) when none does.
    Returns (attempt, seconds from the stop to the deadline line)."""
    st = sc.st
    for attempt in range(1, AIM_TRIES + 1):
        n0 = len(lines_with(cp, UNAVAILABLE_MSG))
        loadgen.wait_write_round(st)
        st.pause_redis()
        t0 = time.monotonic()
        end = t0 + REDIS_TIMEOUT_MS / 1000 + AIM_WAIT_S
        while time.monotonic() < end:
            loadgen.expect_alive([cp])
            new = lines_with(cp, UNAVAILABLE_MSG)[n0:]
            if any(ln.get("reason") == "command deadline passed"
                   for ln in new):
                return attempt, time.monotonic() - t0
            time.sleep(0.05)
        st.resume_redis()
        sc.note(f"aim {attempt}: no command deadline passed within "
                f"{end - t0:.1f}s of the stop; Redis resumed, again")
        sc.sleep_alive(cp, 2.0)
    expect(False, f"a: no batch waiting for Redis after {AIM_TRIES} aims")


def scenario_a(st):
    sc = Scenario(st, "a")
    sc.prod.start()
    sc.note(f"load: {RATE} events/s for {N_CUSTOMERS} customers")
    stops = []
    counted = 0
    for k in range(ROUNDS):
        cp = sc.start(f"r{k}")
        sc.sleep_alive(cp, RUN_S)
        attempt, waited = aim_redis(sc, cp)
        try:
            written = sc.prod.written
            rc, secs = sc.sigterm(cp)
        finally:
            st.resume_redis()
        sc.note(f"{cp.name}: Redis SIGSTOPped (aim {attempt}), a command "
                f"deadline passed {waited:.2f}s later, SIGTERM ({written} "
                f"events produced): exit {rc} in {secs:.2f}s; Redis "
                "SIGCONTed")
        c = sc.check_exit(cp, rc, secs, 0)
        ab = lines_with(cp, ABANDON_MSG, "warn")
        expect(len(ab) == 1 and ab[0].get("messages", 0) > 0,
               f"a: one warn line '{ABANDON_MSG}...' with messages > 0",
               json.dumps(ab)[:600])
        failed = lines_with(cp, "final commit failed")
        expect(not failed, "a: no 'final commit failed' line (the broker "
               "is fine)", json.dumps(failed)[:600])
        leave = lines_with(cp, LEAVE_MSG)
        counted += c["events"]
        stops.append(secs)
        sc.note(f"{cp.name}: '{ab[0]['msg'][:48]}...' messages="
                f"{ab[0]['messages']}; group leave "
                f"{'NOT clean' if leave else 'clean'}; stopped: "
                f"exit_code={c['exit_code']} events={c['events']} "
                f"batches={c['batches']} redis_timeouts="
                f"{c['redis_timeouts']}")
    produced = sc.prod.stop()
    sc.note(f"load stopped: {produced} events in {sc.prod.elapsed():.1f}s")
    fig, c = sc.finish(produced)
    counted += c["events"]
    expect(counted == produced, "a: events counted over all instances = "
           "events produced (the abandoned batches re-consumed once, "
           "nothing lost or counted twice)", f"{counted} != {produced}")
    sc.note(f"events counted over {ROUNDS + 1} instances: {counted} = "
            "produced")
    fig.update(stops=stops, rcs=[0] * len(stops), fault="Redis SIGSTOP")
    return fig


# ---- b: broker hung at SIGTERM ---------------------------------------------

def scenario_b(st):
    sc = Scenario(st, "b")
    hung_cfg = dict(sc.cfg, **{"kafka.auto.commit.interval.ms": 60000})
    sc.prod.start()
    sc.note(f"load: {RATE} events/s for {N_CUSTOMERS} customers")
    stops = []
    counted = 0
    for k in range(ROUNDS):
        cp = sc.start(f"r{k}", hung_cfg)
        before = st.committed(sc.group, sc.topic)
        sc.sleep_alive(cp, RUN_S)
        aimed = loadgen.wait_write_round(st)
        pause_kafka(st)
        t_stop = time.monotonic()
        try:
            time.sleep(BROKER_HUNG_S)
            written = sc.prod.written
            rc, secs = sc.sigterm(cp)
        finally:
            hung = time.monotonic() - t_stop
            ready = resume_kafka(st)
        sc.note(f"{cp.name}: broker SIGSTOPped"
                f"{' just after a WRITE round began' if aimed else ''}, "
                f"SIGTERM {BROKER_HUNG_S}s later ({written} events "
                f"produced): exit {rc} in {secs:.2f}s; broker SIGCONTed "
                f"after {hung:.1f}s, usable {ready:.1f}s later")
        c = sc.check_exit(cp, rc, secs, 1)
        fc = lines_with(cp, COMMIT_MSG, "error")
        expect(len(fc) == 1, f"b: one error line '{COMMIT_MSG}...'",
               json.dumps(lines_with(cp, "final commit"))[:600])
        leave = lines_with(cp, LEAVE_MSG, "warn")
        expect(len(leave) == 1, f"b: one warn line '{LEAVE_MSG}...'",
               cp.stderr_text()[-1500:])
        ab = lines_with(cp, ABANDON_MSG, "warn")
        committed = st.committed(sc.group, sc.topic)
        counted += c["events"]
        stops.append(secs)
        sc.note(f"{cp.name}: '{fc[0]['msg'][:40]}...' (error "
                f"{fc[0].get('error')!r}); '{leave[0]['msg'][:40]}...'; "
                f"batch abandoned: "
                f"{'%d messages' % ab[0]['messages'] if ab else 'none'}; "
                f"stopped: exit_code={c['exit_code']} events={c['events']} "
                f"batches={c['batches']}")
        sc.note(f"committed after the broker resumed: {committed}"
                + (" (the final commit request sent before the deadline "
                   "was served late)" if committed != before else
                   " (unchanged: the final commit request was not served)"))
    produced = sc.prod.stop()
    sc.note(f"load stopped: {produced} events in {sc.prod.elapsed():.1f}s")
    fig, c = sc.finish(produced)
    counted += c["events"]
    expect(counted >= produced, "b: events counted over all instances >= "
           "events produced (nothing left out)", f"{counted} < {produced}")
    sc.note(f"events counted over {ROUNDS + 1} instances: {counted} "
            f"(produced {produced}: {counted - produced} consumed again "
            f"after the failed final commit{'s' if ROUNDS > 1 else ''}); "
            f"the last run skipped {c['skipped_redelivered']} as "
            "re-deliveries (watermarks)")
    fig.update(stops=stops, rcs=[1] * len(stops), fault="broker SIGSTOP")
    return fig


SCENARIOS = [("a", scenario_a), ("b", scenario_b)]


def main():
    total = Stopwatch()
    only = set(sys.argv[1:])
    unknown = only - set(TITLES)
    if unknown:
        raise SystemExit(f"unknown scenarios {sorted(unknown)}; pick from "
                         f"{list(TITLES)}")
    say(f"SIGTERM past the shutdown deadline: {RATE} events/s on "
        f"{PARTITIONS} partitions, {N_CUSTOMERS} customers, {ROUNDS} hung "
        f"stop(s) per scenario, shutdown.timeout_ms {SHUTDOWN_MS}"
        f"{' (CP_LONG)' if LONG else ''}")
    results = []
    with Stack(broker_props={"group.min.session.timeout.ms": 1000,
                             "broker.session.timeout.ms": 15000}) as st:
        say(f"stack up in {total.s():.1f}s (kafka ready in "
            f"{st.kafka_start_s:.1f}s)")
        for tag, run in SCENARIOS:
            if only and tag not in only:
                continue
            say(f"\nscenario {tag}: {TITLES[tag]}")
            t = Stopwatch()
            try:
                fig = run(st)
                results.append((tag, fig, t.s(), None))
            except (CheckFailed, TimeoutError, RuntimeError) as e:
                say(f"  [{tag}] FAILED: {e}")
                results.append((tag, None, t.s(), e))
            finally:
                for sc in Scenario.live:
                    sc.cleanup()
                Scenario.live.clear()
                heal(st)
        say(f"\n{'scenario':8} {'result':6} {'exit':>4} {'secs to exit':>12}"
            f" {'events':>6} {'hashes':>6} {'changes':>7} {'dups':>4} "
            f"{'secs':>5}")
        for tag, f, secs, err in results:
            if err is not None:
                say(f"{tag:8} FAILED {str(err)[:160]}")
                continue
            exits = ",".join(f"{s:.2f}" for s in f["stops"])
            say(f"{tag:8} pass   {f['rcs'][0]:>4} {exits:>12} "
                f"{f['events']:>6} {f['customers']:>6} {f['outputs']:>7} "
                f"{f['dups']:>4} {secs:>5.1f}")
        failed = [tag for tag, _, _, err in results if err is not None]
        say(f"test_shutdown_deadline: {len(results) - len(failed)} of "
            f"{len(results)} scenarios passed in {total.s():.1f}s "
            f"({checks_made()} checks; exit limit "
            f"{SHUTDOWN_MS / 1000 + MARGIN_S:.1f}s)")
        if failed:
            raise SystemExit("test_shutdown_deadline FAILED: "
                             + ", ".join(failed))


if __name__ == "__main__":
    main()
