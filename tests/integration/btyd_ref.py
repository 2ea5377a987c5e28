"""btyd_ref.py - BTYD predictions from the published closed forms, for the
tests to compare custpulse against (docs/btyd.md has the same formulas).

Independent of scoring/btyd.c on purpose: the formulas are evaluated as
printed, without the library's Euler transformation, log-space tricks or
shared BG/MBG code path, and in decimal arithmetic with PREC significant
digits, so a difference of 1e-9 relative can only come from custpulse (the
reference itself is good to ~1e-35 for the arguments the tests use).

With A = alpha, z = t/(A+T+t):

- BG/NBD (Fader, Hardie & Lee 2005, "'Counting Your Customers' the Easy
  Way", Marketing Science 24(2); P(alive) as also in their note
  "Computing P(alive) Using the BG/NBD Model"):
    P(alive | x, t_x, T) = 1 / (1 + [x > 0] a/(b+x-1) ((A+T)/(A+t_x))^(r+x))
  and the conditional expectation, eq. (10),
    E[Y(t) | x, t_x, T] = (a+b+x-1)/(a-1) * P(alive)
        * [1 - ((A+T)/(A+T+t))^(r+x) 2F1(r+x, b+x; a+b+x-1; z)].
- MBG/NBD (Batislam, Denizel & Filiztekin 2007, IJRM 24(3); expectation
  as corrected by Wagner & Hoppe 2008, IJRM 25(3)): one more dropout
  opportunity, right after the first purchase,
    P(alive) = 1 / (1 + a/(b+x) ((A+T)/(A+t_x))^(r+x))
    E[Y(t)] = (a+b+x)/(a-1) * P(alive)
        * [1 - ((A+T)/(A+T+t))^(r+x) 2F1(r+x, b+x+1; a+b+x; z)].
- Gamma-Gamma (Fader, Hardie & Lee 2005, "RFM and CLV", JMR 42(4)):
    E[M | x, zbar] = p (v + x zbar) / (p x + q - 1).
- CLV as docs/btyd.md and scoring/btyd.h (cp_btyd_clv) define it:
    sum_{m=1..H} (E[Y(m L)] - E[Y((m-1) L)]) E[M] / (1+d)^m,
  L = 30.4375 days (365.25 / 12) in the fit's unit.

Python 3 standard library only (decimal); no scipy.
"""
from decimal import Decimal, localcontext

PREC = 60           # significant digits of every computation here
SERIES_TOL = 1e-45  # relative bound on the omitted tail of a series
MAX_TERMS = 200000
DAYS_PER_MONTH = Decimal("30.4375")


def dec(v):
    """The exact value of a float (or int, or decimal string) as Decimal."""
    return v if isinstance(v, Decimal) else Decimal(v)


def hyp2f1(a, b, c, z):
    """Gauss 2F1(a, b; c; z) by its power series, for a, b, c > 0 and
    0 <= z < 1 (all the terms positive). Returns (value, terms used).

    Stops on a bound of the whole remaining tail, not on one small term:
    after term t_n the next ratios are t_{m+1}/t_m = (a+m)(b+m)/((c+m)(m+1))
    z for m >= n, and since (a+m)/(c+m) and (b+m)/(m+1) move monotonically
    towards 1, each is at most max(1, its value at m = n); so with
    rho = z max(1, (a+n)/(c+n)) max(1, (b+n)/(n+1)) < 1 the tail is at most
    t_n rho / (1 - rho). Raises ArithmeticError if MAX_TERMS are not enough."""
    with localcontext() as ctx:
        ctx.prec = PREC
        a, b, c, z = dec(a), dec(b), dec(c), dec(z)
        if not (a > 0 and b > 0 and c > 0 and 0 <= z < 1):
            raise ValueError(f"hyp2f1({a}, {b}, {c}, {z}): outside the "
                             "positive-term domain of this series")
        one = Decimal(1)
        tol = dec(SERIES_TOL)
        term, total = one, one
        for n in range(MAX_TERMS):
            term *= (a + n) * (b + n) / ((c + n) * (n + 1)) * z
            total += term
            m = n + 1  # term is t_m; the next ratio uses m
            rho = z * max(one, (a + m) / (c + m)) * max(one, (b + m) / (m + 1))
            if rho < 1 and term * rho / (1 - rho) <= tol * total:
                return +total, m
        raise ArithmeticError(f"hyp2f1({a}, {b}, {c}, {z}): no convergence "
                              f"in {MAX_TERMS} terms")


def _par(par):
    return {k: dec(par[k]) for k in ("r", "alpha", "a", "b")}


def p_alive(model, par, x, t_x, T):
    """P(alive | x, t_x, T) under "bgnbd" or "mbgnbd" (module comment)."""
    with localcontext() as ctx:
        ctx.prec = PREC
        P = _par(par)
        x, t_x, T = dec(x), dec(t_x), dec(T)
        if model == "bgnbd":
            if x == 0:
                return Decimal(1)
            odds = P["a"] / (P["b"] + x - 1)
        elif model == "mbgnbd":
            odds = P["a"] / (P["b"] + x)
        else:
            raise ValueError(model)
        ratio = ((P["alpha"] + T) / (P["alpha"] + t_x)) ** (P["r"] + x)
        return 1 / (1 + odds * ratio)


def expected(model, par, x, t_x, T, t):
    """E[Y(t) | x, t_x, T], purchases expected in (T, T + t] (module
    comment); t in the unit of par's alpha."""
    with localcontext() as ctx:
        ctx.prec = PREC
        P = _par(par)
        r, alpha, a, b = P["r"], P["alpha"], P["a"], P["b"]
        x, T, t = dec(x), dec(T), dec(t)
        if t == 0:
            return Decimal(0)
        if model == "bgnbd":
            lead = (a + b + x - 1) / (a - 1)
            f, _ = hyp2f1(r + x, b + x, a + b + x - 1, t / (alpha + T + t))
        elif model == "mbgnbd":
            lead = (a + b + x) / (a - 1)
            f, _ = hyp2f1(r + x, b + x + 1, a + b + x, t / (alpha + T + t))
        else:
            raise ValueError(model)
        bracket = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * f
        return lead * bracket * p_alive(model, par, x, t_x, T)


def gg_expected_value(gg, x, zbar):
    """E[M | x, zbar] = p (v + x zbar) / (p x + q - 1)."""
    with localcontext() as ctx:
        ctx.prec = PREC
        p, q, v = dec(gg["p"]), dec(gg["q"]), dec(gg["v"])
        x, zbar = dec(x), dec(zbar)
        return p * (v + x * zbar) / (p * x + q - 1)


def clv(model, par, gg, x, t_x, T, zbar, horizon_months, monthly_discount,
        unit_days):
    """Discounted CLV (module comment); unit_days = 7 for weeks, 1 for
    days."""
    with localcontext() as ctx:
        ctx.prec = PREC
        month = DAYS_PER_MONTH / dec(unit_days)
        d = dec(monthly_discount)
        prev, total = Decimal(0), Decimal(0)
        for m in range(1, horizon_months + 1):
            e = expected(model, par, x, t_x, T, m * month)
            total += (e - prev) / (1 + d) ** m
            prev = e
        return total * gg_expected_value(gg, x, zbar)


def rel_diff(got, want):
    """|got - want| / |want| as a float (0 when both are 0)."""
    with localcontext() as ctx:
        ctx.prec = PREC
        got, want = dec(got), dec(want)
        if want == 0:
            return 0.0 if got == 0 else float("inf")
        return float(abs(got - want) / abs(want))
