"""Embedded mode: kafka.bootstrap.servers=embedded runs librdkafka's mock
cluster inside custpulse (the no-Java try-out of README.md).

Only Redis is started here. The mock cluster listens on loopback, so the
test reads its address from custpulse's log, produces order events to it
with cpkafka, and checks: each customer's o, m, f, l and watermark equal the
test's own arithmetic (cpmodel), the customer's output records are exactly
seq 1..q with the contract's ids, the DLQ holds the one invalid message, and
SIGTERM ends the process with exit 0. The real-broker tests cover the
guarantees; this one shows the embedded path works end to end.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
from harness import Custpulse, Stack, config, kafkatool, wait_until  # noqa: E402
from itest_util import check, check_eq, checks_made, say  # noqa: E402

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

        model = {}
        for e in evs:
            c = model.setdefault(e["customer_id"], cpmodel.Customer(e["customer_id"]))
            c.apply(e)
            c.watermarks[("customer.orders", where[e["event_id"]][0])] = where[e["event_id"]][1]

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
        by_cust = {}
        for o in outs:
            ev = json.loads(o["value"])
            by_cust.setdefault(ev["subject"], []).append(ev)
        for cid, c in model.items():
            h = r.hgetall("cp:c:{%s}" % cid)
            want = {k: v for k, v in cpmodel.expected_hash(c).items()
                    if k in ("o", "m", "f", "l") or k.startswith("w:")}
            check_eq({k: h.get(k) for k in want}, want, "state of %s" % cid)
            check("x" not in h, "%s: outbox left" % cid)
            got = sorted(by_cust.get(cid, []), key=lambda ev: ev["data"]["seq"])
            check_eq([ev["id"] for ev in got],
                     [cpmodel.event_id(cid, "rfm8", s) for s in range(1, int(h["q"]) + 1)],
                     "output ids of %s" % cid)
        dlq = kafkatool("consume", "-b", bs, "-t", "custpulse.dlq").stdout.splitlines()
        check_eq(len(dlq), 1, "DLQ records")
        check_eq(cp.stop(), 0, "exit status after SIGTERM")
        say("embedded: %d customers exact, %d outputs, 1 DLQ record; %d checks"
            % (len(model), len(outs), checks_made()))


if __name__ == "__main__":
    main()
