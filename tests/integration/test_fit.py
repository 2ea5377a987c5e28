"""`custpulse fit`: maximum likelihood BTYD parameters (consumer/fit.h,
docs/btyd.md "Where the parameters live").

Transactions file (no services): CDNOW_sample.txt cut at 1997-09-30 in
weeks reproduces Fader, Hardie & Lee (2005) - BG/NBD r 0.243, alpha 4.414,
a 0.793, b 2.426, LL -9582.4 - and, with zbar the mean of the repeat
(same-day merged) transactions, the Gamma-Gamma p 6.25, q 3.74, v 15.44,
LL -4055.9 of note 025; MBG/NBD the BTYDplus 0.525, 6.183, 0.891, 1.614.
The same transactions as a CSV (YYYY-MM-DD or YYYYMMDD, quoted, shuffled)
give the same fit; days instead of weeks give alpha x 7 and LL lower by
sum(x) log 7; CDNOW_master.txt (header, 4 columns) reads 23,570 customers.

Redis (only redis-server; no Kafka): the sample's calibration period as
customer hashes (f/l/o/m/b computed here, UTC) gives the same BG/NBD
values; fit writes <prefix>btyd whose fields equal the printed ones, with
version 1, then 2; days come from the configured time zone (the same hashes
read in UTC give another fit); hostile hashes (junk, negative, overflowing
or out-of-range numbers, f > l, b beyond the days, keys of other types) are
skipped and counted per reason and change nothing; layout-1 hashes (no b,
no lv) are approximated (x = o - 1) and counted unless their orders fall
on one day (x = 0); a layout-2 hash without b has x = 0; a prefix with
glob characters
matches only itself; redis.db and redis.password are honoured.

Predictions (the issue's "P(alive) and expected purchases for sample
customers"): with the parameters fit wrote, `custpulse inspect` of ten
CDNOW customers (x = 0 with one or several orders on its day, x = 1, 2,
3, 5..8, the largest x, x >= 15 with an early last purchase) prints x,
t_x and T exactly as scoring/models.c defines them (T from today's UTC
date) and P(alive), expected_30d/90d/365d and clv within 1e-9 relative of
the published closed forms evaluated independently in btyd_ref.py (BG/NBD
P(alive) and eq. (10) of Fader, Hardie & Lee 2005 with 2F1 by its series,
Gamma-Gamma E[M], the discounted CLV of docs/btyd.md), once with the 1997
dates (T ~ 30 years) and once moved so that 1997-09-30 is today (T the
calibration T, plus a customer whose first order is now: T = 0.5 day);
the same for MBG/NBD (Batislam et al. 2007, Wagner & Hoppe 2008) fitted
under another prefix. A btyd.model or btyd.unit other than the hash's
makes inspect refuse the parameters (models.btyd null, stderr says which).

Failures: too few customers (< 10 with a repeat purchase) exit 1 and write
nothing; usage errors exit 2 with the usage text; configuration errors exit
2; an unreadable file, a bad line and an unreachable Redis exit 1.

The fit times the command reports (fit_ms, read_ms) are printed as figures.
"""
import datetime
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import (CP_BIN, SOURCE_DIR, Custpulse, Stack,  # noqa: E402
                     config, free_port)
from itest_util import check, check_eq, checks_made, say  # noqa: E402
import btyd_ref  # noqa: E402

CDNOW = os.path.join(SOURCE_DIR, "tests", "data", "cdnow")
SAMPLE = os.path.join(CDNOW, "CDNOW_sample.txt")
MASTER = os.path.join(CDNOW, "CDNOW_master.txt")
AT = datetime.date(1997, 9, 30)
EPOCH = datetime.date(1970, 1, 1)
DAY_MS = 86400000

# Published estimates (docs/btyd.md "Results on CDNOW").
FHL_BG = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}
FHL_BG_LL = -9582.4
BTYDPLUS_MBG = {"r": 0.525, "alpha": 6.183, "a": 0.891, "b": 1.614}
NOTE025_GG = {"p": 6.25, "q": 3.74, "v": 15.44}
NOTE025_GG_LL = -4055.9
PARAMS = ("r", "alpha", "a", "b", "p", "q", "v")
MIN_REPEAT = 10

fit_times = []  # (what, fit_ms, read_ms)


# ---------------------------------------------------------------------------
# Running fit and reading its report
# ---------------------------------------------------------------------------

def clean_env(**extra):
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("CUSTPULSE_")}
    env.update(extra)
    return env


def run_bin(args, timeout=120):
    return subprocess.run([CP_BIN, *args], capture_output=True, text=True,
                          timeout=timeout, env=clean_env())


def report(res, what):
    """The "name = value" lines of a successful run as {name: str}; for a
    parameter the value without its "(se ...)" and the se under
    "<name>.se". Records the timing figures."""
    check_eq(res.returncode, 0, f"{what}: exit code (stderr {res.stderr!r})")
    out = {}
    for line in res.stdout.splitlines():
        name, sep, value = line.partition(" = ")
        check(sep and name not in out, f"{what}: bad line {line!r}")
        if value.endswith(")") and " (se " in value:
            value, se = value[:-1].split(" (se ")
            out[name + ".se"] = se
        out[name] = value
    for k in PARAMS + ("loglik", "gg_loglik", "fit_ms", "read_ms"):
        check(k in out, f"{what}: no {k} line in {res.stdout!r}")
    fit_times.append((what, int(out["fit_ms"]), int(out["read_ms"])))
    return out


def num(rep, name):
    return float(rep[name])


def check_near(rep, want, tol, what):
    for k, v in want.items():
        got = num(rep, k)
        check(abs(got - v) <= tol,
              f"{what}: {k} = {got}, want {v} +- {tol}")


def check_se_finite(rep, names, what):
    for k in names:
        se = float(rep[k + ".se"])
        check(math.isfinite(se) and se > 0,
              f"{what}: standard error of {k} is {rep[k + '.se']}")


def check_same_fit(got, want, what, rel=1e-4):
    """Same BG/NBD estimates up to the optimiser's tolerance (the customers
    come in another order, so the sums round differently)."""
    for k in ("r", "alpha", "a", "b", "loglik"):
        g, w = num(got, k), num(want, k)
        check(abs(g - w) <= rel * abs(w),
              f"{what}: {k} = {g}, want {w} (rel {rel})")


# ---------------------------------------------------------------------------
# CDNOW transactions
# ---------------------------------------------------------------------------

def read_sample():
    """{sample id: [(date, amount)]} from CDNOW_sample.txt."""
    tx = {}
    with open(SAMPLE) as f:
        for line in f:
            t = line.split()
            if not t:
                continue
            d = datetime.date(int(t[2][:4]), int(t[2][4:6]), int(t[2][6:]))
            tx.setdefault(t[1], []).append((d, t[4]))
    return tx


def summary(rows):
    """x (repeat days), first/last date, orders, cents and the first day's
    cents (z) up to AT."""
    rows = sorted(r for r in rows if r[0] <= AT)
    days = sorted({d for d, _ in rows})
    cents = sum(int(a.replace(".", "")) for _, a in rows)
    z = sum(int(a.replace(".", "")) for d, a in rows if d == days[0])
    return {"x": len(days) - 1, "first": days[0], "last": days[-1],
            "o": len(rows), "m": cents, "z": z}


def write_csv(path, tx, date_fmt, quote, seed):
    rows = [(cid, d, a) for cid, ts in tx.items() for d, a in ts]
    random.Random(seed).shuffle(rows)
    q = '"' if quote else ""
    with open(path, "w") as f:
        f.write("customer_id,date,amount\r\n")
        for cid, d, a in rows:
            f.write(f"{q}c-{cid}{q},{q}{d.strftime(date_fmt)}{q},{a}\n")


# ---------------------------------------------------------------------------
# (1) a transactions file
# ---------------------------------------------------------------------------

def fit_csv(path, *extra, what):
    return report(run_bin(["fit", "--csv", path, *extra, "--dry-run"]), what)


def check_csv_sources(tx):
    base = ["--at", "1997-09-30", "-X", "btyd.unit=weeks"]
    bg = fit_csv(SAMPLE, *base, "-X", "btyd.model=bgnbd",
                 what="CDNOW_sample BG/NBD")
    check_eq({k: bg[k] for k in ("source", "model", "unit", "at",
                                 "customers", "repeat_customers",
                                 "excluded", "gg_customers")},
             {"source": "csv", "model": "bgnbd", "unit": "weeks",
              "at": "1997-09-30", "customers": "2357",
              "repeat_customers": "946", "excluded": "0",
              "gg_customers": "946"}, "CDNOW_sample BG/NBD counts")
    check_near(bg, FHL_BG, 0.01, "BG/NBD vs Fader-Hardie-Lee")
    check(abs(num(bg, "loglik") - FHL_BG_LL) <= 0.1,
          f"BG/NBD loglik {bg['loglik']}, want {FHL_BG_LL} +- 0.1")
    check_near(bg, NOTE025_GG, 0.01, "Gamma-Gamma vs note 025")
    check(abs(num(bg, "gg_loglik") - NOTE025_GG_LL) <= 0.1,
          f"Gamma-Gamma loglik {bg['gg_loglik']}, want {NOTE025_GG_LL}")
    check_se_finite(bg, PARAMS, "CDNOW_sample")
    check("written" not in bg, "--dry-run wrote the parameters")
    say("CDNOW_sample, weeks, at 1997-09-30: BG/NBD " +
        ", ".join(f"{k} {bg[k]} (se {bg[k + '.se']})"
                  for k in ("r", "alpha", "a", "b")) +
        f", LL {bg['loglik']}; Gamma-Gamma p {bg['p']} q {bg['q']} "
        f"v {bg['v']}, LL {bg['gg_loglik']} (published 0.243 4.414 0.793 "
        "2.426 / -9582.4; 6.25 3.74 15.44 / -4055.9)")

    mbg = fit_csv(SAMPLE, *base, "-X", "btyd.model=mbgnbd",
                  what="CDNOW_sample MBG/NBD")
    check_eq(mbg["model"], "mbgnbd", "MBG/NBD model line")
    check_near(mbg, BTYDPLUS_MBG, 0.01, "MBG/NBD vs BTYDplus")
    say(f"  MBG/NBD: r {mbg['r']} alpha {mbg['alpha']} a {mbg['a']} "
        f"b {mbg['b']}, LL {mbg['loglik']} (BTYDplus 0.525 6.183 0.891 "
        "1.614)")

    days = fit_csv(SAMPLE, "--at", "1997-09-30", "-X", "btyd.unit=days",
                   "-X", "btyd.model=bgnbd", what="CDNOW_sample days")
    sum_x = sum(summary(ts)["x"] for ts in tx.values())
    check_near(days, {"r": num(bg, "r"), "a": num(bg, "a"),
                      "b": num(bg, "b"), "alpha": 7 * num(bg, "alpha"),
                      "loglik": num(bg, "loglik") - sum_x * math.log(7)},
               0.01, "days vs weeks")
    say(f"  days: alpha {days['alpha']} = 7 x {bg['alpha']}, LL "
        f"{days['loglik']} = weeks - {sum_x} log 7")

    with tempfile.TemporaryDirectory(prefix="cp-fit-") as tmp:
        for fmt, quote in (("%Y-%m-%d", False), ("%Y%m%d", True)):
            path = os.path.join(tmp, f"tx-{quote}.csv")
            write_csv(path, tx, fmt, quote, seed=len(fmt))
            rep = fit_csv(path, *base, "-X", "btyd.model=bgnbd",
                          what=f"CSV {fmt} quoted={quote}")
            check_eq((rep["customers"], rep["repeat_customers"]),
                     ("2357", "946"), f"CSV {fmt}: counts")
            check_same_fit(rep, bg, f"CSV {fmt} quoted={quote}")
            check_near(rep, {k: num(bg, k) for k in "pqv"}, 1e-3,
                       f"CSV {fmt}: Gamma-Gamma")
        say("  the same transactions as shuffled CSV (YYYY-MM-DD; quoted "
            "YYYYMMDD) fit the same")

    last = fit_csv(SAMPLE, "-X", "btyd.model=bgnbd", what="default --at")
    check_eq(last["at"], "1998-06-30", "--at defaults to the last date")
    master = fit_csv(MASTER, *base, "-X", "btyd.model=bgnbd",
                     what="CDNOW_master")
    check_eq((master["customers"], master["excluded"]), ("23570", "0"),
             "CDNOW_master (header line, 4 columns): customers")
    say(f"  CDNOW_master (23,570 customers): r {master['r']} alpha "
        f"{master['alpha']} a {master['a']} b {master['b']}, LL "
        f"{master['loglik']}; gg_customers {master['gg_customers']}")
    return bg


# ---------------------------------------------------------------------------
# (2) the customer hashes in Redis
# ---------------------------------------------------------------------------

def day_ms(d):
    return (d - EPOCH).days * DAY_MS


def load_hashes(r, prefix, tx, shift_ms=0):
    """One hash per customer as the daemon keeps it (the fields fit reads;
    lv = 3, a layout custpulse still reads; b
    absent when 0, z the first day's spend); times at a varying hour of the
    purchase day (plus shift_ms). Returns {id: fields}."""
    out = {}
    for cid, ts in tx.items():
        s = summary(ts)
        jitter = int(cid) * 7919 * 1000 % (DAY_MS // 8)
        h = {"v": 1, "lv": 3, "o": s["o"], "m": s["m"], "b": s["x"],
             "z": s["z"],
             "f": day_ms(s["first"]) + jitter + shift_ms,
             "l": day_ms(s["last"]) + jitter + shift_ms}
        put_customer(r, prefix, cid, h)
        out[cid] = h
    return out


def put_customer(r, prefix, cid, h):
    """HSET of the layout-2 fields h (b left out when 0, as the daemon
    does)."""
    args = [x for k, v in h.items() if k != "b" or v > 0 for x in (k, v)]
    r.cmd("HSET", f"{prefix}c:{{{cid}}}", *args)


def fit_cfg(st, prefix, **kw):
    base = {"redis.key_prefix": prefix, "timezone": "UTC",
            "currency": "USD", "btyd.model": "bgnbd", "btyd.unit": "weeks"}
    base.update(kw)
    return Custpulse(st, config(st, **base))


def fit_redis(cp, *extra, what):
    return report(cp.run(["fit", "--at", "1997-09-30", *extra]), what)


def check_written(r, key, rep, version):
    h = r.hgetall(key)
    for k in PARAMS:
        check_eq(f"{float(h[k]):.6g}", rep[k], f"{key} {k} vs printed")
        check_eq(f"{float(h[k]):.17g}", h[k], f"{key} {k} written %.17g")
    for k in ("loglik", "gg_loglik"):
        check_eq(f"{float(h[k]):.4f}", rep[k], f"{key} {k} vs printed")
    check_eq({k: h[k] for k in ("model", "unit", "source", "at", "n",
                                "gg_n", "version")},
             {"model": rep["model"], "unit": rep["unit"],
              "source": rep["source"], "at": rep["at"],
              "n": rep["customers"], "gg_n": rep["gg_customers"],
              "version": str(version)}, f"{key} fields")
    check_eq(rep.get("written"), f"{key} version {version}",
             "written line")
    return h


def check_redis_source(st, tx, csv_bg):
    prefix = "t[1]:"
    r = st.redis()
    hashes = load_hashes(r, prefix, tx)
    # Would match the pattern if the prefix's glob characters were not
    # escaped ("t[1]:" as a glob matches "t1:").
    r.cmd("HSET", "t1:c:{decoy}", "o", 5, "f", 0, "l", 0, "b", 0, "m", 1)
    cp = fit_cfg(st, prefix)
    t0 = int(time.time() * 1000)
    rep = fit_redis(cp, what="redis BG/NBD")
    t1 = int(time.time() * 1000)
    check_eq({k: rep[k] for k in ("source", "at", "customers", "keys",
                                  "skipped", "no_orders", "approximated",
                                  "excluded", "repeat_customers")},
             {"source": "redis", "at": "1997-09-30", "customers": "2357",
              "keys": "2357", "skipped": "0", "no_orders": "0",
              "approximated": "0", "excluded": "0",
              "repeat_customers": "946"}, "redis counts")
    check_near(rep, FHL_BG, 0.01, "redis BG/NBD vs Fader-Hardie-Lee")
    check(abs(num(rep, "loglik") - FHL_BG_LL) <= 0.1,
          f"redis BG/NBD loglik {rep['loglik']}")
    check_same_fit(rep, csv_bg, "redis vs the transactions file")
    gg_n = sum(1 for h in hashes.values() if h["b"] > 0 and h["m"] > 0)
    check(sum(1 for h in hashes.values() if h["b"] == 0 and h["o"] > 1) > 0,
          "the sample has one-day customers with several orders")
    check_eq(rep["gg_customers"], str(gg_n), "redis gg_customers")
    # zbar = (m - z) / b: the mean of the repeat (day-merged) transactions,
    # as the transactions file gives it.
    check_near(rep, NOTE025_GG, 0.01, "redis Gamma-Gamma vs note 025")
    check(abs(num(rep, "gg_loglik") - NOTE025_GG_LL) <= 0.1,
          f"redis Gamma-Gamma loglik {rep['gg_loglik']}")
    check_se_finite(rep, PARAMS, "redis")
    h = check_written(r, prefix + "btyd", rep, 1)
    check(t0 <= int(h["fitted_at_ms"]) <= t1,
          f"fitted_at_ms {h['fitted_at_ms']} not in [{t0}, {t1}]")
    logs = [json.loads(l) for l in rep_stderr_lines(cp)]
    check(any(l.get("msg") == "fit: customers read" and l["keys"] == 2357
              for l in logs), "no 'fit: customers read' log line")
    say(f"redis (prefix {prefix}): 2357 hashes -> r {rep['r']} alpha "
        f"{rep['alpha']} a {rep['a']} b {rep['b']}, LL {rep['loglik']}; "
        f"Gamma-Gamma (zbar = (m - z) / b) p {rep['p']} q {rep['q']} "
        f"v {rep['v']}, LL {rep['gg_loglik']}; "
        f"written {rep['written']}")

    rep2 = fit_redis(cp, what="redis second run")
    check_written(r, prefix + "btyd", rep2, 2)
    check_eq(r.cmd("EXISTS", "t1:btyd"), 0, "nothing under the decoy prefix")
    say("  second run: version 2")
    return cp, hashes, rep


# ---------------------------------------------------------------------------
# (2b) inspect's predictions vs the published closed forms
# ---------------------------------------------------------------------------

# inspect must agree with btyd_ref (decimal arithmetic, good to ~1e-35) to
# this relative difference. The C code works in doubles (log-space ratios,
# Euler's transformation, series stopped at 1e-16 of the sum), so anything
# beyond a few 1e-14 would already be suspicious; 1e-9 leaves room for
# platform libm differences and still catches any formula error.
INSPECT_REL = 1e-9
HORIZON_DAYS = (("expected_30d", 30), ("expected_90d", 90),
                ("expected_365d", 365))
PREDICTED = ("p_alive",) + tuple(k for k, _ in HORIZON_DAYS) + ("clv",)
CLV_MONTHS = 12       # btyd.horizon_months default
CLV_DISCOUNT = 0.01   # btyd.monthly_discount default
UNIT_DAYS = 7.0       # btyd.unit = weeks
NEW_ID = "first-order-now"


def sample_customers(tx):
    """[(why, id)]: ten CDNOW customers covering x = 0 (one order; several
    orders on one day), small and large x, and a last purchase early or
    late in the calibration period. The first of equals by id."""
    summ = {cid: summary(ts) for cid, ts in tx.items()}

    def span(s):
        return (s["last"] - s["first"]).days

    rules = [
        ("x=0, one order, earliest first purchase",
         lambda s: s["x"] == 0 and s["o"] == 1, lambda s: s["first"]),
        ("x=0, one order, latest first purchase",
         lambda s: s["x"] == 0 and s["o"] == 1,
         lambda s: -s["first"].toordinal()),
        ("x=0, most orders on its one day",
         lambda s: s["x"] == 0 and s["o"] > 1, lambda s: -s["o"]),
        ("x=1, latest last purchase",
         lambda s: s["x"] == 1, lambda s: -s["last"].toordinal()),
        ("x=1, shortest t_x", lambda s: s["x"] == 1, span),
        ("x=2, shortest t_x", lambda s: s["x"] == 2, span),
        ("x=3, longest t_x", lambda s: s["x"] == 3, lambda s: -span(s)),
        ("x=5..8, latest last purchase", lambda s: 5 <= s["x"] <= 8,
         lambda s: (-s["last"].toordinal(), -s["x"])),
        ("largest x", lambda s: True, lambda s: -s["x"]),
        ("x >= 15, earliest last purchase", lambda s: s["x"] >= 15,
         lambda s: s["last"]),
    ]
    picks, seen = [], set()
    for why, cond, key in rules:
        cands = sorted((key(s), int(cid), cid) for cid, s in summ.items()
                       if cond(s) and cid not in seen)
        check(cands, f"sample customers: none for {why!r}")
        seen.add(cands[0][2])
        picks.append((why, cands[0][2]))
    return picks


def utc_today():
    return datetime.datetime.now(datetime.timezone.utc).date()


def inspect_today(cp, cid, what):
    """inspect's JSON for cid and the UTC date it was evaluated on (read
    here before and after the call; once more if the date changed in
    between). The JSON's evaluated_at must fall on that date."""
    for attempt in (1, 2):
        before = utc_today()
        res = cp.run(["inspect", cid])
        if utc_today() == before:
            break
        check(attempt == 1, f"{what}: the UTC date changed twice")
    check_eq(res.returncode, 0,
             f"{what}: inspect exit code (stderr {res.stderr!r})")
    out = json.loads(res.stdout)
    check_eq(out["models"]["evaluated_at"][:10], before.isoformat(),
             f"{what}: evaluated_at is today (UTC)")
    return out, before, res.stderr


def expected_inputs(h, today):
    """(x, t_x, T, zbar) as scoring/models.c derives them from the hash
    fields h at the UTC date today: x = b, t_x = (day(l) - day(f)) / 7,
    T = (today - day(f)) / 7, 0.5 / 7 when the first order is today;
    zbar = (m - z) / b / 100 (USD cents; m / o / 100 without z or repeat
    days)."""
    f_day, l_day = h["f"] // DAY_MS, h["l"] // DAY_MS
    age = (today - EPOCH).days - f_day
    x = float(h.get("b", 0))
    t_x = (l_day - f_day) / UNIT_DAYS
    T = age / UNIT_DAYS if age > 0 else 0.5 / UNIT_DAYS
    if x > 0 and "z" in h:
        return x, t_x, T, (h["m"] - h["z"]) / x / 100
    return x, t_x, T, h["m"] / h["o"] / 100


def closed_forms(model, par, gg, x, t_x, T, zbar):
    """{quantity: Decimal} from btyd_ref with the arguments inspect uses
    (horizons as models.c passes them: days / 7.0)."""
    want = {"p_alive": btyd_ref.p_alive(model, par, x, t_x, T)}
    for name, days in HORIZON_DAYS:
        want[name] = btyd_ref.expected(model, par, x, t_x, T,
                                       days / UNIT_DAYS)
    want["clv"] = btyd_ref.clv(model, par, gg, x, t_x, T, zbar, CLV_MONTHS,
                               CLV_DISCOUNT, UNIT_DAYS)
    return want


def check_inspect_closed_forms(st, prefix, model, custs, what_set):
    """inspect (reading <prefix>btyd, fitted as model in weeks) against
    btyd_ref for custs [(why, id, hash fields)]. Returns the largest
    relative difference per quantity."""
    h = st.redis().hgetall(prefix + "btyd")
    check_eq((h["model"], h["unit"]), (model, "weeks"), f"{prefix}btyd")
    par = {k: float(h[k]) for k in ("r", "alpha", "a", "b")}
    gg = {k: float(h[k]) for k in ("p", "q", "v")}
    cp = fit_cfg(st, prefix, **{"btyd.model": model})
    worst = {k: 0.0 for k in PREDICTED}
    rows = []
    for why, cid, fields in custs:
        what = f"{model} {what_set}: inspect {cid} ({why})"
        out, today, err = inspect_today(cp, cid, what)
        check("BTYD" not in err, f"{what}: stderr {err!r}")
        b = out["models"]["btyd"]
        check(b is not None, f"{what}: models.btyd is null")
        x, t_x, T, zbar = expected_inputs(fields, today)
        check_eq({k: b[k] for k in ("model", "unit", "params_version",
                                    "x", "t_x", "T")},
                 {"model": model, "unit": "weeks",
                  "params_version": int(h["version"]), "x": x, "t_x": t_x,
                  "T": T}, f"{what}: inputs")
        for k, w in closed_forms(model, par, gg, x, t_x, T, zbar).items():
            got = b[k]
            check(got is not None, f"{what}: {k} is null (want {w:.17e})")
            rel = btyd_ref.rel_diff(got, w)
            check(rel <= INSPECT_REL,
                  f"{what}: {k} = {got!r}, closed form {w:.17e} "
                  f"(rel {rel:.3g} > {INSPECT_REL}; x {x}, t_x {t_x}, "
                  f"T {T}, zbar {zbar}, params {par} {gg})")
            worst[k] = max(worst[k], rel)
        if model == "bgnbd" and x == 0:
            check_eq(b["p_alive"], 1.0, f"{what}: BG/NBD P(alive) at x = 0")
        rows.append((cid, why, b))
    say(f"inspect vs closed forms, {model}, {what_set} (r {h['r']:.8s} "
        f"alpha {h['alpha']:.8s} a {h['a']:.8s} b {h['b']:.8s}; p "
        f"{h['p']:.7s} q {h['q']:.7s} v {h['v']:.7s}; today {today}):")
    for cid, why, b in rows:
        say(f"  {cid:>15s} x {b['x']:2.0f} t_x {b['t_x']:6.3f} T "
            f"{b['T']:8.3f}  P(alive) {b['p_alive']:<11.6g} E30 "
            f"{b['expected_30d']:<11.6g} E365 {b['expected_365d']:<11.6g} "
            f"CLV {b['clv']:<11.6g} {why}")
    say("  largest relative difference: " +
        ", ".join(f"{k} {v:.2g}" for k, v in worst.items()))
    return worst


def load_moved_to_today(r, prefix, params_prefix, picks, hashes):
    """The sample customers as if the calibration period ended today: f
    and l moved by the whole days from 1997-09-30 to today, so T is their
    calibration T (the paper's setting, P(alive) well inside (0, 1))
    instead of ~30 years; plus a customer whose one order is now (first
    order today: T = 0.5 day). <params_prefix>btyd copied to
    <prefix>btyd. Returns [(why, id, fields)]."""
    shift = (utc_today() - AT).days * DAY_MS
    custs = []
    for why, cid in picks:
        h = dict(hashes[cid], f=hashes[cid]["f"] + shift,
                 l=hashes[cid]["l"] + shift)
        put_customer(r, prefix, cid, h)
        custs.append((why, cid, h))
    now = int(time.time() * 1000)
    h = {"v": 1, "lv": 2, "o": 1, "m": 4999, "b": 0, "f": now, "l": now}
    put_customer(r, prefix, NEW_ID, h)
    custs.append(("one order, now", NEW_ID, h))
    params = r.hgetall(params_prefix + "btyd")
    r.cmd("HSET", prefix + "btyd", *[x for kv in params.items() for x in kv])
    return custs


def check_predictions(st, tx, hashes):
    """After check_redis_source (t[1]:btyd holds the BG/NBD fit of the
    CDNOW hashes): inspect's predictions for the sample customers against
    the closed forms, with the 1997 dates (T ~ 30 years) and moved to
    today; the same for MBG/NBD fitted under mbg:; then a btyd.model or
    btyd.unit differing from the hash's."""
    r = st.redis()
    # The reference itself, against the paper's worked example (FHL 2005:
    # x = 2, t_x = 30.43, T = 38.86 at the published estimates -> 1.226).
    ey = btyd_ref.expected("bgnbd", FHL_BG, 2, 30.43, 38.86, 39)
    check(abs(float(ey) - 1.226) < 5e-4, f"btyd_ref: E[Y(39)] = {ey}")
    picks = sample_customers(tx)
    say("sample customers: " + ", ".join(f"{cid} ({why})"
                                         for why, cid in picks))
    worst = {}
    for model, prefix in (("bgnbd", "t[1]:"), ("mbgnbd", "mbg:")):
        if model == "mbgnbd":
            hashes = load_hashes(r, prefix, tx)
            rep = fit_redis(fit_cfg(st, prefix, **{"btyd.model": model}),
                            what="redis MBG/NBD")
            check_eq((rep["model"], rep["customers"], rep["written"]),
                     (model, "2357", f"{prefix}btyd version 1"),
                     "redis MBG/NBD")
            check_near(rep, BTYDPLUS_MBG, 0.01, "redis MBG/NBD vs BTYDplus")
        custs = [(why, cid, hashes[cid]) for why, cid in picks]
        worst[model, "1997"] = check_inspect_closed_forms(
            st, prefix, model, custs, "1997 dates")
        now_prefix = f"now-{model}:"
        custs = load_moved_to_today(r, now_prefix, prefix, picks, hashes)
        worst[model, "today"] = check_inspect_closed_forms(
            st, now_prefix, model, custs, "moved to today")
    check_model_mismatch(st, picks[3][1], "t[1]:", "mbg:")
    return worst


def check_model_mismatch(st, cid, bg_prefix, mbg_prefix):
    """A btyd.model or btyd.unit other than the hash's: the parameters are
    refused (models.btyd null, predicted value 0) and stderr says why."""
    cases = [(bg_prefix, {"btyd.model": "mbgnbd"},
              "fitted model differs from btyd.model (mbgnbd)"),
             (mbg_prefix, {"btyd.model": "bgnbd"},
              "fitted model differs from btyd.model (bgnbd)"),
             (bg_prefix, {"btyd.unit": "days"},
              "fitted unit differs from btyd.unit (days)")]
    for prefix, kw, msg in cases:
        what = f"inspect {cid} with {kw} on {prefix}btyd"
        res = fit_cfg(st, prefix, **kw).run(["inspect", cid])
        check_eq(res.returncode, 0, f"{what}: exit code ({res.stderr!r})")
        models = json.loads(res.stdout)["models"]
        check_eq(models["btyd"], None, f"{what}: models.btyd")
        check_eq(models["value"]["predicted"], 0.0, f"{what}: predicted")
        check(f"BTYD parameters unusable: {msg}" in res.stderr,
              f"{what}: stderr {res.stderr!r} lacks {msg!r}")
    say(f"mismatch: {len(cases)} inspects with a btyd.model/unit other than "
        "the hash's -> models.btyd null, value.predicted 0, stderr 'BTYD "
        "parameters unusable: fitted model/unit differs ...'")


def rep_stderr_lines(cp):
    with open(cp.stderr_path) as f:
        return [l for l in f.read().splitlines() if l.startswith("{")]


def check_time_zone(st, tx, utc_rep):
    """Times 3 h before midnight UTC plus up to 3 h: in +05:00 the purchase
    days are CDNOW's, in UTC a day earlier."""
    r = st.redis()
    load_hashes(r, "tz:", tx, shift_ms=-3 * 3600 * 1000)
    rep = fit_redis(fit_cfg(st, "tz:", timezone="+05:00"), "--dry-run",
                    what="redis +05:00")
    check_same_fit(rep, utc_rep, "+05:00 days = CDNOW days")
    utc = fit_redis(fit_cfg(st, "tz:"), "--dry-run", what="redis UTC shift")
    check(abs(num(utc, "loglik") - num(rep, "loglik")) > 0.01,
          "the same instants in UTC gave the same fit")
    check_eq(r.cmd("EXISTS", "tz:btyd"), 0, "--dry-run wrote tz:btyd")
    say(f"  timezone: +05:00 reads CDNOW's days (LL {rep['loglik']}); UTC "
        f"reads a day earlier (LL {utc['loglik']}); --dry-run wrote nothing")


# ---------------------------------------------------------------------------
# (3) hostile hashes
# ---------------------------------------------------------------------------

def check_hostile(st, cp, hashes, first_rep):
    prefix = "t[1]:"
    r = st.redis()
    ok_f, ok_l = day_ms(datetime.date(1997, 3, 1)), day_ms(
        datetime.date(1997, 3, 4))
    good = {"f": ok_f, "l": ok_l, "o": 2, "m": 100, "b": 1, "lv": 2}
    bad = {  # id: (fields replacing good's, None = drop; reason)
        "junk-f": ({"f": "junk"}, "bad_number"),
        "neg-o": ({"o": -3}, "bad_number"),
        "huge-f": ({"f": "99999999999999999999"}, "bad_number"),
        "float-m": ({"m": "12.5"}, "bad_number"),
        "empty-o": ({"o": ""}, "bad_number"),
        "bin-l": ({"l": b"\xff\x00\x01"}, "bad_number"),
        "space-b": ({"b": " 1"}, "bad_number"),
        "word-lv": ({"lv": "two"}, "bad_number"),
        "f-after-l": ({"f": ok_l, "l": ok_f}, "bad_time"),
        "no-l": ({"l": None}, "bad_time"),
        "no-f": ({"f": None}, "bad_time"),
        "year-10000": ({"f": 253402300800000, "l": 253402300800000},
                       "bad_time"),
        "b-beyond": ({"b": 4}, "bad_repeat"),
    }
    reasons = {}
    for cid, (change, why) in bad.items():
        h = dict(good, **change)
        args = [x for k, v in h.items() if v is not None for x in (k, v)]
        r.cmd("HSET", f"{prefix}c:{{{cid}}}", *args)
        reasons[why] = reasons.get(why, 0) + 1
    r.cmd("SET", f"{prefix}c:{{string}}", "o=5")
    r.cmd("RPUSH", f"{prefix}c:{{list}}", "1", "2")
    r.cmd("SADD", f"{prefix}c:{{set}}", "f")
    reasons["wrong_type"] = 3
    # Not invalid, but no counted order, or outside the calibration period.
    r.cmd("HSET", f"{prefix}c:{{browser}}", "v", 3, "g", "x")
    r.cmd("HSET", f"{prefix}c:{{cancelled}}", "o", 0, "f", ok_f, "l", ok_f)
    late = day_ms(datetime.date(1997, 10, 5))
    r.cmd("HSET", f"{prefix}c:{{late}}", "o", 1, "f", late, "l", late, "b", 0)
    r.cmd("HSET", f"{prefix}c:{{late-l}}", "o", 2, "f", ok_f, "l", late,
          "b", 1)
    # Layout 1 (written before b and lv existed): x = o - 1 when the
    # orders span several days ("approximated"; exact for these customers,
    # who never ordered twice on one day), x = 0 exactly when they fall on
    # one day (also for those with several orders that day), so the fit
    # does not move.
    by_id = sorted(hashes.items(), key=lambda i: int(i[0]))
    approx = [cid for cid, h in by_id if h["b"] > 0 and
              h["o"] - 1 == h["b"]][:40]
    one_day = [cid for cid, h in by_id if h["b"] == 0 and h["o"] > 1][:20]
    one_day += [cid for cid, h in by_id if h["o"] == 1][:20]
    for cid in approx + one_day:
        r.cmd("HDEL", f"{prefix}c:{{{cid}}}", "b", "lv")

    rep = fit_redis(cp, "--dry-run", what="redis hostile")
    n_bad = sum(reasons.values())
    check_eq({k: rep[k] for k in ("keys", "customers", "skipped",
                                  "no_orders", "excluded", "approximated")},
             {"keys": str(2357 + n_bad + 4), "customers": "2357",
              "skipped": str(n_bad), "no_orders": "2", "excluded": "2",
              "approximated": str(len(approx))}, "hostile counts")
    check_same_fit(rep, first_rep, "hostile hashes change nothing")
    check("written" not in rep, "--dry-run wrote")
    check_eq(r.hgetall(prefix + "btyd")["version"], "2",
             "version after --dry-run")
    logs = [json.loads(l) for l in rep_stderr_lines(cp)]
    skip_lines = [l for l in logs
                  if l.get("msg") == "fit: invalid customer hashes skipped"]
    check(skip_lines, "no log line with the skip reasons")
    got = {k: skip_lines[-1][k] for k in ("wrong_type", "bad_number",
                                          "bad_time", "bad_repeat")}
    check_eq(got, {k: reasons.get(k, 0) for k in got}, "skip reasons")
    say(f"hostile: {n_bad} invalid keys skipped ({got}), 2 without orders, "
        f"2 outside the period; layout 1: {len(approx)} approximated, "
        f"{len(one_day)} one-day customers exact; exit 0, same fit")


# ---------------------------------------------------------------------------
# (4) too few customers, (5) usage and other errors
# ---------------------------------------------------------------------------

def check_too_few(st):
    r = st.redis()
    d0 = day_ms(datetime.date(1997, 1, 10))
    for i in range(15):
        x = 1 if i < MIN_REPEAT - 1 else 0
        r.cmd("HSET", f"few:c:{{{i}}}", "o", 1 + x, "m", 1000, "b", x,
              "f", d0 + i * DAY_MS, "l", d0 + (i + 3 * x) * DAY_MS)
    cases = [(fit_cfg(st, "few:"), "9 of 15"),
             (fit_cfg(st, "few:", **{"redis.db": 1}), "0 of 0")]
    for cp, counts in cases:
        res = cp.run(["fit", "--at", "1997-09-30"])
        check_eq(res.returncode, 1, f"too few ({counts}): exit code")
        check(f"too few customers: {counts} with a repeat purchase, at "
              f"least {MIN_REPEAT} needed" in res.stderr,
              f"too few ({counts}): stderr {res.stderr!r}")
        check("r = " not in res.stdout, "too few: parameters printed")
    check_eq(r.cmd("EXISTS", "few:btyd"), 0, "too few: something written")
    say(f"too few: 9 of 15 repeat customers, and redis.db=1 (0 of 0) -> "
        f"exit 1: {res.stderr.strip().splitlines()[-1]}")

    with tempfile.TemporaryDirectory(prefix="cp-fit-") as tmp:
        path = os.path.join(tmp, "few.csv")
        with open(path, "w") as f:
            f.write("customer_id,date,amount\n")
            for i in range(30):
                f.write(f"c{i},1997-01-01,10\n")
                if i < 3:
                    f.write(f"c{i},1997-02-01,10\n")
        res = run_bin(["fit", "--csv", path, "--dry-run"])
        check_eq(res.returncode, 1, "too few (csv): exit code")
        check("too few customers: 3 of 30" in res.stderr,
              f"too few (csv): {res.stderr!r}")


def check_usage():
    cases = [["fit", "--csv"], ["fit", "--at"], ["fit", "--at", "1997-13-01"],
             ["fit", "--at", "19970930"], ["fit", "--at", "1969-12-31"],
             ["fit", "--bogus"], ["fit", "extra"], ["fit", "--list"],
             ["fit", "--exit-at-end"], ["fit", "-c"], ["fit", "-X"],
             ["fit", "--dry-run", "--csv"]]
    for args in cases:
        res = run_bin(args)
        check_eq(res.returncode, 2, f"custpulse {args}: exit code")
        check("usage:" in res.stderr, f"custpulse {args}: no usage text")
        check_eq(res.stdout, "", f"custpulse {args}: stdout")
    for key in ("btyd.model=pareto", "btyd.unit=months"):
        res = run_bin(["fit", "-X", key, "--csv", SAMPLE, "--dry-run"])
        check_eq(res.returncode, 2, f"fit -X {key}: exit code")
        check(key.split("=")[0] in res.stderr, f"fit -X {key}: {res.stderr}")
    say(f"usage: {len(cases)} command lines and 2 bad btyd.* values exit 2")

    with tempfile.TemporaryDirectory(prefix="cp-fit-") as tmp:
        bad = os.path.join(tmp, "bad.csv")
        with open(bad, "w") as f:
            f.write("customer_id,date,amount\nc1,1997-01-01,5\n"
                    "c1,1997-02-30,5\n")
        neg = os.path.join(tmp, "neg.txt")
        with open(neg, "w") as f:
            f.write(" 1 19970101 1 5.00\n 1 19970102 1 -5.00\n")
        errors = [
            (["fit", "--csv", bad], f"{bad}:3: date is not"),
            (["fit", "--csv", neg], f"{neg}:2: amount is not a number >= 0"),
            (["fit", "--csv", os.path.join(tmp, "none.csv")],
             "No such file or directory"),
            (["fit", "-X", f"redis.port={free_port()}"],
             "cannot connect to redis"),
            (["fit", "--csv", SAMPLE, "-X", f"redis.port={free_port()}"],
             "cannot connect to redis"),
        ]
        for args, msg in errors:
            res = run_bin(args)
            check_eq(res.returncode, 1, f"custpulse {args}: exit code")
            check(msg in res.stderr, f"custpulse {args}: stderr "
                  f"{res.stderr!r} lacks {msg!r}")
    say("errors: bad date line, negative amount, missing file, no Redis "
        "(Redis source; csv without --dry-run) -> exit 1 with the reason")


def check_password(st, csv_bg):
    """Last: requirepass on the stack's Redis."""
    r = st.redis()
    r.cmd("CONFIG", "SET", "requirepass", "s3cret")
    try:
        res = fit_cfg(st, "pw:").run(["fit", "--csv", SAMPLE, "--at",
                                      "1997-09-30"])
        check_eq(res.returncode, 1, "no password: exit code")
        rep = report(fit_cfg(st, "pw:", **{"redis.password": "s3cret",
                                           "redis.db": 2})
                     .run(["fit", "--csv", SAMPLE, "--at", "1997-09-30"]),
                     "csv written with a password")
        check_same_fit(rep, csv_bg, "csv written")
        r.cmd("AUTH", "s3cret")
        r.cmd("SELECT", 2)
        check_eq(r.hgetall("pw:btyd")["source"], "csv", "pw:btyd in db 2")
        check_eq(rep["written"], "pw:btyd version 1", "csv written line")
    finally:
        r.cmd("CONFIG", "SET", "requirepass", "")
    say("redis.password and redis.db honoured (csv source written to db 2)")


def main():
    tx = read_sample()
    check_eq(len(tx), 2357, "CDNOW sample customers")
    csv_bg = check_csv_sources(tx)
    check_usage()
    with Stack(kafka=False) as st:
        cp, hashes, first = check_redis_source(st, tx, csv_bg)
        worst = check_predictions(st, tx, hashes)
        check_time_zone(st, tx, first)
        check_hostile(st, cp, hashes, first)
        check_too_few(st)
        check_password(st, csv_bg)
    say("fit times reported by custpulse fit (this build):")
    for what, fit_ms, read_ms in fit_times:
        say(f"  {what:34s} fit_ms {fit_ms:6d}   read_ms {read_ms:5d}")
    say("largest relative difference, inspect vs closed forms:")
    for (model, dates), w in worst.items():
        say(f"  {model:6s} {dates:5s} " +
            "  ".join(f"{k} {v:.2g}" for k, v in w.items()))
    say(f"test_fit: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
