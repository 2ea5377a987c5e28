"""deploy/drop-watermarks.lua on hand-made customer hashes (Redis only).

The script removes one input topic's watermarks from a customer hash: the
entries of layout 4's binary w whose topic id is FNV-1a 32 of the name
(docs/contracts.md section 2, "Encoding of w") and the fields
w:<name>:<partition> of layouts 1 to 3, and bumps v when it removed
something (docs/fault-tolerance.md, "Recreated input topics"). Checked
exactly, with storecodec.py (written from the contract) building and
reading w:

- a customer with watermarks of three topics in w and legacy fields of
  two: dropping one topic leaves w = the other entries byte for byte in
  their order, removes only that topic's legacy fields (not
  w:<name>:x, not w:<name>2:<p>), returns the count and bumps v by one;
  the other fields are untouched;
- dropping the remaining topics one by one deletes w at the end;
- a topic the customer has nothing of changes nothing (v too), and a
  missing key is not created;
- a malformed w (a truncated id, an unterminated LEB128) is an error and
  the hash stays byte-identical;
- the script's topic ids equal FNV-1a 32 for names with multi-byte UTF-8
  and long names (its arithmetic in Lua's doubles);
- `custpulse inspect` shows the watermarks of w by the configured input
  topics' names and an id of no configured topic as #<8 hex>.
The end-to-end use (a recreated topic consumed again on top of the old
state) is scenario c4 of tests/faults/test_kafka_faults.py.
"""
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import storecodec  # noqa: E402
from harness import (SOURCE_DIR, Custpulse, RedisError, Stack,  # noqa: E402
                     config)
from itest_util import check, check_eq, checks_made, say  # noqa: E402

SCRIPT = os.path.join(SOURCE_DIR, "deploy", "drop-watermarks.lua")
A, B, C = "customer.orders", "customer.browsing", "customer.support"
KEY = "cp:c:{c-1}"


def drop(r, key, topic):
    with open(SCRIPT) as f:
        return r.cmd("EVAL", f.read(), 1, key, topic)


def main():
    with Stack(kafka=False) as st:
        r = st.redis()
        w = storecodec.encode_w([(A, 0, 300), (B, 1, 2 ** 63 - 1),
                                 (A, 5, 7), (C, 2, 0)])
        r.cmd("HSET", KEY, "v", "9", "o", "2", "s", "important_keep",
              "w", w, f"w:{A}:3", "41", f"w:{B}:1", "12", f"w:{A}:x", "1",
              f"w:{A}2:4", "5")
        before = r.hgetall_bytes(KEY)

        check_eq(drop(r, KEY, A), 3, "dropped of topic A (2 in w, 1 legacy)")
        after = r.hgetall_bytes(KEY)
        want = dict(before)
        want[b"w"] = storecodec.encode_w([(B, 1, 2 ** 63 - 1), (C, 2, 0)])
        want[b"v"] = b"10"
        del want[f"w:{A}:3".encode()]
        check_eq(after, want, "hash after dropping A")
        say(f"A dropped: 3 watermarks, w = B's and C's entries in order, "
            f"w:{A}:x and w:{A}2:4 kept, v 9 -> 10")

        check_eq(drop(r, KEY, C), 1, "dropped of topic C")
        check_eq(drop(r, KEY, B), 2, "dropped of topic B (w and legacy)")
        after = r.hgetall_bytes(KEY)
        check(b"w" not in after, "w deleted once empty")
        check_eq(after.get(b"v"), b"12", "v after three drops")
        check_eq(sorted(f for f in after if f.startswith(b"w")),
                 [f"w:{A}2:4".encode(), f"w:{A}:x".encode()],
                 "fields left that only look like watermarks")

        snap = r.hgetall_bytes(KEY)
        check_eq(drop(r, KEY, "customer.profile"), 0, "nothing to drop")
        check_eq(r.hgetall_bytes(KEY), snap, "unchanged, v too")
        check_eq(drop(r, KEY, A), 0, "A again: nothing left")
        check_eq(drop(r, "cp:c:{nobody}", A), 0, "missing key")
        check_eq(r.cmd("EXISTS", "cp:c:{nobody}"), 0, "missing key made")
        say("nothing to drop: 0, hash and v unchanged; a missing key "
            "stays missing")

        good = storecodec.encode_w([(B, 1, 5)])
        for name, bad in (("truncated id", good + b"\x5c\xf8\x15"),
                          ("unterminated LEB128", good +
                           storecodec.encode_w([(A, 0, 300)])[:-1]),
                          ("LEB128 of 11 bytes", good + b"\x5c\xf8\x15\xf4"
                           + b"\x80" * 10 + b"\x01" + b"\x00")):
            key = "cp:c:{bad}"
            r.cmd("DEL", key)
            r.cmd("HSET", key, "v", "1", "w", bad, f"w:{A}:0", "3")
            snap = r.hgetall_bytes(key)
            try:
                drop(r, key, A)
                check(False, f"{name}: no error")
            except RedisError as e:
                check("malformed" in str(e) or "truncated" in str(e),
                      f"{name}: error {e}")
            check_eq(r.hgetall_bytes(key), snap, f"{name}: hash unchanged")
        say("malformed w (truncated id, unterminated or 11-byte LEB128): "
            "an error, the hash byte-identical")

        names = ["a", "tópic-ü", "订单", "x" * 300, "customer.orders"]
        for n in names:
            key = "cp:c:{id}"
            r.cmd("DEL", key)
            r.cmd("HSET", key, "v", "1",
                  "w", storecodec.encode_w([(n, 0, 1), ("other", 0, 1)]))
            check_eq(drop(r, key, n), 1, f"id of {n[:20]!r} in Lua")
            check_eq(r.hgetall_bytes(key)[b"w"],
                     storecodec.encode_w([("other", 0, 1)]),
                     f"w after dropping {n[:20]!r}")
        say(f"topic ids in Lua = FNV-1a 32 for {len(names)} names "
            "(multi-byte UTF-8, 300 bytes)")

        cfg = config(st, **{"topic.orders": A, "topic.browsing": B,
                            "topic.support": C})
        r.cmd("HSET", "cp:c:{c-2}", "v", "3", "lv", "4", "o", "0", "m", "0",
              "q", "0", "n", "2", "w", storecodec.encode_w(
                  [(B, 1, 12), ("old.topic", 2, 7), (A, 0, 300)]))
        res = Custpulse(st, cfg).run(["inspect", "c-2"], timeout=30)
        check_eq(res.returncode, 0, f"inspect exit code ({res.stderr})")
        check_eq(json.loads(res.stdout)["offsets"],
                 {f"{B}:1": 12, f"{A}:0": 300,
                  "#%08x:2" % storecodec.fnv1a32("old.topic"): 7},
                 "inspect's offsets")
        say("inspect: watermarks named by the configured topics, an "
            "unknown id as #<hex>")
        r.close()
    say(f"test_drop_watermarks: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
