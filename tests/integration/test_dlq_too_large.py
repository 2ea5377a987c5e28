"""A dead-letter record larger than custpulse's producer accepts
(docs/contracts.md section 1, the one exception to "byte-identical").

custpulse's producer gets kafka.producer.message.max.bytes = 2000; the input
topic gets a 3,000-byte invalid message (the broker takes it: its limit is
1 MB). The DLQ record must come out with the original key, a null value, the
usual cp.* headers plus cp.value.dropped = 3000, and the consumer must go on:
a valid event after it is applied and the committed offset reaches the end.
"""
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402
import storecodec  # noqa: E402
from harness import Custpulse, Stack, config, topic_name  # noqa: E402
from itest_util import (check, check_eq, checks_made, outbox_key,  # noqa
                        say)

ORDERS, DLQ = topic_name("customer.orders"), topic_name("custpulse.dlq")


def main():
    big = b"{" + b"x" * 2998 + b"}"  # 3,000 bytes, not JSON
    good = {"event_id": "g-1", "type": "order.placed", "customer_id": "c-9",
            "occurred_at": "2024-05-01T08:00:00Z", "order_id": "o-9",
            "amount": "12.50", "currency": "USD"}
    with Stack() as st:
        st.create_topic(ORDERS, 1)
        st.produce(ORDERS, [{"key": "c-big", "value": big},
                            {"key": "c-9", "value": json.dumps(good)}])
        cfg = config(st, **{"rfm.reference": "fixed",
                            "kafka.producer.message.max.bytes": "2000"})
        cp = Custpulse(st, cfg)
        res = cp.run(["run", "--exit-at-end"], timeout=120)
        check_eq(res.returncode, 0, "custpulse exit status")

        dlq = st.consume(DLQ)
        check_eq(len(dlq), 1, "DLQ records")
        rec = dlq[0]
        check_eq(rec["key"], b"c-big", "DLQ key")
        check_eq(rec["value"], None, "DLQ value (dropped)")
        hdrs = dict((k, v) for k, v in rec["headers"])
        check_eq(hdrs.get("cp.error.class"), b"invalid_json", "error class")
        check_eq(hdrs.get("cp.value.dropped"), b"3000", "dropped size header")
        check_eq(hdrs.get("cp.source.offset"), b"0", "source offset")
        check(any("without its value" in l.get("msg", "") for l in cp.log_lines()),
              "a warning says the value was dropped")

        # clock = wall: "now" is today, far beyond the 2024 order, so the
        # stored levels (churned, low_value) do not depend on the date.
        custs, _ = cpmodel.replay(
            [{"value": good, "topic": ORDERS, "partition": 0, "offset": 1}],
            cpmodel.Fixed(), now_ms=int(time.time() * 1000))
        want = cpmodel.expected_hash(custs["c-9"])
        h = storecodec.expand_w(st.redis().hgetall("cp:c:{c-9}"))
        check_eq({k: h.get(k) for k in want}, want,
                 "state after the big message")
        check_eq(want.get(storecodec.w_field(ORDERS, 0)), "1",
                 "watermark of c-9")
        check_eq(sorted(set(h) - set(want)), ["e", "r", "v"],
                 "fields of c-9 besides the model's")
        check_eq(st.redis().cmd("EXISTS", outbox_key("c-9")), 0,
                 "outbox key of c-9")
        check_eq(st.committed(cfg["kafka.group.id"], ORDERS), {0: 2}, "committed offsets")
        say("dlq_too_large: value dropped (3000 bytes) and the consumer went on; %d checks"
            % checks_made())


if __name__ == "__main__":
    main()
