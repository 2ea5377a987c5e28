"""The command line and topics (docs/contracts.md section 6).

Config: `custpulse config --list` prints docs/config.md exactly; an unknown
key (-X or CUSTPULSE_*) and bad values are exit 2 naming the key; the
environment beats the properties file and -X beats the environment (shown
with redis.port through `inspect` against the stack's Redis); usage errors
exit 2.

hash-id: `custpulse hash-id -X log.id_key=K ID...` prints "<id>\th:<16 hex>",
equal to SipHash-2-4 computed here from the paper (and the key derivation
of common/siphash.h), without services; with an empty log.id_key it
refuses (exit 2). Against the stack, the consumer's own log line for a
customer (its Redis key holds another type) carries that same value and
never the raw id.

Topics: with --exit-at-end a missing input topic counts as ended (exit 0)
and the output and DLQ topics are created; a long-running custpulse started
before its input topic exists picks the topic up once it is created, applies
its events exactly, and exits 0 soon after SIGTERM.
"""
import json
import os
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
from harness import (CP_BIN, SOURCE_DIR, Custpulse, Stack,  # noqa: E402
                     config, free_port, wait_until)
from itest_util import (SEGMENTS_TOPIC, Timer, check,  # noqa: E402
                        check_customer_states, check_eq, check_output_records,
                        checks_made, customer_hashes, order_event, records_for,
                        say)

CONFIG_MD = os.path.join(SOURCE_DIR, "docs", "config.md")
ID_KEY = "test-log-id-key-5f1c"
REF = cpmodel.Fixed(recency_days=30, frequency=2, monetary="100.00")
CREATED_TOPICS = ("customer.segment-changes", "customer.churn-warnings",
                  "customer.metrics", "custpulse.dlq")
OUTPUT_PARTITIONS = 3


def clean_env(**extra):
    """This process's environment without CUSTPULSE_* variables, plus extra."""
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CUSTPULSE_")}
    env.update(extra)
    return env


def run_bin(args, env=None, timeout=30):
    return subprocess.run([CP_BIN, *args], capture_output=True, text=True,
                          timeout=timeout, env=env or clean_env())


# ---------------------------------------------------------------------------
# Config and usage (no services needed)
# ---------------------------------------------------------------------------

def check_config_list():
    res = run_bin(["config", "--list"])
    check_eq(res.returncode, 0, "config --list exit code")
    with open(CONFIG_MD, encoding="utf-8") as f:
        doc = f.read()
    check(res.stdout == doc, lambda: "config --list differs from "
          "docs/config.md at line " + str(next(
              (i + 1 for i, (a, b) in enumerate(zip(
                  res.stdout.splitlines(), doc.splitlines())) if a != b),
              min(len(res.stdout.splitlines()), len(doc.splitlines())) + 1)))
    say(f"config --list = docs/config.md ({len(doc.splitlines())} lines)")


def check_config_errors():
    cases = [
        (["config", "--list", "-X", "nosuch.key=1"], {}, "nosuch.key"),
        (["config", "--list"], {"CUSTPULSE_FOO": "1"}, "CUSTPULSE_FOO"),
        (["config", "--list", "-X", "redis.port=0"], {}, "redis.port"),
        (["config", "--list", "-X", "clock=sundial"], {}, "clock"),
        (["config", "--list", "-X", "rfm.fixed.monetary=1.234"], {},
         "rfm.fixed.monetary"),
        (["config", "--list"], {"CUSTPULSE_REDIS_PORT": "x"},
         "CUSTPULSE_REDIS_PORT"),
        (["inspect", "-c", "/nonexistent/custpulse.properties", "c-1"], {},
         "/nonexistent/custpulse.properties"),
    ]
    for args, env, name in cases:
        res = run_bin(args, env=clean_env(**env))
        what = f"custpulse {' '.join(args)} {env or ''}".strip()
        check_eq(res.returncode, 2, f"{what}: exit code")
        check(name in res.stderr,
              f"{what}: stderr does not name {name!r}: {res.stderr!r}")
        check_eq(res.stdout, "", f"{what}: stdout")
        say(f"  exit 2: {what}: {res.stderr.strip()}")


def check_usage_errors():
    cases = [[], ["frobnicate"], ["inspect"], ["config"], ["run", "--list"],
             ["config", "--list", "--exit-at-end"], ["inspect", "a", "b"],
             ["inspect", "--exit-at-end", "a"], ["run", "-X"], ["run", "-c"],
             ["run", "extra"], ["--list"], ["hash-id"], ["hash-id", "--"],
             ["hash-id", "-X", "log.id_key=k"], ["hash-id", "--list", "a"],
             ["hash-id", "-x", "a"], ["run", "--", "a"]]
    for args in cases:
        res = run_bin(args)
        check_eq(res.returncode, 2, f"custpulse {args}: exit code")
        check("usage:" in res.stderr,
              f"custpulse {args}: no usage text on stderr: {res.stderr!r}")
    say(f"usage errors: {len(cases)} command lines exit 2 with usage text")


# ---------------------------------------------------------------------------
# hash-id (no services needed)
# ---------------------------------------------------------------------------

def siphash24(key, msg):
    """SipHash-2-4 with 64-bit output, from the algorithm in Aumasson and
    Bernstein's paper, independent of common/siphash.c."""
    mask = (1 << 64) - 1

    def rotl(x, b):
        return ((x << b) | (x >> (64 - b))) & mask

    def rounds(v, n):
        v0, v1, v2, v3 = v
        for _ in range(n):
            v0 = (v0 + v1) & mask
            v1 = rotl(v1, 13) ^ v0
            v0 = rotl(v0, 32)
            v2 = (v2 + v3) & mask
            v3 = rotl(v3, 16) ^ v2
            v0 = (v0 + v3) & mask
            v3 = rotl(v3, 21) ^ v0
            v2 = (v2 + v1) & mask
            v1 = rotl(v1, 17) ^ v2
            v2 = rotl(v2, 32)
        return [v0, v1, v2, v3]

    k0 = int.from_bytes(key[:8], "little")
    k1 = int.from_bytes(key[8:], "little")
    v = [k0 ^ 0x736f6d6570736575, k1 ^ 0x646f72616e646f6d,
         k0 ^ 0x6c7967656e657261, k1 ^ 0x7465646279746573]
    # zero padding to 8n - 1 bytes, then the length mod 256
    data = msg + bytes(7 - len(msg) % 8) + bytes([len(msg) & 0xff])
    for i in range(0, len(data), 8):
        m = int.from_bytes(data[i:i + 8], "little")
        v[3] ^= m
        v = rounds(v, 2)
        v[0] ^= m
    v[2] ^= 0xff
    v = rounds(v, 4)
    return v[0] ^ v[1] ^ v[2] ^ v[3]


def log_id_hash(id_key, cid):
    """The value custpulse logs for customer cid under log.id_key = id_key:
    the key derivation documented in common/siphash.h, then SipHash-2-4."""
    key = b"".join(siphash24(b"custpulse/idkey%d" % i, id_key.encode())
                   .to_bytes(8, "little") for i in (0, 1))
    return "h:%016x" % siphash24(key, cid.encode())


def check_hash_id():
    # The Python SipHash against the paper's appendix example first.
    check_eq(siphash24(bytes(range(16)), bytes(range(15))),
             0xa129ca6149be45e5, "test's SipHash-2-4 (paper example)")
    res = run_bin(["hash-id", "-X", "log.id_key=k", "c-1"])
    check_eq((res.returncode, res.stdout, res.stderr),
             (0, "c-1\th:9ac18d6ed7e760ab\n", ""), "hash-id c-1 (key k)")
    check_eq(log_id_hash("k", "c-1"), "h:9ac18d6ed7e760ab",
             "test's hash of c-1 under key k")

    ids = ["c-42", "-dash", "--", "é-ü", "c-1"]
    res = run_bin(["hash-id", "--", *ids],
                  env=clean_env(CUSTPULSE_LOG_ID_KEY=ID_KEY))
    check_eq(res.returncode, 0, "hash-id (key from the environment): exit")
    check_eq(res.stdout, "".join(f"{i}\t{log_id_hash(ID_KEY, i)}\n"
                                 for i in ids),
             "hash-id of several ids after --")
    check(ID_KEY not in res.stdout + res.stderr, "hash-id printed the key")

    res = run_bin(["hash-id", "c-1"])
    check_eq((res.returncode, res.stdout), (2, ""),
             "hash-id with an empty log.id_key")
    check("log.id_key" in res.stderr and "random" in res.stderr,
          f"hash-id with an empty key: stderr {res.stderr!r}")
    say(f"hash-id: SipHash-2-4 values equal this test's for {len(ids) + 1} "
        f"ids; empty log.id_key -> exit 2: {res.stderr.strip()}")


# ---------------------------------------------------------------------------
# Environment and -X precedence, through inspect
# ---------------------------------------------------------------------------

def check_precedence(st, cid, c):
    port, dead = str(st.redis_port), str(free_port())
    cases = [
        # (file redis.port, env CUSTPULSE_REDIS_PORT, -X redis.port, exit)
        (dead, port, None, 0, "env beats the file"),
        (port, dead, None, 1, "env beats the file (to a dead port)"),
        (None, port, None, 0, "env alone"),
        (port, dead, port, 0, "-X beats env"),
        (dead, port, dead, 1, "-X beats env (to a dead port)"),
    ]
    for file_port, env_port, x_port, want, what in cases:
        cfg = {"redis.host": "127.0.0.1", "rfmq.mode": "fixed"}
        if file_port:
            cfg["redis.port"] = file_port
        overrides = {"redis.port": x_port} if x_port else {}
        env = {"CUSTPULSE_REDIS_PORT": env_port} if env_port else {}
        cp = Custpulse(st, cfg, overrides=overrides)
        res = cp.run(["inspect", cid], env=env, timeout=30)
        check_eq(res.returncode, want,
                 f"{what}: inspect exit code ({res.stderr.strip()})")
        if want == 0:
            got = json.loads(res.stdout)
            check_eq((got["customer_id"], got["orders"], got["monetary"]),
                     (cid, c.orders, cpmodel.money_str(c.monetary)),
                     f"{what}: inspect output")
        else:
            check("redis" in res.stderr,
                  f"{what}: no redis error: {res.stderr!r}")
        say(f"  {what}: file {file_port or '-'}, env {env_port or '-'}, "
            f"-X {x_port or '-'} -> exit {res.returncode}")


# ---------------------------------------------------------------------------
# Topics
# ---------------------------------------------------------------------------

def topic_partitions(st):
    _, topics = st.kafka_metadata()
    return {name: len(parts) for name, (err, parts) in topics.items()
            if err == 0 and not name.startswith("__")}


def check_missing_topic_exits(st):
    before = topic_partitions(st)
    check(not set(before) & set(CREATED_TOPICS),
          f"topics exist before the run: {before}")
    # topic.churn and topic.metrics: their defaults (config() turns them
    # off for the exact-output tests), so every output topic is created.
    cfg = config(st, **{"topic.orders": "absent.orders",
                        "topic.churn": "customer.churn-warnings",
                        "topic.metrics": "customer.metrics"})
    with Timer() as t:
        res = Custpulse(st, cfg).run(["run", "--exit-at-end"], timeout=60)
    check_eq(res.returncode, 0, "--exit-at-end with a missing input topic")
    after = topic_partitions(st)
    check_eq({k: after.get(k) for k in CREATED_TOPICS},
             {k: OUTPUT_PARTITIONS for k in CREATED_TOPICS},
             "topics created at start-up (partitions)")
    check("absent.orders" not in after, "the input topic was created")
    say(f"missing input topic + --exit-at-end: exit 0 in {t.s:.1f}s; created "
        + ", ".join(f"{k} ({after[k]} partitions)" for k in CREATED_TOPICS))


def late_events(topic):
    at = "2024-05-0%dT10:00:00Z"
    E = order_event
    evs = [E("l1", "placed", "c-late-1", at % 1, "o1", "120.00"),
           E("l2", "placed", "c-late-2", at % 2, "o2", "10.00"),
           E("l3", "placed", "c-late-1", at % 3, "o3", 5),
           E("l4", "refunded", "c-late-1", at % 4, "o1", "100.00"),
           E("l5", "cancelled", "c-late-2", at % 5, "o2", "10.00"),
           E("l6", "placed", "c-late-3", at % 6, "o4", 150.5)]
    return records_for(evs, topic=topic)


def check_late_topic(st):
    topic = "late.orders"
    produce, recs = late_events(topic)
    customers, outputs = cpmodel.replay(recs, REF)
    cfg = config(st, clock="event", **REF.config(), **{
        "topic.orders": topic, "kafka.topic.metadata.refresh.interval.ms":
        1000})
    cp = Custpulse(st, cfg).start(["run"])
    # Subscribed ("running", or the missing-topic warning), then two
    # metadata refreshes with the topic still missing.
    cp.wait_log(lambda l: l.get("msg") == "running" or
                "does not exist" in l.get("msg", ""), 60, "subscription")
    time.sleep(2)
    check(cp.running(), "custpulse exited while its input topic is missing")
    check(topic not in topic_partitions(st), "the input topic was created")
    st.create_topic(topic, partitions=1)
    st.produce(topic, produce)
    r = st.redis()

    def applied():
        got = customer_hashes(r)
        return got if all(
            {f: got.get(cid, {}).get(f) for f in cpmodel.expected_hash(c)}
            == cpmodel.expected_hash(c) for cid, c in customers.items()) \
            else None
    with Timer() as t_pick:
        wait_until(applied, 60, "the late topic's events in Redis", 0.1)
    with Timer() as t_stop:
        rc = cp.stop(signal.SIGTERM, timeout=10)
    check_eq(rc, 0, "exit code after SIGTERM")
    # After the clean stop: also no outbox left, only v, e, r besides.
    check_customer_states(customer_hashes(r), customers)
    check_output_records(st.consume(SEGMENTS_TOPIC), outputs,
                         OUTPUT_PARTITIONS)
    check_eq(st.committed(cfg["kafka.group.id"], topic), {0: len(produce)},
             "committed offsets of the late topic")
    r.close()
    say(f"input topic created after start-up: picked up, {len(produce)} "
        f"events applied {t_pick.s:.1f}s after producing; state and "
        f"{len(outputs)} CloudEvents equal cpmodel; SIGTERM -> exit 0 in "
        f"{t_stop.s:.1f}s")
    return customers


def check_hash_id_matches_log(st):
    """The consumer's own log line for a customer carries exactly what
    hash-id prints for it (and never the raw id): the customer's Redis key
    holds a string, so its event goes to the DLQ with an error line."""
    topic, cid = "hashid.orders", "c-hash-id-7"
    r = st.redis()
    r.set(f"cp:c:{{{cid}}}", "not a hash")
    r.close()
    st.create_topic(topic, partitions=1)
    produce, _ = records_for([order_event(
        "h1", "placed", cid, "2024-05-01T10:00:00Z", "o1", "10.00")],
        topic=topic)
    st.produce(topic, produce)
    cfg = config(st, **{"topic.orders": topic, "log.id_key": ID_KEY})
    res = Custpulse(st, cfg).run(["run", "--exit-at-end"], timeout=60)
    check_eq(res.returncode, 0, "run --exit-at-end with a WRONGTYPE customer")
    lines = [json.loads(l) for l in res.stderr.splitlines()
             if l.startswith("{")]
    logged = {l["customer"] for l in lines if "customer" in l}
    hid = Custpulse(st, cfg).run(["hash-id", cid])
    check_eq(hid.returncode, 0, "hash-id exit code")
    want = log_id_hash(ID_KEY, cid)
    check_eq(hid.stdout, f"{cid}\t{want}\n", "hash-id output")
    check_eq(logged, {want}, "customer values in the consumer's log lines")
    check(cid not in res.stderr, "the raw customer id is in the log")
    check(ID_KEY not in res.stderr, "log.id_key is in the log")
    say(f"hash-id {cid} = the consumer's logged value {want} "
        f"({sum('customer' in l for l in lines)} log lines)")


def main():
    check_config_list()
    check_config_errors()
    check_usage_errors()
    check_hash_id()
    with Stack() as st:
        check_missing_topic_exits(st)
        customers = check_late_topic(st)
        say("precedence (redis.port through inspect):")
        check_precedence(st, "c-late-1", customers["c-late-1"])
        check_hash_id_matches_log(st)
    say(f"test_cli: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
