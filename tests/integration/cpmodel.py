"""cpmodel - the tests' own arithmetic for docs/contracts.md.

An independent Python reading of the contract: order rules, de-duplication
windows, the RFM 8-type segment against fixed references (event clock, UTC),
and the exact CloudEvents custpulse must emit. Integration tests compare
custpulse's Redis state and output topic with what this computes; it never
links or calls scoring/.

Standard library only.
"""
import datetime as _dt
import json
import struct

MASK64 = (1 << 64) - 1
DAY_MS = 86400000


# ---- MurmurHash3 x64_128 (Appleby), for the CloudEvent ids -----------------

def _rotl64(x, r):
    return ((x << r) | (x >> (64 - r))) & MASK64


def _fmix64(k):
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & MASK64
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & MASK64
    k ^= k >> 33
    return k


def murmur3_x64_128(data: bytes, seed: int = 0):
    c1, c2 = 0x87C37B91114253D5, 0x4CF5AD432745937F
    h1 = h2 = seed
    n = len(data)
    nblocks = n // 16
    for i in range(nblocks):
        k1, k2 = struct.unpack_from("<QQ", data, i * 16)
        k1 = (k1 * c1) & MASK64
        k1 = _rotl64(k1, 31)
        k1 = (k1 * c2) & MASK64
        h1 ^= k1
        h1 = _rotl64(h1, 27)
        h1 = (h1 + h2) & MASK64
        h1 = (h1 * 5 + 0x52DCE729) & MASK64
        k2 = (k2 * c2) & MASK64
        k2 = _rotl64(k2, 33)
        k2 = (k2 * c1) & MASK64
        h2 ^= k2
        h2 = _rotl64(h2, 31)
        h2 = (h2 + h1) & MASK64
        h2 = (h2 * 5 + 0x38495AB5) & MASK64
    tail = data[nblocks * 16:]
    k1 = k2 = 0
    for i in range(len(tail) - 1, 7, -1):
        k2 ^= tail[i] << ((i - 8) * 8)
    if len(tail) > 8:
        k2 = (k2 * c2) & MASK64
        k2 = _rotl64(k2, 33)
        k2 = (k2 * c1) & MASK64
        h2 ^= k2
    for i in range(min(len(tail), 8) - 1, -1, -1):
        k1 ^= tail[i] << (i * 8)
    if tail:
        k1 = (k1 * c1) & MASK64
        k1 = _rotl64(k1, 31)
        k1 = (k1 * c2) & MASK64
        h1 ^= k1
    h1 ^= n
    h2 ^= n
    h1 = (h1 + h2) & MASK64
    h2 = (h2 + h1) & MASK64
    h1 = _fmix64(h1)
    h2 = _fmix64(h2)
    h1 = (h1 + h2) & MASK64
    h2 = (h2 + h1) & MASK64
    return h1, h2


def event_id(customer_id: str, model: str, seq: int) -> str:
    """The CloudEvent id of (customer, model, seq): contracts section 4."""
    data = customer_id.encode() + b"\0" + model.encode() + b"\0" + str(seq).encode()
    h1, h2 = murmur3_x64_128(data, 0)
    b = bytearray(struct.pack("<QQ", h1, h2))
    b[6] = (b[6] & 0x0F) | 0x80
    b[8] = (b[8] & 0x3F) | 0x80
    h = b.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


# ---- time and money ---------------------------------------------------------

def parse_time_ms(s: str) -> int:
    """RFC 3339 -> epoch ms (truncated), for the well-formed times tests use."""
    d = _dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return int(d.timestamp()) * 1000 + d.microsecond // 1000


def format_time_ms(ms: int) -> str:
    d = _dt.datetime.fromtimestamp(ms // 1000, _dt.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + ".%03dZ" % (ms % 1000)


def utc_day(ms: int) -> int:
    return ms // DAY_MS


def money_minor(amount, digits: int = 2) -> int:
    s = amount if isinstance(amount, str) else repr(amount)
    whole, _, frac = s.partition(".")
    return int(whole) * 10 ** digits + int((frac + "0" * digits)[:digits] or 0)


def money_str(minor: int, digits: int = 2) -> str:
    if digits == 0:
        return str(minor)
    return "%d.%0*d" % (minor // 10 ** digits, digits, minor % 10 ** digits)


# ---- customer model ---------------------------------------------------------

SEGMENTS = {
    (True, True, True): "important_value",
    (True, False, True): "important_develop",
    (False, True, True): "important_keep",
    (False, False, True): "important_retain",
    (True, True, False): "general_value",
    (True, False, False): "general_develop",
    (False, True, False): "general_keep",
    (False, False, False): "general_retain",
}


class Fixed:
    """rfm.reference = fixed with the config's three thresholds."""

    def __init__(self, recency_days=90, frequency=2, monetary="100.00"):
        self.recency_days = recency_days
        self.frequency = frequency
        self.monetary = money_minor(monetary)

    def config(self):
        return {"rfm.reference": "fixed",
                "rfm.fixed.recency_days": str(self.recency_days),
                "rfm.fixed.frequency": str(self.frequency),
                "rfm.fixed.monetary": money_str(self.monetary)}

    def json(self):
        return {"mode": "fixed", "recency_days": self.recency_days,
                "frequency": self.frequency, "monetary": money_str(self.monetary)}


class Customer:
    def __init__(self, cid, dedup_event_ids=16, dedup_orders=32):
        self.cid = cid
        self.orders = 0
        self.monetary = 0
        self.first = None
        self.last = None
        self.segment = None
        self.seq = 0
        self.event_ids = []          # newest last
        self.remembered = []         # [order_id, net, cancelled], newest last
        self.watermarks = {}         # (topic, partition) -> offset
        self.k_events = dedup_event_ids
        self.k_orders = dedup_orders

    def _find_order(self, order_id):
        for o in self.remembered[-self.k_orders:]:
            if o[0] == order_id:
                return o
        return None

    def apply(self, ev):
        """Applies one event dict; returns True if it counted (not a dup)."""
        if ev["event_id"] in self.event_ids[-self.k_events:]:
            return False
        self.event_ids = (self.event_ids + [ev["event_id"]])[-self.k_events:]
        amount = money_minor(ev["amount"])
        t = parse_time_ms(ev["occurred_at"])
        o = self._find_order(ev["order_id"])
        if ev["type"] == "order.placed":
            if o is not None:
                return False
            self.orders += 1
            self.monetary += amount
            self.first = t if self.first is None else min(self.first, t)
            self.last = t if self.last is None else max(self.last, t)
            self.remembered = (self.remembered + [[ev["order_id"], amount, False]])[-self.k_orders:]
        elif ev["type"] == "order.refunded":
            if o is None:
                self.monetary = max(0, self.monetary - amount)
            elif not o[2]:
                d = min(amount, o[1])
                o[1] -= d
                self.monetary = max(0, self.monetary - d)
        elif ev["type"] == "order.cancelled":
            if o is None:
                self.monetary = max(0, self.monetary - amount)
            elif not o[2]:
                self.orders = max(0, self.orders - 1)
                self.monetary = max(0, self.monetary - o[1])
                o[1] = 0
                o[2] = True
        return True

    def classify(self, now_ms, ref: Fixed):
        if self.orders < 1:
            return None
        r = max(0, utc_day(now_ms) - utc_day(self.last))
        return SEGMENTS[(r <= ref.recency_days, self.orders >= ref.frequency,
                         self.monetary >= ref.monetary)]

    def recency_days(self, now_ms):
        return max(0, utc_day(now_ms) - utc_day(self.last)) if self.last is not None else 0


def replay(records, ref: Fixed, source="custpulse", segments_topic=None,
           dedup_event_ids=16, dedup_orders=32):
    """Runs valid events through the model with clock = event in the given
    order. records: dicts with 'value' (the event dict), 'topic',
    'partition', 'offset'. Returns (customers by id, expected outputs in
    emission order as parsed CloudEvent dicts)."""
    customers = {}
    outputs = []
    clock = 0
    for rec in records:
        ev = rec["value"]
        t = parse_time_ms(ev["occurred_at"])
        clock = max(clock, t)
        c = customers.get(ev["customer_id"])
        if c is None:
            c = customers[ev["customer_id"]] = Customer(ev["customer_id"], dedup_event_ids, dedup_orders)
        key = (rec["topic"], rec["partition"])
        c.watermarks[key] = max(c.watermarks.get(key, -1), rec["offset"])
        if not c.apply(ev):
            continue
        seg = c.classify(clock, ref)
        if seg == c.segment:
            continue
        c.seq += 1
        outputs.append({
            "specversion": "1.0",
            "id": event_id(c.cid, "rfm8", c.seq),
            "source": source,
            "type": "com.custpulse.segment.changed",
            "subject": c.cid,
            "time": format_time_ms(t),
            "datacontenttype": "application/json",
            "data": {"model": "rfm8", "from": c.segment, "to": seg, "seq": c.seq,
                     "recency_days": c.recency_days(clock), "frequency": c.orders,
                     "monetary": money_str(c.monetary), "currency": "USD",
                     "reference": ref.json(),
                     "cause": {"event_id": ev["event_id"], "topic": rec["topic"],
                               "partition": rec["partition"], "offset": rec["offset"]}},
        })
        c.segment = seg
    return customers, outputs


def expected_hash(c: Customer):
    """The contract's hash fields a test compares exactly (all but the
    internal encodings e/r and the write counter v)."""
    h = {"o": str(c.orders), "m": str(c.monetary), "q": str(c.seq)}
    if c.first is not None:
        h["f"] = str(c.first)
        h["l"] = str(c.last)
    if c.segment is not None:
        h["s"] = c.segment
    for (topic, part), off in c.watermarks.items():
        h["w:%s:%d" % (topic, part)] = str(off)
    return h


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
