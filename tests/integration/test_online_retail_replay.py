"""Guarantee 2 on real e-commerce data: the UCI Online Retail subset
(tests/data/online-retail/, ~1,500 customers, their cancellations and some
customer-less invoices) replays to the state a batch recomputation gives.

tests/data/online_retail_events.py maps invoices to order.placed, C invoices
to order.refunded of orders custpulse never saw, invoices without CustomerID
to null-keyed events, and each customer's country to one profile.updated
(its docstring has the rules). The events go into a 3-partition
customer.orders and a 3-partition customer.profile; custpulse runs once with
--exit-at-end, currency GBP, timezone UTC, clock = event and no browsing or
support topic. Then, straight from the CSV rows (not through the events or
a model), for every customer:

    o    invoices that are not C invoices and total > 0
    m    their pence, minus each C invoice's, in time order, never below 0
    f/l  first/last time of those invoices (UK civil time -> UTC), epoch ms
    b    distinct UTC days with such an invoice, the first not counted;
         absent when 0
    n    events applied: those invoices + C invoices + the profile event
    a:country / a:region   from the Country of the customer's last invoice

must equal the hash in Redis, and the customers in Redis must be exactly
those of the CSV. The DLQ holds exactly the customer-less invoices that
have an event, each as missing_key, byte-identical to the input record it
names; the committed offsets are the end offsets of both input topics.
"""
import collections
import csv
import datetime
import gzip
import io
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (SOURCE_DIR, Custpulse, Stack, config,  # noqa: E402
                     topic_name)
from itest_util import (DLQ_TOPIC, ORDERS_TOPIC, OUTBOX_FIELDS,  # noqa: E402
                        Timer, check, check_eq, checks_made,
                        customer_hashes, say)

sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "data"))
import online_retail_events as ore  # noqa: E402

PARTITIONS = 3
PROFILE_TOPIC = topic_name("customer.profile")
DATA = os.path.join(SOURCE_DIR, "tests", "data", "online-retail",
                    "online_retail_subset.csv.gz")
# The subset's size (ATTRIBUTION.md); a changed file must change these too.
N_ROWS = 144200
N_CUSTOMERS = 1487

try:
    import zoneinfo
    LONDON = zoneinfo.ZoneInfo("Europe/London")
except Exception:  # no zoneinfo module or no system tzdata
    LONDON = None


# ---------------------------------------------------------------------------
# The batch recomputation, from the CSV rows
# ---------------------------------------------------------------------------

def milli_pounds(text):
    """ "2.55" -> 2550, "-11062.06" -> -11062060 (UnitPrice has at most 3
    decimals)."""
    neg = text.startswith("-")
    whole, _, frac = text.lstrip("-").partition(".")
    check(whole.isdigit() and len(frac) <= 3 and (frac.isdigit() or not frac),
          f"UnitPrice {text!r}")
    v = int(whole) * 1000 + int(frac.ljust(3, "0") or "0")
    return -v if neg else v


def pence(milli):
    """To pence, half away from zero."""
    p = (abs(milli) + 5) // 10
    return -p if milli < 0 else p


def epoch_ms(invoice_date):
    """'2011-06-01 09:26:00' (UK civil time) -> epoch ms."""
    local = datetime.datetime.fromisoformat(invoice_date)
    if LONDON is not None:
        utc = local.replace(tzinfo=LONDON).astimezone(datetime.timezone.utc)
    else:
        utc = ore.uk_to_utc(local).replace(tzinfo=datetime.timezone.utc)
    return int(utc.timestamp()) * 1000


def read_invoices():
    """[invoice dict] in time order (ties: first row in the file)."""
    with gzip.open(DATA, "rt", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    check_eq(len(rows), N_ROWS, f"rows in {os.path.basename(DATA)}")
    invs = {}
    for i, r in enumerate(rows):
        inv = invs.get(r["InvoiceNo"])
        if inv is None:
            cust = r["CustomerID"]
            inv = invs[r["InvoiceNo"]] = {
                "no": r["InvoiceNo"], "first": i, "milli": 0,
                "date": r["InvoiceDate"], "country": r["Country"],
                "customer": "c-" + cust[:-2] if cust else None}
            check(not cust or cust.endswith(".0"), f"CustomerID {cust!r}")
        inv["milli"] += int(r["Quantity"]) * milli_pounds(r["UnitPrice"])
        inv["date"] = min(inv["date"], r["InvoiceDate"])
    out = sorted(invs.values(), key=lambda v: (v["date"], v["first"]))
    for inv in out:
        inv["pence"] = pence(inv["milli"])
        inv["ms"] = epoch_ms(inv["date"])
    return out


def expected_state(invs):
    """({customer id: {field: str}} of the fields compared, refunds that
    hit the floor of 0)."""
    acc = {}
    for inv in invs:
        if inv["customer"] is None:
            continue
        a = acc.setdefault(inv["customer"], {
            "o": 0, "m": 0, "n": 1, "times": [], "country": None,
            "clamped": 0})
        a["country"] = inv["country"]  # the last invoice's
        if inv["no"].startswith("C"):
            a["clamped"] += a["m"] + inv["pence"] < 0  # pence < 0
            a["m"] = max(0, a["m"] + inv["pence"])
            a["n"] += 1
        elif inv["pence"] > 0:
            a["o"] += 1
            a["m"] += inv["pence"]
            a["n"] += 1
            a["times"].append(inv["ms"])
    want = {}
    for cid, a in acc.items():
        h = {"o": a["o"], "m": a["m"], "n": a["n"]}
        if a["times"]:
            h["f"], h["l"] = min(a["times"]), max(a["times"])
            days = {t // 86400000 for t in a["times"]}
            if len(days) > 1:
                h["b"] = len(days) - 1
        code = ore.COUNTRY_CODES.get(a["country"])
        if code:
            h["a:country"] = code
        else:
            h["a:region"] = a["country"]
        want[cid] = {k: str(v) for k, v in h.items()}
    return want, sum(a["clamped"] for a in acc.values())


def expected_dlq(invs):
    """InvoiceNos of the customer-less invoices that have an event."""
    return sorted(inv["no"] for inv in invs if inv["customer"] is None and
                  (inv["no"].startswith("C") or inv["pence"] > 0))


# ---------------------------------------------------------------------------
# Checks against the run
# ---------------------------------------------------------------------------

COMPARED = ("o", "m", "n", "f", "l", "b")


def check_customers(got, want):
    check_eq(sorted(got), sorted(want), "customers in Redis")
    bad = []
    for cid, w in want.items():
        h = got[cid]
        g = {f: v for f, v in h.items() if f in COMPARED or f[:2] == "a:"}
        if g != w:
            bad.append((cid, g, w))
        check(not set(h) & OUTBOX_FIELDS, f"{cid}: outbox left after the run")
    check(not bad, lambda: f"{len(bad)} of {len(want)} customers differ, "
          "e.g.\n" + "\n".join(f"  {c}: got {g}\n  {' ' * len(c)}  want {w}"
                               for c, g, w in bad[:5]))


def header_map(rec):
    return {n: (v or b"").decode() for n, v in rec["headers"]}


def check_dlq(dlq, inputs, want_nos):
    """dlq: the DLQ topic's records; inputs: {(partition, offset): record}
    of the orders topic."""
    classes = collections.Counter()
    nos = []
    for rec in dlq:
        h = header_map(rec)
        classes[h.get("cp.error.class")] += 1
        check_eq(h.get("cp.source.topic"), ORDERS_TOPIC, "DLQ source topic")
        src = inputs.get((int(h["cp.source.partition"]),
                          int(h["cp.source.offset"])))
        check(src is not None, f"DLQ record names no input record: {h}")
        check(rec["key"] is None and src["key"] is None,
              f"DLQ record {h['cp.source.offset']}: key {rec['key']!r}")
        check(rec["value"] == src["value"],
              f"DLQ record {h['cp.source.offset']}: value not byte-identical")
        ev = json.loads(rec["value"])
        check("customer_id" not in ev, f"DLQ event with a customer: {ev}")
        nos.append(ev["order_id"])
    check_eq(dict(classes), {"missing_key": len(want_nos)}, "DLQ classes")
    check_eq(sorted(nos), want_nos, "InvoiceNos in the DLQ")


def per_partition(lines):
    return dict(collections.Counter(json.loads(l)["partition"]
                                    for l in lines))


def main():
    t0 = time.monotonic()
    with Timer() as t_prep:
        invs = read_invoices()
        want, n_clamped = expected_state(invs)
        want_dlq = expected_dlq(invs)
        streams = ore.streams(DATA, PARTITIONS)
        orders, profiles = streams["orders"], streams["profile"]
    check_eq(len(want), N_CUSTOMERS, "customers in the CSV")
    types = collections.Counter(json.loads(json.loads(l)["value"])["type"]
                                for l in orders)
    n_dlq = len(want_dlq)
    say(f"data: {N_ROWS} rows, {len(invs)} invoices, {len(want)} customers "
        f"(zoneinfo {'Europe/London' if LONDON else 'absent: own UK rule'}); "
        f"events: {types['order.placed']} order.placed, "
        f"{types['order.refunded']} order.refunded, {len(profiles)} "
        f"profile.updated ({n_dlq} order events without customer); "
        f"prepared in {t_prep.s:.1f}s")
    check_eq(len(profiles), N_CUSTOMERS, "profile events")
    check_eq(sum(int(h["o"]) for h in want.values()) +
             sum(1 for n in want_dlq if not n.startswith("C")),
             types["order.placed"], "order.placed events vs counted invoices")

    with Stack() as st:
        for topic in (ORDERS_TOPIC, PROFILE_TOPIC):
            st.create_topic(topic, partitions=PARTITIONS)
        with Timer() as t_prod:
            st.produce_lines(ORDERS_TOPIC, orders)
            st.produce_lines(PROFILE_TOPIC, profiles)
        n_events = len(orders) + len(profiles)
        say(f"produce: {n_events} events in {t_prod.s:.1f}s "
            f"(orders {per_partition(orders)}, profile "
            f"{per_partition(profiles)})")

        cfg = config(st, currency="GBP", timezone="UTC", clock="event",
                     **{"topic.profile": PROFILE_TOPIC, "topic.browsing": "",
                        "topic.support": ""})
        cp = Custpulse(st, cfg)
        with Timer() as t_run:
            res = cp.run(["run", "--exit-at-end"], timeout=300)
        check_eq(res.returncode, 0, "custpulse run exit code")
        stopped = [l for l in cp.log_lines() if l.get("msg") == "stopped"]
        counters = {k: v for k, v in (stopped[-1] if stopped else {}).items()
                    if k in ("events", "dlq", "outputs", "batches")}
        say(f"custpulse run --exit-at-end: {t_run.s:.1f}s, "
            f"{n_events / t_run.s:,.0f} events/s (including start-up); "
            f"{counters}")

        r = st.redis(timeout=60)
        got = customer_hashes(r)
        r.close()
        check_customers(got, want)
        with_b = sum(1 for h in want.values() if "b" in h)
        floored = sum(1 for h in want.values() if h["m"] == "0")
        say(f"o, m, n, f, l, b and a:* of all {len(want)} customers equal the "
            f"recomputation from the CSV ({with_b} with b > 0, {floored} "
            f"with m = 0, {n_clamped} refunds floored at 0, "
            f"{sum(1 for h in want.values() if 'a:region' in h)} with a "
            "region instead of a country)")

        dlq = st.consume(DLQ_TOPIC)
        inputs = {(rec["partition"], rec["offset"]): rec
                  for rec in st.consume(ORDERS_TOPIC)}
        check_eq(len(inputs), len(orders), "records in the orders topic")
        check_dlq(dlq, inputs, want_dlq)
        say(f"DLQ: exactly the {n_dlq} customer-less invoices, all "
            "missing_key, byte-identical to their input records")

        for topic, lines in ((ORDERS_TOPIC, orders),
                             (PROFILE_TOPIC, profiles)):
            committed = st.committed(cfg["kafka.group.id"], topic)
            check_eq(committed, per_partition(lines),
                     f"committed offsets of {topic} = end offsets")
        say("committed offsets = end offsets of both input topics")
    say(f"test_online_retail_replay: passed ({checks_made()} checks) in "
        f"{time.monotonic() - t0:.1f}s")


if __name__ == "__main__":
    main()
