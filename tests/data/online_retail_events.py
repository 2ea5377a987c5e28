#!/usr/bin/env python3
"""Turns the UCI Online Retail invoice lines into custpulse events.

Reads tests/data/online-retail/online_retail_subset.csv.gz (or --input FILE:
the same CSV layout, gzipped or not, e.g. the full data set) and writes one
`cpkafka produce` input line per event to stdout:

    {"key": "c-17850", "value": "{\"event_id\":\"or-536365\",...}"}

The data: one CSV row per invoice line, `InvoiceNo, StockCode, Description,
Quantity, InvoiceDate, UnitPrice, CustomerID, Country` (ATTRIBUTION.md next
to the data). custpulse sees invoices, not lines:

Invoices -> order events (stream `orders`, docs/contracts.md section 1):

    invoice      all rows with one InvoiceNo; CustomerID and Country are the
                 same on all of them (checked); its time is the earliest
                 InvoiceDate of its rows (43 invoices of the full data have
                 rows one minute apart)
    total        sum of Quantity * UnitPrice over its rows, exactly, then
                 rounded to pence half away from zero (4 invoices of the full
                 data have a UnitPrice with 3 decimals)
    type         InvoiceNo starting with "C" (a cancellation): order.refunded
                 of amount -total (every C invoice has a negative total);
                 any other invoice with total > 0: order.placed of amount
                 total; any other invoice with total <= 0: no event (free
                 goods at price 0 and stock adjustments: no money changed
                 hands, and counting them would inflate frequency)
    event_id     "or-<InvoiceNo>"
    order_id     InvoiceNo as written ("536365", "C536379"). A C invoice does
                 not say which invoice it cancels, so its refund names an
                 order custpulse never saw: by the contract's order rules an
                 unknown order's refund is a monetary adjustment,
                 m = max(0, m - amount), o/f/l unchanged. order.cancelled
                 would have the same effect on an unknown order but claims
                 more than the data says; order.refunded is the honest one.
                 A C invoice before enough purchases (its order was placed
                 before the data starts) is floored at 0, so the order of a
                 customer's events matters: they are written in time order
                 (ties in file order), all on the customer's partition.
    customer_id  "c-<CustomerID as an integer>" ("17850.0" -> "c-17850");
                 also the Kafka key
    occurred_at  the invoice time in UTC, "YYYY-MM-DDThh:mm:ssZ". The data
                 has wall-clock times without a zone; the retailer is in the
                 UK, so they are read as UK civil time (GMT, BST from the last
                 Sunday of March to the last Sunday of October, 01:00 UTC) and
                 BST times move back one hour. Invoices run 06:00-21:00, so
                 the UTC day is the day written in the data.
    amount       decimal string with exactly two decimals ("15.30")
    currency     "GBP" (run custpulse with currency = GBP)

    Rows without CustomerID: their invoices get the same events but without
    a customer_id field and with a null Kafka key. custpulse must dead-letter
    them with class missing_key (checked before the JSON). Their partition
    is Kafka's partition for the InvoiceNo as a key, so it is fixed.

Customers -> one profile event each (stream `profile`, contracts 1b):

    type         profile.updated
    event_id     "or-p-<CustomerID as an integer>"
    occurred_at  the time of the customer's last invoice
    attributes   {"country": ISO 3166-1 alpha-2} from the Country of the
                 customer's last invoice (8 customers of the full data have
                 two countries), through COUNTRY_CODES ("EIRE" -> "IE",
                 "RSA" -> "ZA", "United Kingdom" -> "GB", ...). A Country
                 with no ISO code ("Channel Islands": Jersey and Guernsey
                 have two; "European Community"; "Unspecified") gives
                 {"region": Country as written} instead.

Options:
    --stream S       orders (default) or profile
    --partitions N   add "partition": Kafka's default partition for the key
                     (Java murmur2, tests/data/cdnow_events.py); for a null
                     key the InvoiceNo's partition
    --raw            print the event JSON only (one per line)
    --input FILE     another file of the same layout (.gz or plain CSV)
    --make-subset SRC OUT
                     write the repository's subset of SRC (the full data set,
                     gzipped CSV) to OUT as gzip: see SUBSET_RULE

Usage:
    python3 tests/data/online_retail_events.py --partitions 3 |
        cpkafka produce -b 127.0.0.1:9092 -t customer.orders
    python3 tests/data/online_retail_events.py --stream profile |
        cpkafka produce -b 127.0.0.1:9092 -t customer.profile
"""
import argparse
import collections
import csv
import datetime
import decimal
import gzip
import io
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from cdnow_events import kafka_partition  # noqa: E402

DEFAULT_INPUT = os.path.join(HERE, "online-retail",
                             "online_retail_subset.csv.gz")
HEADER = ("InvoiceNo,StockCode,Description,Quantity,InvoiceDate,UnitPrice,"
          "CustomerID,Country")
CURRENCY = "GBP"
CENT = decimal.Decimal("0.01")

# Country as written in the data -> ISO 3166-1 alpha-2. Names missing here
# have no single code and become a "region" attribute.
COUNTRY_CODES = {
    "Australia": "AU", "Austria": "AT", "Bahrain": "BH", "Belgium": "BE",
    "Brazil": "BR", "Canada": "CA", "Cyprus": "CY", "Czech Republic": "CZ",
    "Denmark": "DK", "EIRE": "IE", "Finland": "FI", "France": "FR",
    "Germany": "DE", "Greece": "GR", "Hong Kong": "HK", "Iceland": "IS",
    "Israel": "IL", "Italy": "IT", "Japan": "JP", "Lebanon": "LB",
    "Lithuania": "LT", "Malta": "MT", "Netherlands": "NL", "Norway": "NO",
    "Poland": "PL", "Portugal": "PT", "RSA": "ZA", "Saudi Arabia": "SA",
    "Singapore": "SG", "Spain": "ES", "Sweden": "SE", "Switzerland": "CH",
    "USA": "US", "United Arab Emirates": "AE", "United Kingdom": "GB",
}

SUBSET_RULE = """\
Rows kept, in the source's order, byte for byte, after its header line:
  - every row whose CustomerID, as an integer, is divisible by 3 (all
    invoices of those customers, their C invoices included);
  - every row of an invoice without CustomerID whose number (InvoiceNo
    without its leading letter) is divisible by 7 and that has at most
    10 rows (the larger customer-less invoices have hundreds of rows)."""

Row = collections.namedtuple(
    "Row", "index invoice quantity date price customer country line")
Invoice = collections.namedtuple(
    "Invoice", "no customer country time total first_index n_rows")


# ---------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------

def read_text(path):
    with open(path, "rb") as f:
        data = f.read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    return data.decode("utf-8")


def read_rows(path):
    """[Row] of the file, header checked. `line` is the row's text as
    written (no line end), `index` its 0-based data row number."""
    lines = read_text(path).split("\n")
    if lines[0].rstrip("\r") != HEADER:
        raise SystemExit(f"{path}: unexpected header {lines[0][:100]!r}")
    rows = []
    for i, line in enumerate(l for l in lines[1:] if l):
        # Only descriptions are ever quoted; csv for those rows only (fast)
        cols = (next(csv.reader([line])) if '"' in line
                else line.split(","))
        if len(cols) != 8:
            raise SystemExit(f"{path}: data row {i + 1}: {len(cols)} columns")
        inv, _code, _desc, qty, date, price, cust, country = cols
        rows.append(Row(i, inv, qty, date, price, customer_id(cust), country,
                        line))
    return rows


def customer_id(text):
    """ "17850.0" -> "c-17850"; "" -> None."""
    if not text:
        return None
    value = decimal.Decimal(text)
    if value != value.to_integral_value() or value <= 0:
        raise SystemExit(f"CustomerID {text!r} is not a positive integer")
    return f"c-{int(value)}"


def invoices(rows):
    """[Invoice] in event order: time, then first row in the file."""
    by_no = collections.OrderedDict()
    for r in rows:
        by_no.setdefault(r.invoice, []).append(r)
    out = []
    for no, rs in by_no.items():
        if len({(r.customer, r.country) for r in rs}) != 1:
            raise SystemExit(f"invoice {no}: rows disagree on CustomerID or "
                             "Country")
        total = sum(decimal.Decimal(r.quantity) * decimal.Decimal(r.price)
                    for r in rs)
        total = total.quantize(CENT, rounding=decimal.ROUND_HALF_UP)
        time = min(datetime.datetime.fromisoformat(r.date) for r in rs)
        out.append(Invoice(no, rs[0].customer, rs[0].country, time, total,
                           rs[0].index, len(rs)))
    out.sort(key=lambda inv: (inv.time, inv.first_index))
    return out


# ---------------------------------------------------------------------------
# Mapping
# ---------------------------------------------------------------------------

def _last_sunday(year, month):
    """The last Sunday of a month with 31 days (March, October)."""
    d = datetime.date(year, month, 31)
    return d - datetime.timedelta(days=(d.weekday() + 1) % 7)


def uk_to_utc(local):
    """UK civil time (naive datetime) -> naive UTC datetime. BST (UTC+1)
    runs from 01:00 UTC on the last Sunday of March to 01:00 UTC on the last
    Sunday of October (the rule since 1996). The hour a change skips or
    repeats does not occur in the data (no invoice before 06:00)."""
    y = local.year
    start = datetime.datetime.combine(_last_sunday(y, 3), datetime.time(1))
    end = datetime.datetime.combine(_last_sunday(y, 10), datetime.time(1))
    utc = local - datetime.timedelta(hours=1)
    return utc if start <= utc < end else local


def rfc3339(local):
    return uk_to_utc(local).strftime("%Y-%m-%dT%H:%M:%SZ")


def country_attribute(country):
    """{"country": code} or, without an ISO code, {"region": name}."""
    code = COUNTRY_CODES.get(country)
    return {"country": code} if code else {"region": country}


def order_event(inv):
    """The order event of an invoice, or None (non-C invoice with a total
    <= 0). The customer_id field is left out for a customer-less one."""
    if inv.no.startswith("C"):
        if inv.total >= 0:
            raise SystemExit(f"C invoice {inv.no} has total {inv.total}")
        etype, amount = "order.refunded", -inv.total
    elif inv.total > 0:
        etype, amount = "order.placed", inv.total
    else:
        return None
    ev = {"event_id": f"or-{inv.no}", "type": etype}
    if inv.customer is not None:
        ev["customer_id"] = inv.customer
    ev.update({"occurred_at": rfc3339(inv.time), "order_id": inv.no,
               "amount": format(amount, "f"), "currency": CURRENCY})
    return ev


def profile_events(invs):
    """One profile.updated per customer, from their last invoice, in the
    order of those invoices."""
    last = {}
    for inv in invs:
        if inv.customer is not None:
            last.pop(inv.customer, None)
            last[inv.customer] = inv
    return [{"event_id": f"or-p-{cust[2:]}", "type": "profile.updated",
             "customer_id": cust, "occurred_at": rfc3339(inv.time),
             "attributes": country_attribute(inv.country)}
            for cust, inv in last.items()]


def order_events(invs):
    """[(invoice, event)] for every invoice that has an event."""
    return [(inv, ev) for inv, ev in ((inv, order_event(inv)) for inv in invs)
            if ev is not None]


def record(ev, key_for_null, partitions):
    """One cpkafka produce input line (no line end)."""
    key = ev.get("customer_id")
    rec = {"key": key, "value": json.dumps(ev, separators=(",", ":"))}
    if partitions is not None:
        rec["partition"] = kafka_partition(
            (key if key is not None else key_for_null).encode(), partitions)
    return json.dumps(rec, separators=(",", ":"))


def streams(path=DEFAULT_INPUT, partitions=None):
    """{"orders": [line], "profile": [line]}: the cpkafka input lines of
    both streams, each in production order."""
    invs = invoices(read_rows(path))
    return {"orders": [record(ev, inv.no, partitions)
                       for inv, ev in order_events(invs)],
            "profile": [record(ev, None, partitions)
                        for ev in profile_events(invs)]}


# ---------------------------------------------------------------------------
# The repository's subset
# ---------------------------------------------------------------------------

def subset_lines(rows):
    """The rows SUBSET_RULE keeps."""
    size = collections.Counter(r.invoice for r in rows)
    keep = []
    for r in rows:
        if r.customer is not None:
            ok = int(r.customer[2:]) % 3 == 0
        else:
            ok = int(r.invoice.lstrip("CA")) % 7 == 0 and size[r.invoice] <= 10
        if ok:
            keep.append(r.line)
    return keep


def make_subset(src, out):
    """Writes the subset of src to out as gzip, reproducibly (no name, no
    time in the gzip header)."""
    text = HEADER + "\n" + "".join(l + "\n" for l in
                                   subset_lines(read_rows(src)))
    buf = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9,
                       mtime=0) as gz:
        gz.write(text.encode("utf-8"))
    with open(out, "wb") as f:
        f.write(buf.getvalue())
    return text.count("\n") - 1, len(text), len(buf.getvalue())


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--input", default=DEFAULT_INPUT)
    ap.add_argument("--stream", choices=("orders", "profile"),
                    default="orders")
    ap.add_argument("--partitions", type=int, default=None)
    ap.add_argument("--raw", action="store_true")
    ap.add_argument("--make-subset", nargs=2, metavar=("SRC", "OUT"))
    args = ap.parse_args(argv)
    if args.make_subset:
        rows, size, gz = make_subset(*args.make_subset)
        print(f"online_retail_events: {rows} rows, {size} bytes, "
              f"{gz} gzipped", file=sys.stderr)
        return
    if args.partitions is not None and args.partitions < 1:
        ap.error("--partitions must be >= 1")
    out = streams(args.input, args.partitions)[args.stream]
    for line in out:
        sys.stdout.write((json.loads(line)["value"] if args.raw else line)
                         + "\n")
    print(f"online_retail_events: {len(out)} {args.stream} events",
          file=sys.stderr)


if __name__ == "__main__":
    main()
