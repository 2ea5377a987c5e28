"""Self-test of the integration harness: the services it starts, cpkafka's
exact-bytes round trip, and data surviving Redis and Kafka restarts. Needs
only cpkafka and the Kafka jars, not custpulse."""
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (Redis, RedisError, Stack, config, free_port,  # noqa: E402
                     log, wait_until)

TOPIC = "selftest.records"

RECORDS = [
    {"key": "c-1", "value": '{"n":1}',
     "headers": [("content-type", "application/json"), ("trace", b"\x00\x01")]},
    {"key": None, "value": "null key"},
    {"key": b"\xff\xfe-bin", "value": b"\x80\x81\xfe\xff not utf-8 \x00",
     "headers": [("empty", b""), ("null", None)], "partition": 1},
    {"key": "c-2", "value": None, "partition": 2},
    {"key": "ünïcode", "value": {"event_id": "e-1", "amount": "19.90"},
     "timestamp": 1709284500000},
]


def expected(rec):
    def b(v):
        if v is None or isinstance(v, bytes):
            return v
        if isinstance(v, dict):
            return b'{"event_id":"e-1","amount":"19.90"}'
        return v.encode()
    return (b(rec["key"]), b(rec["value"]),
            [(n, b(v)) for n, v in rec.get("headers", [])])


def check_kafka_roundtrip(st):
    st.create_topic(TOPIC, partitions=3)
    st.create_topic(TOPIC, partitions=3)  # existing: still fine
    assert st.produce(TOPIC, RECORDS) == len(RECORDS)
    rows = st.consume(TOPIC)
    assert len(rows) == len(RECORDS), rows
    assert [(r["partition"], r["offset"]) for r in rows] == sorted(
        (r["partition"], r["offset"]) for r in rows), "not ordered"
    got = sorted((r["key"] or b"", r["key"], r["value"], r["headers"])
                 for r in rows)
    want = sorted((k or b"", k, v, h)
                  for k, v, h in map(expected, RECORDS))
    assert got == want, f"\n got {got}\nwant {want}"
    by_key = {r["key"]: r for r in rows}
    assert by_key[b"\xff\xfe-bin"]["partition"] == 1
    assert by_key[b"c-2"]["partition"] == 2
    assert by_key["ünïcode".encode()]["timestamp"] == 1709284500000
    return rows


def check_redis(st):
    r = st.redis()
    assert r.ping() == "PONG"
    assert r.set("k", b"v\x00\xff") == "OK"
    assert r.get("k") == b"v\x00\xff"
    assert r.cmd("HSET", "cp:c:{c-1}", "o", 2, "m", "1990") == 2
    assert r.hgetall("cp:c:{c-1}") == {"o": "2", "m": "1990"}
    assert r.get("missing") is None
    assert r.dbsize() == 2
    assert r.keys("cp:*") == ["cp:c:{c-1}"]
    assert r.cmd("EVAL", "return {1, 'a', false}", 0) == [1, b"a", None]
    try:
        r.cmd("NOSUCHCOMMAND")
        raise AssertionError("no RedisError")
    except RedisError as e:
        assert "unknown command" in str(e), e
    r.close()


def check_redis_restart(st):
    port = st.redis_port
    st.stop_redis()
    try:
        Redis(port, timeout=1).ping()
        raise AssertionError("redis still answering after stop")
    except OSError:
        pass
    st.start_redis()
    assert st.redis_port == port
    with st.redis() as r:
        assert r.get("k") == b"v\x00\xff", "data lost across restart"
        assert r.hgetall("cp:c:{c-1}") == {"o": "2", "m": "1990"}


def check_redis_pause(st):
    st.pause_redis()
    r = Redis(st.redis_port, timeout=0.5)
    try:
        r.ping()
        raise AssertionError("paused redis answered")
    except OSError:  # socket.timeout is an OSError
        pass
    finally:
        r.close()
    st.resume_redis()
    with st.redis() as r2:
        assert r2.ping() == "PONG"


def check_kafka_restart(st, rows_before):
    st.stop_kafka()
    t0 = time.monotonic()
    st.start_kafka()
    log(f"kafka restart took {time.monotonic() - t0:.1f}s")
    assert st.consume(TOPIC) == rows_before, "records changed across restart"
    st.produce(TOPIC, [{"key": "after", "value": "restart"}])
    rows = st.consume(TOPIC)
    assert len(rows) == len(rows_before) + 1


def check_kafka_kill9(st):
    st.stop_kafka(signal.SIGKILL)
    st.start_kafka()
    assert len(st.consume(TOPIC)) == len(RECORDS) + 1


def check_topics_and_groups(st):
    assert st.committed("no-such-group", TOPIC) == {0: None, 1: None, 2: None}
    st.delete_topic(TOPIC)
    st.create_topic(TOPIC, partitions=2)  # a recreated topic
    assert st.consume(TOPIC) == []
    assert st.committed("no-such-group", TOPIC) == {0: None, 1: None}


def check_helpers(st):
    p = free_port()
    assert 1024 <= p <= 65535
    assert wait_until(lambda: 42, 1, "constant") == 42
    try:
        wait_until(lambda: False, 0.2, "never")
        raise AssertionError("no TimeoutError")
    except TimeoutError as e:
        assert "never" in str(e)
    cfg = config(st, **{"topic.orders": "o", "log.level": None})
    assert cfg["kafka.bootstrap.servers"] == st.bootstrap
    assert cfg["redis.port"] == st.redis_port
    assert cfg["topic.orders"] == "o" and "log.level" not in cfg
    assert config(st)["kafka.group.id"] != config(st)["kafka.group.id"]


def main():
    t0 = time.monotonic()
    with Stack() as st:
        log(f"stack started in {time.monotonic() - t0:.1f}s "
            f"(kafka {st.kafka_start_s:.1f}s)")
        assert st.kafka_start_s < 20, "kafka start too slow"
        rows = check_kafka_roundtrip(st)
        check_redis(st)
        check_redis_restart(st)
        check_redis_pause(st)
        check_kafka_restart(st, rows)
        check_kafka_kill9(st)
        check_topics_and_groups(st)
        check_helpers(st)
        tmp = st.dir
    assert not os.path.exists(tmp), "temp dir left behind"
    log(f"harness self-test passed in {time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
