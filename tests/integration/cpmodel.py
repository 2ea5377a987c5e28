"""cpmodel - the tests' own arithmetic for docs/contracts.md and
docs/models.md.

An independent Python reading of the contract: order rules, de-duplication
windows, the RFM 8-type segment against fixed references (UTC), the
customer model of layout 2 (events counter, BTYD x, the first order day's
spend z, engagement, support, profile attributes, lifecycle with "won
back", value, custom segments, quantile RFM) and
the exact CloudEvents custpulse must emit for every model. Integration
tests compare custpulse's Redis state and output topic with what this
computes; it never links or calls scoring/.

Floating-point figures follow the C code's operations in the same order
(IEEE doubles in both), and 2^x comes from the C library's exp2() through
ctypes - the function scoring/decay.c calls - so the decayed sums stored
with %.17g match bit for bit.

Quantile RFM (docs/models.md "Quantile RFM", model "rfm"): fixed mode
with the config's thresholds (RfmqFixed, the default: harness.config()
sets rfmq.mode = fixed), or live mode against one given snapshot
(RfmqLive: a version and its thresholds, e.g. from_histogram() of the
population a test knows custpulse started with); the histogram buckets
(h) and the histogram hash <prefix>rq they add up to (rfmq_histogram).
Bucket functions and thresholds are ports of scoring/quantile.c, with
the C library's log2() through ctypes as for exp2.

Not modelled: BTYD parameters (`custpulse fit`): the model is that of a
daemon without them (P(alive) counts as 1, CLV as 0, both null in the
outputs), live RFM 8-type references, when a live quantile RFM snapshot
is taken (a test gives the snapshot in force), and the within-batch
detail that an attribute removed in a batch still takes one of the 64
attribute slots until the batch ends.

Custom segments are given as Segment(name, rule, predicate): `rule` is the
text handed to custpulse, `predicate` the test's own reading of it over the
fields of docs/segments.md (a dict: field name -> value, None = null).

Standard library only.
"""
import ctypes
import ctypes.util
import datetime as _dt
import decimal
import json
import math
import struct

import storecodec

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


# ---- time, money and numbers -------------------------------------------------

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


def _load_libm(fname, fallback):
    """The C library's double fname(double), else fallback."""
    for name in (ctypes.util.find_library("m"), "libm.so.6"):
        if not name:
            continue
        try:
            f = getattr(ctypes.CDLL(name), fname)
        except (OSError, AttributeError):
            continue
        f.restype = ctypes.c_double
        f.argtypes = [ctypes.c_double]
        return f
    return fallback


# scoring/decay.c's 2^x and scoring/quantile.c's log2, from the same library.
exp2 = _load_libm("exp2", lambda x: 2.0 ** x)
LN2 = 0.69314718055994530942  # scoring/churn.c
log2 = _load_libm("log2", math.log2)


def num6(v):
    """A number as consumer/output.c writes it into "scores" ("%.6f",
    trailing zeros and point trimmed; null when not finite), parsed back
    the way json.loads reads the output (so 3 is an int, 3.5 a float)."""
    if v is None or not math.isfinite(v):
        return None
    s = "%.6f" % v
    n = len(s)
    while n > 1 and s[n - 1] == "0":
        n -= 1
    if n > 0 and s[n - 1] == ".":
        n -= 1
    return json.loads(s[:n])


def g17(v: float) -> str:
    """%.17g, as consumer/store.c writes doubles."""
    return "%.17g" % v


def shortest_decimal(v: float) -> str:
    """consumer/decode.c format_real: the shortest round-tripping digits
    without exponent ("1.5", "100", "-0.001"; 0 and -0 are "0")."""
    if v == 0 or not math.isfinite(v):
        return "0"
    s = format(decimal.Decimal(repr(v)), "f")
    if "." in s:
        s = s.rstrip("0").rstrip(".")
    return s


# ---- model parameters -------------------------------------------------------

BROWSE_TYPES = ("session.started", "page.viewed", "product.viewed",
                "search.performed", "cart.item_added", "cart.abandoned")
BROWSE_FIELDS = ("sessions", "page_views", "product_views", "searches",
                 "cart_adds", "cart_abandons")
SUPPORT_TYPES = ("ticket.opened", "ticket.resolved", "complaint.filed",
                 "survey.answered")
ORDER_TYPES = ("order.placed", "order.refunded", "order.cancelled")

# Config keys of the models and their defaults (common/config.c).
DEFAULTS = {
    "engagement.half_life_days": "14",
    "engagement.weight.session_started": "1",
    "engagement.weight.page_viewed": "0.5",
    "engagement.weight.product_viewed": "1",
    "engagement.weight.search_performed": "1",
    "engagement.weight.cart_item_added": "3",
    "engagement.weight.cart_abandoned": "2",
    "engagement.high": "20",
    "engagement.medium": "5",
    "engagement.low": "1",
    "satisfaction.complaint_half_life_days": "30",
    "satisfaction.at_risk_complaints": "2",
    "satisfaction.at_risk_open_tickets": "3",
    "satisfaction.at_risk_csat": "2",
    "satisfaction.satisfied_csat": "4",
    "lifecycle.new_days": "30",
    "lifecycle.loyal_orders": "4",
    "lifecycle.at_risk_days": "90",
    "lifecycle.churn_days": "180",
    "lifecycle.won_back_days": "30",
    "value.weight.historical": "0.4",
    "value.weight.predicted": "0.4",
    "value.weight.strategic": "0.2",
    "value.historical_ref": "100.00",
    "value.predicted_ref": "200.00",
    "value.high_score": "0.6",
    "value.alive": "0.5",
    # churn warnings (docs/churn.md; common/config.c defaults)
    "churn.overdue.k": "2",
    "churn.overdue.floor_days": "14",
    "churn.overdue.fallback_gap_days": "45",
    "churn.engagement.peak_half_life_days": "60",
    "churn.engagement.fraction": "0.25",
    "churn.engagement.recover_fraction": "0.5",
    "churn.engagement.min_peak": "5",
    "churn.service.complaints": "0.5",
    "churn.service.recover_complaints": "0.25",
    "churn.service.csat_max": "2",
    "churn.service.csat_window_days": "30",
    "churn.value.short_half_life_days": "30",
    "churn.value.long_half_life_days": "180",
    "churn.value.fraction": "0.3",
    "churn.value.recover_fraction": "0.6",
    "churn.weight.overdue": "0.5",
    "churn.weight.p_alive_low": "0.5",
    "churn.weight.engagement_drop": "0.25",
    "churn.weight.service_risk": "0.4",
    "churn.weight.value_drop": "0.3",
    "churn.level.low": "0.2",
    "churn.level.medium": "0.45",
    "churn.level.high": "0.7",
    "churn.min_level": "low",
}

CHURN_REASONS = ("overdue", "p_alive_low", "engagement_drop", "service_risk",
                 "value_drop")
CHURN_LEVELS = (None, "low", "medium", "high")


class Segment:
    """A custom segment: config `segment.<name>.rule = <rule>`, and the
    test's reading of the rule as predicate(fields) -> bool."""

    def __init__(self, name, rule, predicate):
        self.name, self.rule, self.predicate = name, rule, predicate


class Params:
    """The models' config (DEFAULTS overridden by `config`, a dict of the
    same keys) and the custom segments in config order."""

    def __init__(self, config=None, segments=()):
        unknown = set(config or {}) - set(DEFAULTS)
        if unknown:
            raise ValueError(f"cpmodel.Params: unknown keys {sorted(unknown)}")
        self.overrides = {k: str(v) for k, v in (config or {}).items()}
        self.segments = list(segments)
        k = dict(DEFAULTS, **self.overrides)
        f = lambda name: float(k[name])  # noqa: E731  (strtod)
        i = lambda name: int(k[name])  # noqa: E731
        self.eng_half_life_ms = f("engagement.half_life_days") * 86400000.0
        self.eng_weight = [f("engagement.weight." + t.replace(".", "_"))
                           for t in BROWSE_TYPES]
        self.eng_high = f("engagement.high")
        self.eng_medium = f("engagement.medium")
        self.eng_low = f("engagement.low")
        self.complaint_half_life_ms = (
            f("satisfaction.complaint_half_life_days") * 86400000.0)
        self.at_risk_complaints = f("satisfaction.at_risk_complaints")
        self.at_risk_open_tickets = i("satisfaction.at_risk_open_tickets")
        self.at_risk_csat = i("satisfaction.at_risk_csat")
        self.satisfied_csat = i("satisfaction.satisfied_csat")
        self.new_days = i("lifecycle.new_days")
        self.loyal_orders = i("lifecycle.loyal_orders")
        self.at_risk_days = i("lifecycle.at_risk_days")
        self.churn_days = i("lifecycle.churn_days")
        self.won_back_days = i("lifecycle.won_back_days")
        self.minor_per_unit = math.pow(10.0, 2)
        self.w_historical = f("value.weight.historical")
        self.w_predicted = f("value.weight.predicted")
        self.w_strategic = f("value.weight.strategic")
        self.historical_ref = (money_minor(k["value.historical_ref"])
                               / self.minor_per_unit)
        self.predicted_ref = (money_minor(k["value.predicted_ref"])
                              / self.minor_per_unit)
        self.high_score = f("value.high_score")
        self.alive = f("value.alive")
        # churn (consumer/evaluate.c churn_params); no BTYD: p_alive_low off
        day = 86400000.0
        self.ch_k = f("churn.overdue.k")
        self.ch_floor = f("churn.overdue.floor_days")
        self.ch_fallback = f("churn.overdue.fallback_gap_days")
        self.ch_peak_hl = f("churn.engagement.peak_half_life_days") * day
        self.ch_eng_frac = f("churn.engagement.fraction")
        self.ch_eng_rec = f("churn.engagement.recover_fraction")
        self.ch_min_peak = f("churn.engagement.min_peak")
        self.ch_compl = f("churn.service.complaints")
        self.ch_compl_rec = f("churn.service.recover_complaints")
        self.ch_csat_max = i("churn.service.csat_max")
        self.ch_csat_window = f("churn.service.csat_window_days") * day
        self.ch_short_hl = f("churn.value.short_half_life_days") * day
        self.ch_long_hl = f("churn.value.long_half_life_days") * day
        self.ch_value_frac = f("churn.value.fraction")
        self.ch_value_rec = f("churn.value.recover_fraction")
        self.ch_weight = [f("churn.weight." + r) for r in CHURN_REASONS]
        self.ch_level = (f("churn.level.low"), f("churn.level.medium"),
                         f("churn.level.high"))
        self.ch_min_level = CHURN_LEVELS.index(k["churn.min_level"])

    def config(self):
        """The config keys for custpulse: the overrides and the rules."""
        out = dict(self.overrides)
        for s in self.segments:
            out[f"segment.{s.name}.rule"] = s.rule
        return out


DEFAULT_PARAMS = Params()


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


# ---- quantile RFM (scoring/quantile.c, consumer/rfmq.c) -------------------

Q_NONE = (1 << 63) - 1      # CP_Q_NONE (INT64_MAX): a threshold nobody reaches
RFMQ_DIMS = ("r", "f", "m")


def q_bucket_r(last_day):
    """cp_q_bucket_r: the last order's local day number."""
    return last_day


def q_bucket_f(orders):
    """cp_q_bucket_f: the count up to 64, then 8 buckets per doubling."""
    if orders <= 64:
        return orders
    return 64 + math.floor(8.0 * log2(float(orders) / 64.0))


def q_bucket_m(monetary):
    """cp_q_bucket_m: -1 for 0, else floor(8 * log2(m)) (the same double
    operations as the C: (double)m, libm's log2, times 8.0, floor)."""
    if monetary <= 0:
        return -1
    return math.floor(8.0 * log2(float(monetary)))


def q_thresholds(bins):
    """cp_q_thresholds over {bucket: customers}: (population, [t1..t4]).
    t_k is the bucket of the first non-empty bin, in bucket order, with at
    least k/5 of the population in the bins before it (below * 5 >= k *
    total, in integers); Q_NONE when no bin has. Counts <= 0 are
    ignored."""
    items = sorted((b, n) for b, n in bins.items() if n > 0)
    total = sum(n for _, n in items)
    t, below = [], 0
    for b, n in items:
        if len(t) == 4:
            break
        while len(t) < 4 and below * 5 >= (len(t) + 1) * total:
            t.append(b)
        below += n
    return total, t + [Q_NONE] * (4 - len(t))


def q_score(b, t):
    """cp_q_score: 1 + the number of thresholds bucket b reaches."""
    return 1 + sum(1 for x in t if x != Q_NONE and b >= x)


# The named segments by R (rows 1..5) x F (columns 1..5), docs/models.md.
RFMQ_GRID = (
    ("lost", "hibernating", "at_risk", "at_risk", "cant_lose"),
    ("hibernating", "hibernating", "at_risk", "at_risk", "cant_lose"),
    ("about_to_sleep", "about_to_sleep", "need_attention", "loyal", "loyal"),
    ("promising", "potential_loyalist", "potential_loyalist", "loyal",
     "loyal"),
    ("new", "potential_loyalist", "potential_loyalist", "champions",
     "champions"),
)


def rfmq_segment(r, f):
    """cp_rfmseg: the code of scores r, f (1..5); None when unscored."""
    if not (1 <= r <= 5 and 1 <= f <= 5):
        return None
    return RFMQ_GRID[r - 1][f - 1]


def rfmq_thresholds_text(t):
    """cp_rfmq_thresholds_text of [[R t1..t4], [F ...], [M ...]]:
    "r1,r2,r3,r4;f1,...;m1,..." with "-" for Q_NONE (field t of
    <prefix>rqs)."""
    return ";".join(",".join("-" if x == Q_NONE else str(x) for x in dim)
                    for dim in t)


class RfmqFixed:
    """rfmq.mode = fixed with the config's thresholds; the defaults are
    those of common/config.c (what harness.config() runs with). R counts
    the thresholds of days since the last order not reached (5 below the
    first, 1 from the last), F and M 1 + those reached."""

    mode = "fixed"

    def __init__(self, recency_days=(14, 30, 90, 180), frequency=(2, 3, 5, 8),
                 monetary=("50", "100", "250", "500")):
        self.recency_days = tuple(int(x) for x in recency_days)
        self.frequency = tuple(int(x) for x in frequency)
        self.monetary_text = tuple(str(x) for x in monetary)
        self.monetary = tuple(money_minor(x) for x in self.monetary_text)

    def config(self):
        return {"rfmq.mode": "fixed",
                "rfmq.fixed.recency_days":
                    ",".join(str(x) for x in self.recency_days),
                "rfmq.fixed.frequency":
                    ",".join(str(x) for x in self.frequency),
                "rfmq.fixed.monetary": ",".join(self.monetary_text)}

    def version(self):
        """The snapshot of the scores: none in fixed mode."""
        return None

    def scores(self, c, today):
        """cp_rfmq_score_fixed: (r, f, m), (0, 0, 0) when not scored."""
        if c.rfmq_pos() is None:
            return 0, 0, 0
        days = max(0, today - c.last_day)
        return (5 - sum(1 for x in self.recency_days if days >= x),
                1 + sum(1 for x in self.frequency if c.orders >= x),
                1 + sum(1 for x in self.monetary if c.monetary >= x))


class RfmqLive:
    """rfmq.mode = live, scored against one snapshot: version (0 = none:
    nobody is scored), population n and thresholds t = [[R t1..t4], [F
    ...], [M ...]] (Q_NONE: undefined)."""

    mode = "live"

    def __init__(self, version=0, t=None, n=0, snapshot_ms=None):
        self.v = version
        self.n = n
        self.t = [list(d) for d in (t or [[Q_NONE] * 4] * 3)]
        self.snapshot_ms = snapshot_ms

    @classmethod
    def from_histogram(cls, hist, version, snapshot_ms=None):
        """The snapshot custpulse takes of histogram hash contents hist
        ({"r:<bucket>": customers, ...}, as rfmq_histogram gives; values
        int or str) as version `version` (cp_rfmq_thresholds: n is the R
        histogram's population)."""
        bins = {d: {} for d in RFMQ_DIMS}
        for field, count in hist.items():
            d, _, b = field.partition(":")
            bins[d][int(b)] = int(count)
        t, n = [], 0
        for d in RFMQ_DIMS:
            total, td = q_thresholds(bins[d])
            t.append(td)
            if d == "r":
                n = total
        return cls(version, t, n, snapshot_ms)

    def config(self):
        cfg = {"rfmq.mode": "live"}
        if self.snapshot_ms is not None:
            cfg["rfmq.snapshot_ms"] = str(self.snapshot_ms)
        return cfg

    def text(self):
        """Field t of <prefix>rqs for this snapshot."""
        return rfmq_thresholds_text(self.t)

    def version(self):
        """data.scores.snapshot and inspect's snapshot: null while none."""
        return self.v if self.v > 0 else None

    def scores(self, c, today):
        """cp_rfmq_score_live: (r, f, m), (0, 0, 0) without a snapshot or
        a counted order."""
        pos = c.rfmq_pos()
        if pos is None or self.v <= 0 or self.n <= 0:
            return 0, 0, 0
        return tuple(q_score(b, t) for b, t in zip(pos, self.t))


DEFAULT_RFMQ = RfmqFixed()


def rfmq_histogram(customers):
    """The histogram hash <prefix>rq the customers' h add up to (live
    mode): {"r:<bucket>": customers, "f:...", "m:..."}, no empty bucket.
    customers: {cid: Customer} or an iterable of Customer."""
    out = {}
    for c in (customers.values() if isinstance(customers, dict)
              else customers):
        if c.hpos is None:
            continue
        for d, b in zip(RFMQ_DIMS, c.hpos):
            key = f"{d}:{b}"
            out[key] = out.get(key, 0) + 1
    return out


# ---- decayed sums (scoring/decay.c) -----------------------------------------

class Decay:
    """An exponentially decayed sum held at its latest event time."""

    def __init__(self):
        self.score = 0.0
        self.ref = 0
        self.n = 0

    def add(self, w, t, half_life_ms):
        if not self.n:
            self.score, self.ref, self.n = w, t, 1
        elif t >= self.ref:
            self.score = self.score * exp2(-float(t - self.ref)
                                           / half_life_ms) + w
            self.ref = t
        else:
            self.score += w * exp2(-float(self.ref - t) / half_life_ms)

    def at(self, now, half_life_ms):
        if not self.n:
            return 0.0
        if now <= self.ref:
            return self.score
        return self.score * exp2(-float(now - self.ref) / half_life_ms)


class Support:
    """One customer's support figures (scoring/satisfaction.c)."""

    def __init__(self):
        self.events = 0
        self.open = 0
        self.resolved = 0
        self.res_sum = 0.0
        self.complaints = Decay()
        self.csat_last = 0
        self.csat_last_ms = 0
        self.csat_sum = 0
        self.csat_n = 0
        self.nps_last = -1
        self.nps_last_ms = 0

    def apply(self, ev, t, p: Params):
        self.events += 1
        typ = ev["type"]
        if typ == "ticket.opened":
            self.open += 1
        elif typ == "ticket.resolved":
            if self.open > 0:
                self.open -= 1
            self.resolved += 1
            self.res_sum += float(ev["resolution_minutes"])
        elif typ == "complaint.filed":
            self.complaints.add(1.0, t, p.complaint_half_life_ms)
        elif ev["survey"] == "csat":
            self.csat_sum += ev["score"]
            self.csat_n += 1
            if not self.csat_last or t >= self.csat_last_ms:
                self.csat_last, self.csat_last_ms = ev["score"], t
        else:
            if self.nps_last < 0 or t >= self.nps_last_ms:
                self.nps_last, self.nps_last_ms = ev["score"], t

    def encode(self):
        """Field k (consumer/store.c encode_support)."""
        c = self.complaints
        return ",".join([str(self.events), str(self.open), str(self.resolved),
                         g17(self.res_sum), "1" if c.n else "0", g17(c.score),
                         str(c.ref), str(self.csat_last),
                         str(self.csat_last_ms), str(self.csat_sum),
                         str(self.csat_n), str(self.nps_last),
                         str(self.nps_last_ms)])

    def csat_avg(self):
        return self.csat_sum / self.csat_n if self.csat_n else None


def nps_class(score):
    if score < 0:
        return None
    if score <= 6:
        return "detractor"
    return "passive" if score <= 8 else "promoter"


def attr_text(name, value):
    """A profile attribute's normalised value (consumer/decode.c
    attr_fill), None for a removal."""
    if value is None:
        return None
    if name == "tags":
        return ",".join(value)
    if name == "signup_at":
        return str(parse_time_ms(value))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return shortest_decimal(value)


ATTRS_MAX = 64


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


class Customer:
    def __init__(self, cid, dedup_event_ids=16, dedup_orders=32, params=None):
        self.cid = cid
        self.params = params or DEFAULT_PARAMS
        self.orders = 0
        self.monetary = 0
        self.first = None
        self.last = None
        self.segment = None
        self.seq = 0
        self.event_ids = []          # newest last
        # [order_id, net, cancelled, day], newest last
        self.remembered = []
        self.watermarks = {}         # (topic, partition) -> offset
        self.k_events = dedup_event_ids
        self.k_orders = dedup_orders
        # layout 2
        self.events = 0              # n
        self.repeat_days = 0         # b
        self.first_spend = 0         # z (written once f is)
        self.engagement = Decay()    # g
        self.browse = [0] * len(BROWSE_TYPES)  # gc
        self.support = Support()     # k
        self.won_back_day = -1       # yw
        self.attrs = {}              # a:<name> -> normalised value
        self.attrs_dropped = 0
        self.stage = None            # sl
        self.eng = None              # se
        self.sat = None              # ss
        self.tier = None             # sv
        self.custom = set()          # sc (names)
        self.sq = None               # sq: quantile RFM segment emitted
        self.hpos = None             # h: (R, F, M) buckets counted in rq
        self.rfmq = None             # the quantile RFM model last evaluated
        # churn (docs/churn.md): gp, sp, cw
        self.peak = Decay()          # gp (its ref is g's)
        self.spend_s = Decay()       # sp: short sum
        self.spend_l = Decay()       # sp: long sum
        self.spend_orders = 0        # sp: orders in the sums (<= 2)
        self.cw = None               # cw: (level, since ms) of an episode
        self.eval_now = None         # "now" of the last evaluation

    # -- derived --------------------------------------------------------------
    @property
    def first_day(self):
        return utc_day(self.first)

    @property
    def last_day(self):
        return utc_day(self.last)

    @property
    def strategic(self):
        return self.attrs.get("is_strategic") == "true"

    def rfmq_pos(self):
        """cp_rfmq_pos: the (R, F, M) histogram buckets of the customer,
        None when not in the population (no counted order)."""
        if self.orders < 1 or self.first is None:
            return None
        return (q_bucket_r(self.last_day), q_bucket_f(self.orders),
                q_bucket_m(self.monetary))

    def _find_order(self, order_id):
        for o in self.remembered[-self.k_orders:]:
            if o[0] == order_id:
                return o
        return None

    def _day_counted(self, day):
        return any(not o[2] and o[3] == day for o in self.remembered)

    # -- applying events (scoring/state.c + consumer/batch.c apply_customer)
    def apply(self, ev):
        """Applies one event dict (any family); returns True if it was
        applied (not an upstream duplicate)."""
        if ev["event_id"] in self.event_ids[-self.k_events:]:
            return False
        self.event_ids = (self.event_ids + [ev["event_id"]])[-self.k_events:]
        t = parse_time_ms(ev["occurred_at"])
        typ = ev["type"]
        if typ in ORDER_TYPES:
            # Won back: the stage on the order's own day, before the order.
            before = self.stage_at(utc_day(t))
            orders_before = self.orders
            if not self._apply_order(ev, t):
                return False
            if self.orders > orders_before and before == "churned":
                self.won_back_day = utc_day(t)
            if self.orders > orders_before:  # cp_churn_on_order
                w = float(money_minor(ev["amount"]))
                self.spend_s.add(w, t, self.params.ch_short_hl)
                self.spend_l.add(w, t, self.params.ch_long_hl)
                self.spend_orders = min(2, self.spend_orders + 1)
        elif typ in BROWSE_TYPES:
            k = BROWSE_TYPES.index(typ)
            self.browse[k] += 1
            self.engagement.add(self.params.eng_weight[k], t,
                                self.params.eng_half_life_ms)
            # cp_churn_on_browse
            g = self.engagement
            held = (self.peak.at(g.ref, self.params.ch_peak_hl)
                    if self.peak.n else 0.0)
            self.peak.score = held if held > g.score else g.score
            self.peak.ref, self.peak.n = g.ref, 1
        elif typ in SUPPORT_TYPES:
            self.support.apply(ev, t, self.params)
        elif typ == "profile.updated":
            for name, value in ev["attributes"].items():
                text = attr_text(name, value)
                if text is None:
                    self.attrs.pop(name, None)
                elif name in self.attrs or len(self.attrs) < ATTRS_MAX:
                    self.attrs[name] = text
                else:
                    self.attrs_dropped += 1
        else:
            raise ValueError(f"cpmodel: unknown event type {typ!r}")
        self.events += 1
        return True

    def _apply_order(self, ev, t):
        amount = money_minor(ev["amount"])
        o = self._find_order(ev["order_id"])
        if ev["type"] == "order.placed":
            if o is not None:
                return False
            repeat = self.orders > 0 and not self._day_counted(utc_day(t))
            if self.first is None or utc_day(t) < self.first_day:
                self.first_spend = amount
            elif utc_day(t) == self.first_day:
                self.first_spend += amount
            self.orders += 1
            self.monetary += amount
            self.first = t if self.first is None else min(self.first, t)
            self.last = t if self.last is None else max(self.last, t)
            self.remembered = (self.remembered +
                               [[ev["order_id"], amount, False, utc_day(t)]]
                               )[-self.k_orders:]
            if repeat:
                self.repeat_days += 1
        elif ev["type"] == "order.refunded":
            if o is None:
                self.monetary = max(0, self.monetary - amount)
            elif not o[2]:
                d = min(amount, o[1])
                o[1] -= d
                self.monetary = max(0, self.monetary - d)
                self._first_day_less(o, d)
            self.first_spend = min(self.first_spend, self.monetary)
        elif ev["type"] == "order.cancelled":
            if o is None:
                self.monetary = max(0, self.monetary - amount)
            elif not o[2]:
                self.orders = max(0, self.orders - 1)
                self.monetary = max(0, self.monetary - o[1])
                self._first_day_less(o, o[1])
                o[1] = 0
                o[2] = True
                if self.orders == 0:
                    self.repeat_days = 0
                elif self.repeat_days > 0 and not self._day_counted(o[3]):
                    self.repeat_days -= 1
            self.first_spend = min(self.first_spend, self.monetary)
        return True

    def _first_day_less(self, o, d):
        """z: a refund or cancellation of d of a remembered order of the
        first order day (scoring/state.c)."""
        if self.first is not None and o[3] == self.first_day:
            self.first_spend = max(0, self.first_spend - d)

    # -- models (scoring/models.c) -------------------------------------------
    def classify(self, now_ms, ref: Fixed):
        if self.orders < 1:
            return None
        r = max(0, utc_day(now_ms) - utc_day(self.last))
        return SEGMENTS[(r <= ref.recency_days, self.orders >= ref.frequency,
                         self.monetary >= ref.monetary)]

    def recency_days(self, now_ms):
        return max(0, utc_day(now_ms) - utc_day(self.last)) if self.last is not None else 0

    def stage_at(self, today):
        """cp_models_stage: the lifecycle stage on local day `today`."""
        p = self.params
        orders = self.orders if self.first is not None else 0
        if self.events == 0 and orders < 1:
            return None
        if orders < 1:
            return "prospect"
        since_last = today - self.last_day
        if since_last >= p.churn_days:
            return "churned"
        if since_last >= p.at_risk_days:
            return "at_risk"
        if (self.won_back_day >= 0
                and today - self.won_back_day < p.won_back_days):
            return "won_back"
        if today - self.first_day < p.new_days:
            return "new"
        return "loyal" if orders >= p.loyal_orders else "active"

    def models(self, now_ms, today):
        """cp_models_eval without BTYD parameters: a dict of every model."""
        p = self.params
        mo = {"stage": self.stage_at(today)}
        mo["engagement"] = self.engagement.at(now_ms, p.eng_half_life_ms)
        mo["eng"] = None
        if any(self.browse) and self.engagement.n:
            s = mo["engagement"]
            mo["eng"] = ("high" if s >= p.eng_high else
                         "medium" if s >= p.eng_medium else
                         "low" if s >= p.eng_low else "dormant")
        k = self.support
        mo["complaints"] = k.complaints.at(now_ms, p.complaint_half_life_ms)
        mo["sat"] = None
        if k.events:
            c = mo["complaints"]
            nps = nps_class(k.nps_last)
            if (c >= p.at_risk_complaints or k.open >= p.at_risk_open_tickets
                    or (k.csat_last and k.csat_last <= p.at_risk_csat)
                    or nps == "detractor"):
                mo["sat"] = "at_risk"
            elif ((k.csat_last >= p.satisfied_csat or nps == "promoter")
                  and k.open == 0 and c < 0.5):
                mo["sat"] = "satisfied"
            else:
                mo["sat"] = "neutral"
        mo["value"] = self.value(mo["stage"])
        return mo

    def value(self, stage):
        """cp_value_eval with P(alive) 1 and CLV 0 (no BTYD parameters)."""
        p = self.params
        monetary = self.monetary / p.minor_per_unit
        clv, p_alive = 0.0, 1.0
        h = monetary / (monetary + p.historical_ref) if monetary > 0.0 else 0.0
        pr = clv / (clv + p.predicted_ref) if clv > 0.0 else 0.0
        s = 1.0 if self.strategic else 0.0
        w = p.w_historical + p.w_predicted + p.w_strategic
        score = (p.w_historical * h + p.w_predicted * pr +
                 p.w_strategic * s) / w
        alive = p_alive >= p.alive
        lapsing = stage in ("at_risk", "churned")
        if self.orders <= 0:
            tier = None
        elif score >= p.high_score and alive and not lapsing:
            tier = "high_value"
        elif h >= 0.5 and (not alive or lapsing):
            tier = "churn_risk"
        elif pr >= 0.5 and alive:
            tier = "potential"
        else:
            tier = "low_value"
        return {"historical": h, "predicted": pr, "strategic": s,
                "score": score, "tier": tier}

    def fields(self, mo, today):
        """The fields of custom segment rules (consumer/evaluate.c
        cp_eval_custom); None = null."""
        k = self.support
        ordered = self.orders > 0 and self.first is not None
        f = {
            "rfm.r": float(today - self.last_day) if ordered else None,
            "rfm.f": float(self.orders),
            "rfm.m": self.monetary / self.params.minor_per_unit,
            "rfm8": self.segment,
            "lifecycle": mo["stage"],
            "engagement": mo["eng"],
            "engagement.score": mo["engagement"],
            "satisfaction": mo["sat"],
            "satisfaction.open_tickets": float(k.open),
            "satisfaction.complaints": mo["complaints"],
            "satisfaction.csat_last":
                float(k.csat_last) if k.csat_last else None,
            "satisfaction.csat_avg": k.csat_avg(),
            "satisfaction.nps": float(k.nps_last) if k.nps_last >= 0 else None,
            "satisfaction.nps_class": nps_class(k.nps_last),
            "value": mo["value"]["tier"],
            "value.score": mo["value"]["score"] if self.orders > 0 else None,
            "value.clv": None,
            "btyd.p_alive": None,
            "btyd.x": None,
            "events": float(self.events),
            "strategic": self.strategic,
        }
        for name, n in zip(BROWSE_FIELDS, self.browse):
            f["browsing." + name] = float(n)
        return _Fields(f, self.attrs)

    def custom_at(self, mo, today):
        """Names of the custom segments the customer is in."""
        f = self.fields(mo, today)
        return {s.name for s in self.params.segments if bool(s.predicate(f))}

    def scores(self, model, mo, today):
        """data.scores of a change of `model` (consumer/output.c)."""
        if model == "lifecycle":
            ordered = self.orders > 0 and self.first is not None
            return {"orders": self.orders,
                    "days_since_last_order":
                        today - self.last_day if ordered else None,
                    "days_since_first_order":
                        today - self.first_day if ordered else None}
        if model == "engagement":
            return {"score": num6(mo["engagement"])}
        if model == "satisfaction":
            k = self.support
            return {"open_tickets": k.open,
                    "complaints": num6(mo["complaints"]),
                    "csat_last": k.csat_last or None,
                    "csat_avg": num6(k.csat_avg()),
                    "nps_class": nps_class(k.nps_last)}
        if model == "rfm":
            r, f, m = mo["rfmq"]
            return {"r": r, "f": f, "m": m, "snapshot": self.rfmq.version()}
        if model == "value":
            v = mo["value"]
            return {"score": num6(v["score"]),
                    "historical": num6(v["historical"]),
                    "predicted": num6(v["predicted"]),
                    "strategic": num6(v["strategic"]),
                    "p_alive": None, "clv": None}
        return {}

    def evaluate(self, now_ms, ref: Fixed, rfmq=None):
        """Every model after an applied event (consumer/batch.c evaluate):
        [(model, from, to, scores)] in emission order; the levels held are
        updated. rfmq: the quantile RFM model (DEFAULT_RFMQ when None)."""
        today = utc_day(now_ms)
        changes = []
        seg = self.classify(now_ms, ref)
        if seg != self.segment:
            changes.append(("rfm8", self.segment, seg, None))
            self.segment = seg
        mo = self.models(now_ms, today)
        self.rfmq = rfmq or DEFAULT_RFMQ
        mo["rfmq"] = self.rfmq.scores(self, today)
        sq = rfmq_segment(mo["rfmq"][0], mo["rfmq"][1])
        if sq != self.sq:
            changes.append(("rfm", self.sq, sq,
                            self.scores("rfm", mo, today)))
            self.sq = sq
        for model, attr, level in (("lifecycle", "stage", mo["stage"]),
                                   ("engagement", "eng", mo["eng"]),
                                   ("satisfaction", "sat", mo["sat"]),
                                   ("value", "tier", mo["value"]["tier"])):
            if level != getattr(self, attr):
                changes.append((model, getattr(self, attr), level,
                                self.scores(model, mo, today)))
                setattr(self, attr, level)
        inside = self.custom_at(mo, today)
        for s in self.params.segments:
            was, now = s.name in self.custom, s.name in inside
            if was != now:
                changes.append(("custom:" + s.name, "in" if was else "out",
                                "in" if now else "out", {}))
        self.custom = inside
        return changes

    # -- churn (scoring/churn.c) ---------------------------------------------
    @staticmethod
    def _ratio(a, ha, b, hb, now):
        """decay_ratio: a(now) / b(now) from the shared reference."""
        if not a.n or not b.n or not b.score > 0:
            return math.nan
        if a.ref != b.ref:
            return a.at(now, ha) / b.at(now, hb)
        dt = float(now - a.ref) if now > a.ref else 0.0
        return a.score / b.score * exp2(-dt * (1.0 / ha - 1.0 / hb))

    def churn_eval(self, now_ms, today):
        """cp_churn_eval_at without BTYD parameters (P(alive) NaN): a dict
        of the conditions' figures, reasons (codes), score, level and
        signals_recovered."""
        p = self.params
        ev = {"days": -1, "gap": math.nan, "gap_own": False,
              "threshold": math.nan, "p_alive": math.nan}
        over = False
        if self.orders >= 1 and self.first is not None:
            ev["days"] = max(0, today - self.last_day)
            span = self.last_day - self.first_day
            ev["gap_own"] = self.repeat_days >= 1 and span > 0
            ev["gap"] = (span / self.repeat_days if ev["gap_own"]
                         else p.ch_fallback)
            thr = p.ch_k * ev["gap"]
            ev["threshold"] = thr if thr > p.ch_floor else p.ch_floor
            over = ev["days"] > ev["threshold"]
        hg = p.eng_half_life_ms
        peak, hpk = ((self.peak, p.ch_peak_hl) if self.peak.n
                     else (self.engagement, hg))
        ev["engagement"] = self.engagement.at(now_ms, hg)
        ev["peak"] = peak.at(now_ms, hpk)
        ev["eng_ratio"] = r = self._ratio(self.engagement, hg, peak, hpk,
                                          now_ms)
        eng_peak = ev["peak"] >= p.ch_min_peak
        eng_low, eng_ok = r < p.ch_eng_frac, r >= p.ch_eng_rec
        k = self.support
        c = ev["complaints"] = k.complaints.at(now_ms,
                                               p.complaint_half_life_ms)
        ev["csat_last"] = k.csat_last
        ev["csat_age"] = math.nan
        csat_low = False
        if k.csat_last:
            age = float(now_ms - k.csat_last_ms) if now_ms > k.csat_last_ms \
                else 0.0
            ev["csat_age"] = age / 86400000.0
            csat_low = (k.csat_last <= p.ch_csat_max
                        and age < p.ch_csat_window)
        hs, hl = p.ch_short_hl, p.ch_long_hl
        ev["rate_s"] = self.spend_s.at(now_ms, hs) * LN2 / hs * 86400000.0
        ev["rate_l"] = self.spend_l.at(now_ms, hl) * LN2 / hl * 86400000.0
        vr = ev["value_ratio"] = (
            math.nan if self.spend_orders < 2 else
            self._ratio(self.spend_s, hs, self.spend_l, hl, now_ms) *
            (hl / hs))
        norm = not math.isnan(vr)
        reasons = []
        if over:
            reasons.append("overdue")
        if eng_peak and eng_low:
            reasons.append("engagement_drop")
        if c >= p.ch_compl or csat_low:
            reasons.append("service_risk")
        if norm and vr < p.ch_value_frac:
            reasons.append("value_drop")
        ev["reasons"] = reasons
        keep = 1.0
        for i, code in enumerate(CHURN_REASONS):
            if code in reasons:
                keep *= 1.0 - p.ch_weight[i]
        score = ev["score"] = 1.0 - keep
        lo, med, hi = p.ch_level
        ev["level"] = (0 if not score > 0 else 3 if score >= hi else
                       2 if score >= med else 1 if score >= lo else 0)
        ev["recovered"] = (not reasons and (not eng_peak or eng_ok)
                           and c < p.ch_compl_rec and not csat_low
                           and (not norm or vr >= p.ch_value_rec))
        return ev

    def churn_step(self, now_ms, today, start_ms):
        """One cp_churn_step after an evaluation: (action, level, previous
        level, episode start, ordered, ev) or None; self.cw updated. An
        episode starts at start_ms, the causing event's time."""
        ev = self.churn_eval(now_ms, today)
        level = ev["level"]
        warns = level >= self.params.ch_min_level and level > 0
        if self.cw is None:
            if not warns:
                return None
            self.cw = (level, start_ms)
            return ("warn", level, None, start_ms, False, ev)
        was, since = self.cw
        ordered = (self.orders >= 1 and self.last is not None
                   and self.last > since)
        if not warns and (ordered or ev["recovered"]):
            self.cw = None
            return ("recovered", was, None, since, ordered, ev)
        if level > was:
            self.cw = (level, since)
            return ("escalate", level, was, since, False, ev)
        return None

    def churn_data(self, action, level, prev, since, ordered, ev):
        """The data of the churn CloudEvent (consumer/output.c), without
        seq and cause."""
        p = self.params
        data = {"action": action, "episode_started_at": format_time_ms(since),
                "level": CHURN_LEVELS[level]}
        if action == "recovered":
            data["recovered_by"] = "order" if ordered else "signals"
            data["score"] = num6(ev["score"])
            return data
        data["previous_level"] = CHURN_LEVELS[prev] if prev else None
        data["score"] = num6(ev["score"])
        figures = {
            "overdue": lambda: {
                "days_since_last_order": ev["days"],
                "gap_days": num6(ev["gap"]),
                "gap_source": "own" if ev["gap_own"] else "population",
                "threshold_days": num6(ev["threshold"])},
            "engagement_drop": lambda: {
                "engagement": num6(ev["engagement"]),
                "peak": num6(ev["peak"]), "ratio": num6(ev["eng_ratio"]),
                "threshold": num6(p.ch_eng_frac)},
            "service_risk": lambda: {
                "complaints": num6(ev["complaints"]),
                "complaints_threshold": num6(p.ch_compl),
                "csat_last": ev["csat_last"] or None,
                "csat_age_days": num6(ev["csat_age"])},
            "value_drop": lambda: {
                "spend_rate_short": num6(ev["rate_s"] / p.minor_per_unit),
                "spend_rate_long": num6(ev["rate_l"] / p.minor_per_unit),
                "ratio": num6(ev["value_ratio"]),
                "threshold": num6(p.ch_value_frac)},
        }
        data["reasons"] = [
            {"code": r, "weight": num6(p.ch_weight[CHURN_REASONS.index(r)]),
             "figures": figures[r]()} for r in ev["reasons"]]
        data.update({
            "p_alive": None,
            "expected_purchases": {"30d": None, "90d": None, "365d": None},
            "days_since_last_order": ev["days"] if ev["days"] >= 0 else None,
            "segment": self.segment, "rfm_segment": self.sq,
            "lifecycle": self.stage, "value_tier": self.tier,
            "value_at_risk": None, "currency": "USD"})
        return data

    def inspect_models(self, now_ms, rfmq=None):
        """The "models" section of `custpulse inspect` (consumer/main.c
        models_json) at now_ms, without BTYD parameters; floats unrounded.
        rfmq: the quantile RFM model inspect reads (the config's mode; in
        live mode the current snapshot of <prefix>rqs); by default the one
        this customer was last evaluated with."""
        today = utc_day(now_ms)
        mo = self.models(now_ms, today)
        k = self.support
        rq = rfmq or self.rfmq or DEFAULT_RFMQ
        r, f, m = rq.scores(self, today)
        out = {
            "evaluated_at": format_time_ms(now_ms),
            "rfm": {"segment": rfmq_segment(r, f), "emitted": self.sq,
                    "r": r, "f": f, "m": m, "snapshot": rq.version(),
                    "mode": rq.mode,
                    "buckets": list(self.hpos) if self.hpos else None},
            "lifecycle": {"stage": mo["stage"], "emitted": self.stage,
                          "won_back_day": self.won_back_day
                          if self.won_back_day >= 0 else None},
            "engagement": {"level": mo["eng"], "emitted": self.eng,
                           "score": mo["engagement"]},
            "satisfaction": {
                "level": mo["sat"], "emitted": self.sat,
                "open_tickets": k.open, "resolved": k.resolved,
                "avg_resolution_minutes":
                    k.res_sum / k.resolved if k.resolved else None,
                "complaints": mo["complaints"],
                "csat_last": k.csat_last or None,
                "csat_avg": k.csat_avg(),
                "nps_last": k.nps_last if k.nps_last >= 0 else None,
                "nps_class": nps_class(k.nps_last)},
            "btyd": None,
            "value": {"tier": mo["value"]["tier"], "emitted": self.tier,
                      "score": mo["value"]["score"],
                      "historical": mo["value"]["historical"],
                      "predicted": mo["value"]["predicted"],
                      "strategic": mo["value"]["strategic"]},
        }
        for name, n in zip(BROWSE_FIELDS, self.browse):
            out["engagement"][name] = n
        inside = self.custom_at(mo, today)
        out["custom"] = {s.name: "in" if s.name in inside else "out"
                         for s in self.params.segments}
        return out


class _Fields(dict):
    """Rule fields; profile.<name> reads the attribute (None when absent)."""

    def __init__(self, fixed, attrs):
        super().__init__(fixed)
        self._attrs = attrs

    def __missing__(self, key):
        if key.startswith("profile."):
            return self._attrs.get(key[len("profile."):])
        raise KeyError(key)


def _cause(t, ev, rec):
    """data.cause: the event, or (ev None) the clock at the due instant t."""
    if ev is None:
        return {"kind": "time", "evaluated_at": format_time_ms(t)}
    return {"event_id": ev["event_id"], "topic": rec["topic"],
            "partition": rec["partition"], "offset": rec["offset"]}


def _cloudevent(c, model, frm, to, scores, data_extra, t, ev, rec, source):
    data = {"model": model, "from": frm, "to": to, "seq": c.seq}
    if model == "rfm8":
        data.update(data_extra)
    else:
        data["scores"] = scores
    data["cause"] = _cause(t, ev, rec)
    return {
        "specversion": "1.0",
        "id": event_id(c.cid, model, c.seq),
        "source": source,
        "type": "com.custpulse.segment.changed",
        "subject": c.cid,
        "time": format_time_ms(t),
        "datacontenttype": "application/json",
        "data": data,
    }


def _churn_cloudevent(c, data, t, ev, rec, source):
    data = dict(data, seq=c.seq)
    data["cause"] = _cause(t, ev, rec)
    rec_type = data["action"] == "recovered"
    return {
        "specversion": "1.0", "id": event_id(c.cid, "churn", c.seq),
        "source": source,
        "type": "com.custpulse.churn." + ("recovered" if rec_type
                                          else "warning"),
        "subject": c.cid, "time": format_time_ms(t),
        "datacontenttype": "application/json", "data": data,
    }


def _evaluate_out(c, now, today, t, ev, rec, ref, rfmq, churn, source):
    """One evaluation at `now` (consumer/batch.c evaluate) caused by the
    event ev (rec its record) or, ev None, by time at its due instant t =
    now: the outputs in emission order."""
    outputs = []
    for model, frm, to, scores in c.evaluate(now, ref, rfmq):
        c.seq += 1
        extra = None
        if model == "rfm8":
            extra = {"recency_days": c.recency_days(now),
                     "frequency": c.orders,
                     "monetary": money_str(c.monetary), "currency": "USD",
                     "reference": ref.json()}
        outputs.append(_cloudevent(c, model, frm, to, scores, extra, t,
                                   ev, rec, source))
    step = c.churn_step(now, today, t) if churn else None
    if step:
        c.seq += 1
        outputs.append(_churn_cloudevent(c, c.churn_data(*step), t, ev,
                                         rec, source))
    c.eval_now = now
    return outputs


def _value_drop_at(c, after):
    """The first instant (ms) > after at which value_drop becomes true for
    a silent customer, or None: the closed form of the ratio's fall,
    then the exact float test of churn_eval, millisecond by millisecond
    around it (independent of scoring/due.c's galloping search)."""
    p = c.params
    if c.spend_orders < 2:
        return None
    hs, hl = p.ch_short_hl, p.ch_long_hl

    def low(t):
        vr = Customer._ratio(c.spend_s, hs, c.spend_l, hl, t) * (hl / hs)
        return vr < p.ch_value_frac

    if low(after + 1):
        return after + 1 if not low(after) else None
    ref = max(c.spend_s.ref, after)
    vr0 = Customer._ratio(c.spend_s, hs, c.spend_l, hl, ref) * (hl / hs)
    rate = 1.0 / hs - 1.0 / hl
    guess = ref + int(math.log2(vr0 / p.ch_value_frac) / rate)
    t = max(after + 1, guess - 3)
    while low(t) and t > after + 1:
        t -= 1
    while not low(t):
        t += 1
    return t


def emits_at(c, t, ref, rfmq, churn):
    """Would evaluating c at t (a time-caused evaluation) emit something?
    The same decisions as _evaluate_out, without changing c."""
    today = utc_day(t)
    if c.classify(t, ref) != c.segment:
        return True
    mo = c.models(t, today)
    r, f, _ = rfmq.scores(c, today)
    if rfmq_segment(r, f) != c.sq:
        return True
    if (mo["stage"] != c.stage or mo["eng"] != c.eng or mo["sat"] != c.sat
            or mo["value"]["tier"] != c.tier):
        return True
    if c.params.segments and c.custom_at(mo, today) != c.custom:
        return True
    if not churn:
        return False
    ev = c.churn_eval(t, today)
    level = ev["level"]
    warns = level >= c.params.ch_min_level and level > 0
    if c.cw is None:
        return warns
    was, since = c.cw
    ordered = c.orders >= 1 and c.last is not None and c.last > since
    return (not warns and (ordered or ev["recovered"])) or level > was


def next_change(c, after, until, ref, rfmq, churn, exhaustive=False):
    """The first instant in (after, until] at which evaluating the silent
    customer emits something, or None: a UTC midnight, or the value_drop
    instant. Independent of scoring/due.c: every midnight tried in turn
    (exhaustive), or, for an orders-only customer whose results only move
    one way while it is silent (recency and the lifecycle advance, churn
    reasons are only added), the first midnight found by bisection over
    "emits at that midnight", which is then monotone. Orders-only
    customers (browsing and support decay by the millisecond: not
    covered)."""
    if any(c.browse) or c.support.events:
        raise ValueError("next_change: orders-only customers")
    rfmq = rfmq or DEFAULT_RFMQ
    vd = _value_drop_at(c, after) if churn else None
    if vd is not None and (vd > until or not emits_at(c, vd, ref, rfmq,
                                                       churn)):
        vd = None
    lo, hi = utc_day(after) + 1, utc_day(until)
    if vd is not None:
        hi = min(hi, utc_day(vd))  # a midnight before vd, or vd
    first = None
    if exhaustive:
        for d in range(lo, hi + 1):
            if emits_at(c, d * 86400000, ref, rfmq, churn):
                first = d
                break
    elif lo <= hi and emits_at(c, hi * 86400000, ref, rfmq, churn):
        while lo < hi:
            mid = (lo + hi) // 2
            if emits_at(c, mid * 86400000, ref, rfmq, churn):
                hi = mid
            else:
                lo = mid + 1
        first = lo
    if first is not None and (vd is None or first * 86400000 <= vd):
        return first * 86400000
    return vd


def catch_up(c, until, ref, rfmq, churn, source="custpulse",
             exhaustive=False):
    """Time-caused evaluations of c up to `until` (inclusive), each at its
    instant (consumer/batch.c catch_up, as far as outputs go): the
    outputs."""
    outputs = []
    while True:
        t = next_change(c, c.eval_now, until, ref, rfmq, churn, exhaustive)
        if t is None:
            return outputs
        outputs += _evaluate_out(c, t, utc_day(t), t, None, None, ref,
                                 rfmq, churn, source)


def sweep(customers, until, ref, rfmq=None, churn=False,
          source="custpulse", exhaustive=False):
    """The due-time sweep up to `until` over every customer (the final
    sweep of --exit-at-end): the outputs, customers in id order."""
    rfmq = rfmq or DEFAULT_RFMQ
    out = []
    for cid in sorted(customers):
        if customers[cid].eval_now is not None:
            out += catch_up(customers[cid], until, ref, rfmq, churn, source,
                            exhaustive)
    return out


def replay(records, ref: Fixed, source="custpulse", segments_topic=None,
           dedup_event_ids=16, dedup_orders=32, params=None, now_ms=None,
           customers=None, clock=0, rfmq=None, churn=False, timed=False,
           exhaustive=False):
    """Runs valid events through the model in the given order. records:
    dicts with 'value' (the event dict, any family), 'topic', 'partition',
    'offset'. "Now" is clock = event (the running maximum of event times,
    starting at `clock`: 0 for a fresh custpulse process) unless now_ms is
    given (clock = wall with every batch on that instant's day). customers:
    the state so far (a dict, updated in place) for a replay continued
    after an earlier one. rfmq: the quantile RFM model (RfmqFixed() or an
    RfmqLive snapshot; None: DEFAULT_RFMQ, harness.config()'s fixed mode);
    in live mode every record of a customer records its buckets (h), as
    its write does. Returns (customers by id, the expected outputs of
    these records in emission order as parsed CloudEvent dicts).
    churn: topic.churn is set (harness.config() sets it empty): churn
    warnings and recoveries are among the outputs (their type tells them
    apart) and cw is kept. timed: due.sweep_ms > 0 (harness.config() sets
    0): before each event, the customer's time-caused evaluations due by
    min(event time, now) run first (catch_up; orders-only customers;
    exhaustive: every midnight tried, see next_change)."""
    rfmq = rfmq or DEFAULT_RFMQ
    customers = {} if customers is None else customers
    outputs = []
    for rec in records:
        ev = rec["value"]
        t = parse_time_ms(ev["occurred_at"])
        clock = max(clock, t)
        now = clock if now_ms is None else now_ms
        c = customers.get(ev["customer_id"])
        if c is None:
            c = customers[ev["customer_id"]] = Customer(
                ev["customer_id"], dedup_event_ids, dedup_orders, params)
        key = (rec["topic"], rec["partition"])
        c.watermarks[key] = max(c.watermarks.get(key, -1), rec["offset"])
        if timed and c.eval_now is not None:
            outputs += catch_up(c, min(t, now), ref, rfmq, churn, source,
                                exhaustive)
        applied = c.apply(ev)
        if rfmq.mode == "live":
            c.hpos = c.rfmq_pos()
        if not applied:
            continue
        outputs += _evaluate_out(c, now, utc_day(now), t, ev, rec, ref, rfmq,
                                 churn, source)
    return customers, outputs


# Hash fields expected_hash() covers besides w:* and a:* (docs/contracts.md
# section 2, layouts 1 to 3); v, e and r are not compared exactly (e and r:
# storecodec.model_memories).
STATE_FIELDS = ("lv", "o", "m", "q", "n", "f", "l", "z", "b", "s", "sq",
                "sl", "se", "ss", "sv", "sc", "yw", "g", "gc", "k", "h",
                "gp", "sp", "cw")


def expected_hash(c: Customer):
    """The contract's hash fields a test compares exactly (all but the
    internal encodings e/r and the write counter v)."""
    h = {"lv": "4", "o": str(c.orders), "m": str(c.monetary), "q": str(c.seq),
         "n": str(c.events)}
    if c.first is not None:
        h["f"] = str(c.first)
        h["l"] = str(c.last)
        h["z"] = str(c.first_spend)
    if c.repeat_days > 0:
        h["b"] = str(c.repeat_days)
    if c.segment is not None:
        h["s"] = c.segment
    if c.sq is not None:
        h["sq"] = c.sq
    if c.hpos is not None:
        h["h"] = "%d,%d,%d" % c.hpos
    for f, level in (("sl", c.stage), ("se", c.eng), ("ss", c.sat),
                     ("sv", c.tier)):
        if level is not None:
            h[f] = level
    sc = [s.name for s in c.params.segments if s.name in c.custom]
    if sc:
        h["sc"] = ",".join(sc)
    if c.won_back_day >= 0:
        h["yw"] = str(c.won_back_day)
    if c.engagement.n:
        h["g"] = "%s:%d" % (g17(c.engagement.score), c.engagement.ref)
    if c.peak.n and c.engagement.n:
        h["gp"] = g17(c.peak.score)
    if c.spend_orders:
        h["sp"] = "%s,%s,%d,%d" % (g17(c.spend_s.score), g17(c.spend_l.score),
                                   c.spend_s.ref, c.spend_orders)
    if c.cw is not None:
        h["cw"] = "%s,%d" % (CHURN_LEVELS[c.cw[0]], c.cw[1])
    if any(c.browse):
        h["gc"] = ",".join(str(n) for n in c.browse)
    if c.support.events:
        h["k"] = c.support.encode()
    for name, value in c.attrs.items():
        h["a:" + name] = value
    for (topic, part), off in c.watermarks.items():
        h[storecodec.w_field(topic, part)] = str(off)
    return h


def canonical(obj) -> str:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
