"""Embedded mode: kafka.bootstrap.servers=embedded runs librdkafka's mock
cluster inside custpulse (the no-Java try-out of README.md).

Only Redis is started here. The mock cluster listens on loopback, so the
test reads its address from custpulse's log, produces order events to it
with cpkafka, and checks: each customer's hash equals the test's own
arithmetic (cpmodel.expected_hash: every layout-2 field and the
watermarks; only v, e, r besides; no outbox key), the customer's output
records are
exactly cpmodel's CloudEvents of every model, seq 1..q with the contract's
ids (clock = wall: day counts are left out if the UTC date changed during
the test), the DLQ holds the one invalid message, and
SIGTERM ends the process with exit 0. The real-broker tests cover the
guarantees; this one shows the embedded path works end to end.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
import storecodec  # noqa: E402
from harness import Custpulse, Stack, config, kafkatool, wait_until  # noqa: E402
from itest_util import (check, check_eq, checks_made, outbox_key,  # noqa
                        say)

N_CUSTOMERS = 20
N_EVENTS = 200


def events():
    out = []
    for i in range(N_EVENTS):
        cid = "e-%02d" % (i % N_CUSTOMERS)
        out.append({"event_id": "ev-%d" % i, "type": "order.placed",
                    "customer_id": cid,
                    "occurred_at": "2024-0%d-%02dT12:00:00Z" % (1 + i // 60, 1 + i % 28),
                    "order_id": "o-%d" % i, "amount": "%d.%02d" % (5 + i % 90, i % 100),
                    "currency": "USD"})
    return out


def mock_bootstrap(cp):
    for line in cp.log_lines():
        if "embedded mock Kafka cluster" in line.get("msg", ""):
            return line["bootstrap"].split(",")[0]
    return None


def main():
    evs = events()
    with Stack(kafka=False) as st:
        cfg = config(st, **{"kafka.bootstrap.servers": "embedded",
                            "rfm.reference": "fixed"})
        cp = Custpulse(st, cfg)
        cp.start(["run"])
        bs = wait_until(lambda: mock_bootstrap(cp), 30, "embedded cluster address")
        say("embedded cluster at %s" % bs)
        lines = "".join(json.dumps({"key": e["customer_id"], "value": json.dumps(e)}) + "\n"
                        for e in evs)
        lines += json.dumps({"key": "bad", "value": "not json"}) + "\n"
        kafkatool("produce", "-b", bs, "-t", "customer.orders", input=lines)

        rows = kafkatool("consume", "-b", bs, "-t", "customer.orders").stdout.splitlines()
        check_eq(len(rows), N_EVENTS + 1, "input records in the mock cluster")
        where = {}
        for row in map(json.loads, rows):
            if row.get("key") != "bad":
                where[json.loads(row["value"])["event_id"]] = (row["partition"], row["offset"])

        # clock = wall (the default): every batch's "now" is today, far
        # beyond the 2024 events, so every stage and tier is settled (all
        # lapsed: churned) and only the day counts depend on the date.
        recs = [{"value": e, "topic": "customer.orders",
                 "partition": where[e["event_id"]][0],
                 "offset": where[e["event_id"]][1]} for e in evs]
        day0 = cpmodel.utc_day(int(time.time() * 1000))
        model, expected = cpmodel.replay(
            recs, cpmodel.Fixed(), now_ms=int(time.time() * 1000))

        r = st.redis()

        def converged():
            return all(r.hgetall("cp:c:{%s}" % cid).get("o") == str(c.orders)
                       for cid, c in model.items())
        t0 = time.time()
        wait_until(converged, 60, "all orders applied")
        say("state converged in %.1fs" % (time.time() - t0))
        time.sleep(1.0)  # let the last batch's outputs and clears finish

        outs = [json.loads(l) for l in kafkatool(
            "consume", "-b", bs, "-t", "customer.segment-changes").stdout.splitlines()]
        # The date moved while the test ran: compare without day counts.
        same_day = cpmodel.utc_day(int(time.time() * 1000)) == day0

        def comparable(ev):
            if not same_day:
                ev["data"].pop("recency_days", None)
                for k in ("days_since_last_order", "days_since_first_order"):
                    ev["data"].get("scores", {}).pop(k, None)
            return ev
        by_cust, want = {}, {}
        for o in outs:
            ev = json.loads(o["value"])
            by_cust.setdefault(ev["subject"], []).append(comparable(ev))
        for ev in expected:
            want.setdefault(ev["subject"], []).append(comparable(ev))
        for cid, c in model.items():
            h = storecodec.expand_w(r.hgetall("cp:c:{%s}" % cid))
            exp = cpmodel.expected_hash(c)
            check_eq({k: h.get(k) for k in exp}, exp, "state of %s" % cid)
            check_eq(sorted(set(h) - set(exp)), ["e", "r", "v"],
                     "fields of %s besides the model's" % cid)
            check_eq(r.cmd("EXISTS", outbox_key(cid)), 0,
                     "outbox key of %s" % cid)
            got = sorted(by_cust.get(cid, []), key=lambda ev: ev["data"]["seq"])
            check_eq(got, want.get(cid), "output events of %s" % cid)
            check_eq([ev["id"] for ev in got],
                     [cpmodel.event_id(cid, ev["data"]["model"], s)
                      for s, ev in enumerate(got, 1)],
                     "output ids of %s (seq 1..q)" % cid)
            check_eq(len(got), int(h["q"]), "outputs of %s = q" % cid)
        dlq = kafkatool("consume", "-b", bs, "-t", "custpulse.dlq").stdout.splitlines()
        check_eq(len(dlq), 1, "DLQ records")
        check_eq(cp.stop(), 0, "exit status after SIGTERM")
        say("embedded: %d customers exact, %d outputs, 1 DLQ record; %d checks"
            % (len(model), len(outs), checks_made()))


if __name__ == "__main__":
    main()
