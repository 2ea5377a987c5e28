#!/usr/bin/env python3
"""Turns the CDNOW purchase log into custpulse order events.

Reads tests/data/cdnow/CDNOW_master.txt (or --input FILE) and writes one
`cpkafka produce` input line per purchase to stdout:

    {"key": "00001", "value": "{\"event_id\":\"cdnow-1\",...}"}

Each purchase becomes an `order.placed` event (docs/contracts.md, section 1):

    event_id     "cdnow-<N>"       N = 1-based data line number (header
    order_id     "cdnow-o-<N>"     line not counted)
    customer_id  the id as written in the file, leading zeros kept ("00001");
                 also the Kafka key
    occurred_at  "<YYYY-MM-DD>T00:00:00Z" (the file has dates only)
    amount       dollar_value exactly as written ("11.77"); every value in
                 CDNOW_master.txt has two decimals. A value with fewer or more
                 would be normalised to two (half-up) and counted on stderr.
    currency     "USD"

Options:
    --limit N        only the first N purchases
    --partitions N   add "partition": Kafka's default partition for the key
                     (Java murmur2, as librdkafka's murmur2_random); by
                     default no partition is given and the producer decides
                     (cpkafka uses murmur2_random, so the result is the same)
    --by-date        emit in date order (stable) instead of file order; the
                     file is sorted by customer, then date
    --raw            print the event JSON only (one per line, no key wrapper)
    --input FILE     another file of the same layout; CDNOW_sample.txt
                     (original_id sample_id date cds value) works too

Usage:
    python3 tests/data/cdnow_events.py --limit 1000 |
        cpkafka produce -b 127.0.0.1:9092 -t customer.orders
"""
import argparse
import decimal
import json
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_INPUT = os.path.join(HERE, "cdnow", "CDNOW_master.txt")
AMOUNT_RE = re.compile(r"^[0-9]+\.[0-9]{2}$")
DATE_RE = re.compile(r"^([0-9]{4})([0-9]{2})([0-9]{2})$")


def murmur2(data: bytes) -> int:
    """Kafka's org.apache.kafka.common.utils.Utils.murmur2 (seed 0x9747b28c),
    as a signed 32-bit int."""
    m, r = 0x5BD1E995, 24
    length = len(data)
    h = (0x9747B28C ^ length) & 0xFFFFFFFF
    n4 = length // 4
    for i in range(n4):
        k = int.from_bytes(data[4 * i:4 * i + 4], "little")
        k = (k * m) & 0xFFFFFFFF
        k ^= k >> r
        k = (k * m) & 0xFFFFFFFF
        h = (h * m) & 0xFFFFFFFF
        h ^= k
    rest = data[4 * n4:]
    if len(rest) >= 3:
        h ^= rest[2] << 16
    if len(rest) >= 2:
        h ^= rest[1] << 8
    if len(rest) >= 1:
        h ^= rest[0]
        h = (h * m) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * m) & 0xFFFFFFFF
    h ^= h >> 15
    return h - (1 << 32) if h & 0x80000000 else h


def kafka_partition(key: bytes, partitions: int) -> int:
    """Java's default partitioner for a non-null key:
    toPositive(murmur2(key)) % partitions."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions


def normalise_amount(text: str):
    """Returns (amount with exactly two decimals, changed?)."""
    if AMOUNT_RE.match(text):
        return text, False
    value = decimal.Decimal(text).quantize(decimal.Decimal("0.01"),
                                           rounding=decimal.ROUND_HALF_UP)
    return format(value, "f"), True


def purchases(path):
    """Yields (data line number, customer_id, YYYYMMDD, dollar_value)."""
    n = 0
    with open(path, encoding="ascii", newline="") as f:
        for lineno, line in enumerate(f, 1):
            cols = line.split()
            if not cols:
                continue
            if lineno == 1 and not cols[0].isdigit():
                continue  # header line
            if len(cols) == 4:      # master: id date cds value
                cust, date, value = cols[0], cols[1], cols[3]
            elif len(cols) == 5:    # sample: id sample_id date cds value
                cust, date, value = cols[0], cols[2], cols[4]
            else:
                raise SystemExit(f"{path}:{lineno}: expected 4 or 5 columns")
            if not DATE_RE.match(date):
                raise SystemExit(f"{path}:{lineno}: bad date {date!r}")
            n += 1
            yield n, cust, date, value


def event(n, cust, date, amount):
    d = DATE_RE.match(date)
    return {
        "event_id": f"cdnow-{n}",
        "type": "order.placed",
        "customer_id": cust,
        "occurred_at": f"{d[1]}-{d[2]}-{d[3]}T00:00:00Z",
        "order_id": f"cdnow-o-{n}",
        "amount": amount,
        "currency": "USD",
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default=DEFAULT_INPUT)
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--partitions", type=int, default=None)
    ap.add_argument("--by-date", action="store_true")
    ap.add_argument("--raw", action="store_true")
    args = ap.parse_args(argv)
    if args.partitions is not None and args.partitions < 1:
        ap.error("--partitions must be >= 1")

    out = sys.stdout
    normalised = written = 0
    rows = purchases(args.input)
    if args.by_date:
        rows = sorted(rows, key=lambda row: row[2])
    for n, cust, date, value in rows:
        if args.limit is not None and written >= args.limit:
            break
        amount, changed = normalise_amount(value)
        normalised += changed
        value_json = json.dumps(event(n, cust, date, amount),
                                separators=(",", ":"))
        if args.raw:
            out.write(value_json + "\n")
        else:
            rec = {"key": cust, "value": value_json}
            if args.partitions is not None:
                rec["partition"] = kafka_partition(cust.encode(),
                                                   args.partitions)
            out.write(json.dumps(rec, separators=(",", ":")) + "\n")
        written += 1
    if normalised:
        print(f"cdnow_events: {normalised} amounts normalised to 2 decimals",
              file=sys.stderr)
    print(f"cdnow_events: {written} events", file=sys.stderr)


if __name__ == "__main__":
    main()
