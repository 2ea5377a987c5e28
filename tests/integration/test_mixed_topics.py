"""The whole customer model over all four input topics (docs/contracts.md
sections 1, 1b, 2 and 4; docs/models.md; docs/segments.md).

customer.orders (3 partitions), customer.browsing, customer.support and
customer.profile (2 each) on the harness's real Kafka and Redis; every
record keyed by its customer id and sent to the partition Kafka's default
partitioner gives that key, so each customer's events of one topic stay in
one partition. clock = event, rfm.reference = fixed (90 days, 2 orders,
100.00), value.high_score = 0.5 (no BTYD parameters: the predicted part is
0, so the default 0.6 is out of reach) and two custom segments:

    segment.de_vip.rule  = profile.country == "DE" and rfm.m >= 100.00
    segment.unhappy.rule = satisfaction == "at_risk" or
                           satisfaction.complaints >= 1

Hand-written events for five customers over ~400 days ending two days
before today (so `inspect` at the wall clock sees a recent customer):

  mx-anna  profile (DE, strategic) -> browsing (engagement low, medium)
           -> orders (prospect -> new, low_value -> high_value, de_vip in)
           -> more browsing (high) -> active -> loyal -> is_strategic false
           (low_value) -> country removed (de_vip out) -> a cancellation
           (active) -> browsing at day 250 (churned, churn_risk) -> a
           support ticket (engagement dormant, satisfaction neutral) ->
           an order at day 395 (won_back) -> country DE again (de_vip in)
           -> browsing (low, medium) -> the ticket resolved;
  mx-bob   one order -> a ticket 148 days later (at_risk, churn_risk,
           important_retain) -> browsing at day 250 (churned) -> an order
           (won_back) -> the ticket resolved 40 days later (active);
  mx-carl  tickets only (prospect): neutral -> at_risk (3 open, unhappy
           in) -> resolved -> CSAT 5 (satisfied) -> complaints (unhappy in,
           at_risk) -> decayed (neutral, unhappy out) -> a late CSAT that
           must not replace the latest -> NPS detractor (at_risk) -> NPS
           promoter (satisfied);
  mx-dora  profile FR -> DE with city removed (null) -> an order (de_vip
           in) -> its cancellation (no segment, prospect, no tier, out);
  mx-eric  browsing only: low -> medium -> high -> low (70 days later) ->
           a late event (older than the score's reference) -> dormant.

Also one upstream duplicate per family (and an order.placed of a known
order id under a new event id), and invalid events per family - orders
currency_mismatch, browsing missing_field and unknown_event_type (an
order type on the browsing topic), support invalid_field (CSAT 6),
profile invalid_field (country "de") and invalid_field_type (an object).

Why phases: with clock = event "now" is the greatest event time the
process has polled, and events of different partitions interleave
nondeterministically. So the events go in in 16 phases, each followed by
`custpulse run --exit-at-end` (same group: each run takes only the new
records, with a fresh clock): a phase writes either to one partition of
one topic (any times: the process polls that partition in order), or to
several partitions with every valid event at one instant (then "now" is
that instant whatever the interleaving); within a phase a customer writes
to one partition only, so each customer's events apply in a known order.
cpmodel replays the phases in the same order, restarting the clock at each.

Checked after every phase: every customer hash equals cpmodel's (every
layout-2 field: lv o m q n f l b s sl se ss sv sc yw g gc k a:* w:*; only
v, e, r besides; no outbox) and the run's applied/duplicates/dlq counters.
At the end: the exact CloudEvents per customer in seq order (all models:
rfm8, lifecycle, engagement, satisfaction, value, custom:de_vip,
custom:unhappy), key, header and partition; every DLQ record with its
class, byte-identical key and value, source topic/partition/offset; the
committed offsets of the four topics = their end offsets; and `custpulse
inspect mx-anna`: state, layout, events, profile and the models section
(evaluated at its own evaluated_at: lifecycle stage, engagement level and
score within 1e-9, satisfaction, value tier and figures, custom
membership) equal cpmodel's.
"""
import collections
import datetime
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cpmodel  # noqa: E402

try:
    import jsonschema
except ImportError:  # an interpreter beside Debian's: use its package
    sys.path.append("/usr/lib/python3/dist-packages")
    import jsonschema  # noqa: E402  (Debian python3-jsonschema)
from cpcheck import stopped_line  # noqa: E402
from harness import Custpulse, Stack, config, topic_name  # noqa: E402
from itest_util import (DLQ_TOPIC, SEGMENTS_TOPIC, Timer,  # noqa: E402
                        check, check_customer_states, check_eq,
                        check_inspect, check_output_records, checks_made,
                        customer_hashes, kafka_partition, say)

ORDERS = topic_name("customer.orders")
BROWSING = topic_name("customer.browsing")
SUPPORT = topic_name("customer.support")
PROFILE = topic_name("customer.profile")
PARTITIONS = {ORDERS: 3, BROWSING: 2, SUPPORT: 2, PROFILE: 2}
OUTPUT_PARTITIONS = 3  # topic.partitions default
REF = cpmodel.Fixed(recency_days=90, frequency=2, monetary="100.00")
PARAMS = cpmodel.Params({"value.high_score": "0.5"}, segments=[
    cpmodel.Segment(
        "de_vip", 'profile.country == "DE" and rfm.m >= 100.00',
        lambda f: f["profile.country"] == "DE" and f["rfm.m"] >= 100.00),
    cpmodel.Segment(
        "unhappy",
        'satisfaction == "at_risk" or satisfaction.complaints >= 1',
        lambda f: (f["satisfaction"] == "at_risk"
                   or f["satisfaction.complaints"] >= 1)),
])
ANNA, BOB, CARL, DORA, ERIC = ("mx-anna", "mx-bob", "mx-carl", "mx-dora",
                               "mx-eric")
TODAY = datetime.datetime.now(datetime.timezone.utc).replace(
    hour=0, minute=0, second=0, microsecond=0)
BASE = TODAY - datetime.timedelta(days=400)


def at(day, hh=12, mm=0, ss=0, ms=0, tz="Z"):
    """RFC 3339 time `day` days after BASE (at hh:mm:ss.ms UTC), written
    in zone tz ("Z" or "+hh:mm"/"-hh:mm": the same instant)."""
    t = BASE + datetime.timedelta(days=day, hours=hh, minutes=mm,
                                  seconds=ss, milliseconds=ms)
    frac = ".%03d" % ms if ms else ""
    if tz == "Z":
        return t.strftime("%Y-%m-%dT%H:%M:%S") + frac + "Z"
    sign = 1 if tz[0] == "+" else -1
    off = datetime.timedelta(hours=int(tz[1:3]), minutes=int(tz[4:6]))
    return (t + sign * off).strftime("%Y-%m-%dT%H:%M:%S") + frac + tz


# ---------------------------------------------------------------------------
# Events
# ---------------------------------------------------------------------------

class Item:
    """One record to produce: topic, key, value (a dict sent as JSON, or
    raw bytes) and, for an invalid one, the DLQ class it must get."""

    def __init__(self, topic, key, value, dlq=None):
        self.topic, self.key, self.value, self.dlq = topic, key, value, dlq
        self.partition = kafka_partition(key.encode(), PARTITIONS[topic])
        self.offset = None  # set when produced

    @property
    def bytes(self):
        if isinstance(self.value, bytes):
            return self.value
        return json.dumps(self.value, ensure_ascii=False).encode()


def env(eid, typ, cid, when, **fields):
    return dict({"event_id": eid, "type": typ, "customer_id": cid,
                 "occurred_at": when}, **fields)


def order(eid, typ, cid, when, oid, amount, currency="USD"):
    return Item(ORDERS, cid, env(eid, "order." + typ, cid, when,
                                 order_id=oid, amount=amount,
                                 currency=currency))


def browse(eid, typ, cid, when, **fields):
    return Item(BROWSING, cid, env(eid, typ, cid, when, **fields))


def support(eid, typ, cid, when, **fields):
    return Item(SUPPORT, cid, env(eid, typ, cid, when, **fields))


def profile(eid, cid, when, **attributes):
    return Item(PROFILE, cid, env(eid, "profile.updated", cid, when,
                                  attributes=attributes))


def invalid(item, cls):
    item.dlq = cls
    return item


def dup(item):
    """The same record again (an upstream duplicate: same event id)."""
    return Item(item.topic, item.key, item.value)


def phases():
    """[(name, [Item])] in production order; see the module docstring."""
    P = []
    # -- 1. profile, partition of anna and dora ---------------------------
    a_profile = profile("a-p1", ANNA, at(0, 9), country="DE", plan="gold",
                        tags=["vip", "newsletter"], birth_year=1990,
                        signup_at="2019-05-04T10:00:00.250+02:00",
                        is_strategic=True, loyalty_points=1.5,
                        newsletter_opt_in=True)
    d_profile2 = profile("d-p2", DORA, at(19, 8), country="DE", city=None)
    P.append(("profile: anna and dora sign up", [
        a_profile,
        profile("d-p1", DORA, at(0, 9, 30, tz="+02:00"), country="FR",
                city="Paris"),
        invalid(profile("d-bad1", DORA, at(0, 10), country="de"),
                "invalid_field"),
        invalid(profile("d-bad2", DORA, at(0, 10), custom={"a": 1}),
                "invalid_field_type"),
        d_profile2,
    ]))
    # -- 2. browsing, anna ------------------------------------------------
    a_view = browse("a-b3", "product.viewed", ANNA, at(1, 10, 2),
                    product_id="p-7", session_id="s-1")
    P.append(("browsing: anna's first session", [
        browse("a-b1", "session.started", ANNA, at(1, 10), session_id="s-1",
               channel="web"),
        browse("a-b2", "page.viewed", ANNA, at(1, 10, 1),
               url="https://shop.example/", session_id="s-1"),
        a_view,
        dup(a_view),
        invalid(browse("a-bad1", "cart.item_added", ANNA, at(1, 10, 4)),
                "missing_field"),
        invalid(browse("a-bad2", "order.placed", ANNA, at(1, 10, 4),
                       session_id="s-1"), "unknown_event_type"),
        browse("a-b4", "cart.item_added", ANNA, at(1, 10, 5),
               product_id="p-7", value="19.90", currency="USD",
               session_id="s-1"),
    ]))
    # -- 3. orders, two partitions at one instant -------------------------
    P.append(("orders: anna's and bob's first orders (one instant)", [
        order("a-o1", "placed", ANNA, at(2, 10), "a-1", "80.00"),
        order("b-o1", "placed", BOB, at(2, 10), "b-1", "120.00"),
    ]))
    # -- 4. orders, anna --------------------------------------------------
    a_o2 = order("a-o2", "placed", ANNA, at(3, 10), "a-2", 250)
    P.append(("orders: anna's second day", [
        a_o2,
        order("a-o3", "placed", ANNA, at(3, 11), "a-3", "20.00"),
        # a known order id under a new event id: not counted again
        order("a-o4", "placed", ANNA, at(3, 11, 30), "a-2", "250.00"),
        invalid(order("a-bad3", "placed", ANNA, at(3, 12), "a-9", "5.00",
                      currency="EUR"), "currency_mismatch"),
    ]))
    # -- 5. support, carl's and bob's partition -----------------------------
    c_t2 = support("c-s2", "ticket.opened", CARL, at(5, 10, 10),
                   ticket_id="t-2")
    b_s1 = support("b-s1", "ticket.opened", BOB, at(150, 9), ticket_id="t-b1")
    P.append(("support: carl's tickets, surveys, complaints; bob's ticket", [
        support("c-s1", "ticket.opened", CARL, at(5, 10), ticket_id="t-1"),
        c_t2,
        support("c-s3", "ticket.opened", CARL, at(5, 10, 20),
                ticket_id="t-3"),
        dup(c_t2),
        invalid(support("b-bad4", "survey.answered", BOB, at(5, 11),
                        survey="csat", score=6), "invalid_field"),
        support("c-s4", "ticket.resolved", CARL, at(6, 9), ticket_id="t-1",
                resolution_minutes=30),
        support("c-s5", "ticket.resolved", CARL, at(6, 9, 30),
                ticket_id="t-2", resolution_minutes=45.5),
        support("c-s6", "ticket.resolved", CARL, at(6, 10), ticket_id="t-3",
                resolution_minutes=120),
        support("c-s7", "survey.answered", CARL, at(7, 12), survey="csat",
                score=5),
        support("c-s8", "complaint.filed", CARL, at(8, 12)),
        support("c-s9", "complaint.filed", CARL, at(8, 13), ticket_id="t-3"),
        support("c-s10", "complaint.filed", CARL, at(8, 14)),
        support("c-s11", "survey.answered", CARL, at(40, 12), survey="nps",
                score=10),
        support("c-s12", "survey.answered", CARL, at(60, 12), survey="csat",
                score=4),
        # late: older than the latest CSAT, so it must not replace it
        support("c-s13", "survey.answered", CARL, at(6, 12), survey="csat",
                score=1),
        support("c-s14", "survey.answered", CARL, at(100, 12), survey="nps",
                score=3),
        support("c-s15", "survey.answered", CARL, at(130, 12), survey="nps",
                score=9),
        b_s1,
        dup(b_s1),
    ]))
    # -- 6. browsing, anna's and eric's partition ----------------------------
    P.append(("browsing: anna's and eric's sessions", [
        browse("a-b5", "session.started", ANNA, at(10, 9), session_id="s-2"),
        *[browse(f"a-b6{i}", "cart.item_added", ANNA, at(10, 9, 1 + i),
                 product_id=f"p-{i}", session_id="s-2") for i in range(5)],
        browse("a-b7", "search.performed", ANNA, at(10, 9, 8),
               query="red shoes"),
        browse("a-b8", "product.viewed", ANNA, at(10, 9, 9),
               product_id="p-9"),
        browse("e-b1", "session.started", ERIC, at(10, 10),
               session_id="s-e1"),
        *[browse(f"e-b2{i}", "cart.item_added", ERIC, at(10, 10, 1 + i),
                 product_id=f"p-{i}", value=10 + i, currency="USD")
          for i in range(7)],
        browse("a-b9", "page.viewed", ANNA, at(35, 12),
               url="https://shop.example/sale"),
        browse("e-b3", "page.viewed", ERIC, at(80, 12),
               url="https://shop.example/"),
        # late: older than eric's score reference (day 80)
        browse("e-b4", "product.viewed", ERIC, at(9, 12), product_id="p-1"),
        browse("e-b5", "cart.abandoned", ERIC, at(81, 12), value="42.00",
               currency="USD"),
        browse("e-b6", "page.viewed", ERIC, at(200, 12),
               url="https://shop.example/"),
    ]))
    # -- 7. orders, anna --------------------------------------------------
    P.append(("orders: anna's fourth order (loyal)", [
        order("a-o5", "placed", ANNA, at(40, 10), "a-4", "60.00"),
    ]))
    # -- 8. profile, anna and dora --------------------------------------------
    a_p2 = profile("a-p2", ANNA, at(45, 10), is_strategic=False)
    P.append(("profile: anna not strategic, country removed; duplicates", [
        a_p2,
        dup(a_p2),
        profile("a-p3", ANNA, at(46, 10), country=None),
        dup(d_profile2),
    ]))
    # -- 9. orders, anna --------------------------------------------------
    P.append(("orders: anna cancels her fourth order", [
        order("a-o6", "cancelled", ANNA, at(47, 10), "a-4", "60.00"),
        dup(a_o2),
    ]))
    # -- 10. browsing, two partitions at one instant ------------------------
    P.append(("browsing: anna and bob at day 250 (one instant)", [
        browse("a-b10", "session.started", ANNA, at(250, 10),
               session_id="s-3"),
        browse("b-b1", "session.started", BOB, at(250, 10), session_id="s-b"),
    ]))
    # -- 11. orders, dora's and bob's partition -------------------------------
    P.append(("orders: dora's order and cancellation; bob comes back", [
        order("d-o1", "placed", DORA, at(20, 10), "d-1", "150.00"),
        order("d-o2", "cancelled", DORA, at(22, 10), "d-1", "150.00"),
        order("b-o2", "placed", BOB, at(260, 10), "b-2", "30.00"),
    ]))
    # -- 12. support, two partitions at one instant -------------------------
    P.append(("support: anna's ticket, bob's resolved (one instant)", [
        support("a-s1", "ticket.opened", ANNA, at(300, 10), ticket_id="t-a"),
        support("b-s2", "ticket.resolved", BOB, at(300, 10),
                ticket_id="t-b1", resolution_minutes=600),
    ]))
    # -- 13.-16. anna comes back ------------------------------------------
    P.append(("orders: anna comes back", [
        order("a-o7", "placed", ANNA, at(395, 10), "a-5", "40.00"),
    ]))
    P.append(("profile: anna in DE again", [
        profile("a-p4", ANNA, at(396, 10), country="DE"),
    ]))
    P.append(("browsing: anna browses again", [
        browse("a-b11", "session.started", ANNA, at(397, 10),
               session_id="s-4"),
        browse("a-b12", "cart.item_added", ANNA, at(397, 10, 1),
               product_id="p-1"),
        browse("a-b13", "cart.item_added", ANNA, at(397, 10, 2),
               product_id="p-2"),
    ]))
    P.append(("support: anna's ticket resolved", [
        support("a-s2", "ticket.resolved", ANNA, at(398, 10),
                ticket_id="t-a", resolution_minutes=42.5),
    ]))
    return P


def check_phase_rules(name, items):
    """Valid events of a phase on several partitions share one instant;
    a customer uses one (topic, partition) per phase."""
    valid = [it for it in items if it.dlq is None]
    parts = {(it.topic, it.partition) for it in valid}
    if len(parts) > 1:
        times = {cpmodel.parse_time_ms(it.value["occurred_at"])
                 for it in valid}
        check_eq(len(times), 1, f"phase {name!r}: instants of a phase on "
                 f"{len(parts)} partitions")
    where = collections.defaultdict(set)
    for it in valid:
        where[it.key].add((it.topic, it.partition))
    check(all(len(w) == 1 for w in where.values()),
          f"phase {name!r}: a customer on several partitions: {dict(where)}")


# ---------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------

def model_records(items):
    return [{"value": it.value, "topic": it.topic, "partition": it.partition,
             "offset": it.offset} for it in items if it.dlq is None]


def transitions(outputs):
    """{model: {(from, to), ...}} of CloudEvents."""
    out = collections.defaultdict(set)
    for o in outputs:
        d = o["data"]
        out[d["model"]].add((d["from"], d["to"]))
    return out


def check_story(customers, outputs):
    """The hand-written events must do what the docstring says (a broken
    list would make the test pass on little)."""
    per = {cid: transitions([o for o in outputs if o["subject"] == cid])
           for cid in customers}
    a, b, c, d, e = (per[x] for x in (ANNA, BOB, CARL, DORA, ERIC))
    want_a = {
        "lifecycle": {(None, "prospect"), ("prospect", "new"),
                      ("new", "active"), ("active", "loyal"),
                      ("loyal", "active"), ("active", "churned"),
                      ("churned", "won_back")},
        "engagement": {(None, "low"), ("low", "medium"),
                       ("medium", "high"), ("high", "medium"),
                       ("medium", "low"), ("low", "dormant"),
                       ("dormant", "low")},
        "value": {(None, "low_value"), ("low_value", "high_value"),
                  ("high_value", "low_value"), ("low_value", "churn_risk"),
                  ("churn_risk", "low_value")},
        "satisfaction": {(None, "neutral")},
        "custom:de_vip": {("out", "in"), ("in", "out")},
    }
    for m, w in want_a.items():
        check_eq(a[m], w, f"model: anna's {m} transitions")
    check_eq(b["lifecycle"], {(None, "new"), ("new", "at_risk"),
                              ("at_risk", "churned"),
                              ("churned", "won_back"),
                              ("won_back", "active")},
             "model: bob's lifecycle transitions")
    check_eq(b["value"], {(None, "low_value"), ("low_value", "churn_risk"),
                          ("churn_risk", "low_value")},
             "model: bob's value transitions")
    check_eq(c["satisfaction"], {(None, "neutral"), ("neutral", "at_risk"),
                                 ("at_risk", "neutral"),
                                 ("neutral", "satisfied"),
                                 ("satisfied", "neutral"),
                                 ("at_risk", "satisfied")},
             "model: carl's satisfaction transitions")
    check_eq(c["custom:unhappy"], {("out", "in"), ("in", "out")},
             "model: carl's unhappy transitions")
    check_eq(c["lifecycle"], {(None, "prospect")}, "model: carl's lifecycle")
    check_eq(d["custom:de_vip"], {("out", "in"), ("in", "out")},
             "model: dora's de_vip transitions")
    check_eq(d["value"], {(None, "low_value"), ("low_value", None)},
             "model: dora's value transitions")
    check_eq(d["rfm8"], {(None, "important_develop"),
                         ("important_develop", None)},
             "model: dora's rfm8 transitions")
    check_eq(e["engagement"], {(None, "low"), ("low", "medium"),
                               ("medium", "high"), ("high", "low"),
                               ("low", "dormant")},
             "model: eric's engagement transitions")
    ca, cc, cd = customers[ANNA], customers[CARL], customers[DORA]
    check_eq((ca.won_back_day, customers[BOB].won_back_day,
              ca.repeat_days, ca.attrs.get("is_strategic"),
              ca.attrs.get("country")),
             (cpmodel.utc_day(cpmodel.parse_time_ms(at(395))),
              cpmodel.utc_day(cpmodel.parse_time_ms(at(260))), 2, "false",
              "DE"), "model: anna's yw, b, strategic, country; bob's yw")
    check_eq((cc.support.csat_last, cc.support.csat_n,
              cc.support.nps_last), (4, 3, 9),
             "model: carl's latest CSAT (not the late one), CSATs, NPS")
    check_eq(("city" in cd.attrs, cd.attrs.get("country"), cd.orders),
             (False, "DE", 0), "model: dora's city removed, country, orders")
    say("model: " + "; ".join(
        f"{cid} " + ", ".join(f"{m} {len(t)}" for m, t in sorted(tr.items()))
        for cid, tr in per.items()) + " transitions")


# ---------------------------------------------------------------------------
# Checks against custpulse
# ---------------------------------------------------------------------------

def check_dlq(rows, bad):
    """One DLQ record per invalid item, with its class, byte-identical key
    and value and its source headers."""
    want = {(it.topic, it.partition, it.offset): it for it in bad}
    got = {}
    for r in rows:
        h = {k: (v or b"").decode() for k, v in r["headers"]}
        src = (h.get("cp.source.topic"), int(h.get("cp.source.partition")),
               int(h.get("cp.source.offset")))
        check(src not in got, f"DLQ: {src} twice")
        got[src] = (r, h)
    check_eq(sorted(got), sorted(want), "DLQ sources")
    for src, it in want.items():
        r, h = got[src]
        check_eq((r["key"], r["value"]), (it.key.encode(), it.bytes),
                 f"DLQ record of {src}: key and value")
        check_eq(h.get("cp.error.class"), it.dlq, f"DLQ class of {src}")
        check(h.get("cp.error.message", "").strip() != "",
              f"DLQ record of {src}: empty message")
        say(f"  DLQ {src[0]}/{src[1]}@{src[2]}: {it.dlq} "
            f"({h['cp.error.message'][:60]})")


SCHEMA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)),
                          "..", "..", "schemas")
INPUT_SCHEMAS = {"orders": "order-event", "browsing": "browsing-event",
                 "support": "support-event", "profile": "profile-event"}


def _validator(name):
    with open(os.path.join(SCHEMA_DIR, name + ".schema.json")) as f:
        schema = json.load(f)
    cls = jsonschema.validators.validator_for(schema)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def check_schemas(rows, plan):
    """Every output record validates against schemas/segment-change; every
    valid input record against its topic's schema, and every record the
    DLQ got is refused by it (or is not JSON) - the schemas say what the
    decoder does."""
    out = _validator("segment-change")
    for r in rows:
        errs = [e.message for e in out.iter_errors(json.loads(r["value"]))]
        check(not errs, f"output {r['partition']}/{r['offset']} against "
              f"segment-change.schema.json: {errs[:3]}")
    vals = {kind: _validator(name) for kind, name in INPUT_SCHEMAS.items()}
    n_in = n_bad = 0
    for _, items in plan:
        for it in items:
            kind = {ORDERS: "orders", BROWSING: "browsing",
                    SUPPORT: "support", PROFILE: "profile"}[it.topic]
            try:
                doc = json.loads(it.bytes)
            except ValueError:
                doc = None
            ok = doc is not None and vals[kind].is_valid(doc)
            if it.dlq:
                n_bad += 1
                if it.dlq in ("invalid_json", "missing_key", "key_mismatch",
                              "oversize", "currency_mismatch"):
                    continue  # not a property of the JSON document alone
                check(not ok, f"{it.topic} record refused by custpulse "
                      f"({it.dlq}) validates against {kind} schema")
            else:
                n_in += 1
                check(ok, f"{it.topic} record applied by custpulse fails the "
                      f"{kind} schema: "
                      f"{[e.message for e in vals[kind].iter_errors(doc)][:3]}")
    say(f"schemas: {len(rows)} outputs valid; {n_in} valid inputs valid, "
        f"{n_bad} refused inputs refused (where the document decides)")


def main():
    plan = phases()
    for name, items in plan:
        check_phase_rules(name, items)
    cfg_extra = dict(REF.config(), **PARAMS.config(), **{
        "clock": "event", "topic.orders": ORDERS, "topic.browsing": BROWSING,
        "topic.support": SUPPORT, "topic.profile": PROFILE})
    with Stack() as st:
        for topic, n in PARTITIONS.items():
            st.create_topic(topic, partitions=n)
        cfg = config(st, **cfg_extra)
        cp = Custpulse(st, cfg)
        r = st.redis()
        customers, outputs = {}, []
        ends = collections.Counter()
        bad = []
        t_runs = 0.0
        for i, (name, items) in enumerate(plan, 1):
            # One producer call per topic; a partition keeps the list's
            # order, so the offsets are known before producing.
            for it in items:
                it.offset = ends[(it.topic, it.partition)]
                ends[(it.topic, it.partition)] += 1
            for topic in dict.fromkeys(it.topic for it in items):
                st.produce(topic, [{"key": it.key, "value": it.bytes,
                                    "partition": it.partition}
                                   for it in items if it.topic == topic])
            bad += [it for it in items if it.dlq]
            recs = model_records(items)
            before = sum(c.events for c in customers.values())
            _, new = cpmodel.replay(recs, REF, params=PARAMS,
                                    customers=customers, clock=0)
            outputs += new
            applied = sum(c.events for c in customers.values()) - before
            with Timer() as t:
                res = cp.run(["run", "--exit-at-end"], timeout=120)
            t_runs += t.s
            check_eq(res.returncode, 0, f"phase {i}: custpulse exit code "
                     f"({res.stderr[-2000:]})")
            counters = stopped_line(cp)
            check_eq({k: counters.get(k) for k in
                      ("events", "applied", "duplicates", "dlq")},
                     {"events": len(recs), "applied": applied,
                      "duplicates": len(recs) - applied,
                      "dlq": len(items) - len(recs)},
                     f"phase {i}: counters of the 'stopped' line")
            check_customer_states(customer_hashes(r), customers)
            say(f"phase {i:2} {name}: {len(items)} records, "
                f"{applied} applied, {len(recs) - applied} duplicates, "
                f"{len(items) - len(recs)} DLQ, {len(new)} CloudEvents; run "
                f"{t.s:.1f}s; {len(customers)} hashes = cpmodel")
        check_story(customers, outputs)

        rows = st.consume(SEGMENTS_TOPIC)
        check_output_records(rows, outputs, OUTPUT_PARTITIONS)
        check_schemas(rows, plan)
        per_model = collections.Counter(o["data"]["model"] for o in outputs)
        say(f"output: {len(rows)} CloudEvents equal cpmodel's (per customer "
            f"in seq order; key, header, partition): "
            + ", ".join(f"{m} {n}" for m, n in sorted(per_model.items())))
        for o in outputs:
            if o["subject"] != ANNA:
                continue
            d = o["data"]
            figs = ({k: d[k] for k in ("recency_days", "frequency",
                                       "monetary")}
                    if d["model"] == "rfm8" else d["scores"])
            say(f"  {ANNA} seq {d['seq']:2} {d['model']}: {d['from']} -> "
                f"{d['to']} {json.dumps(figs, separators=(',', ':'))} "
                f"(cause {d['cause']['topic']} {d['cause']['event_id']})")

        check_dlq(st.consume(DLQ_TOPIC), bad)
        say(f"DLQ: {len(bad)} records, classes "
            f"{sorted({it.dlq for it in bad})}")
        produced = {(it.topic, it.partition, it.offset): it
                    for _, items in plan for it in items}
        for topic, n in PARTITIONS.items():
            rows = st.consume(topic)
            check_eq([(r["partition"], r["offset"], r["key"], r["value"])
                      for r in rows],
                     sorted((p, o, it.key.encode(), it.bytes)
                            for (t, p, o), it in produced.items()
                            if t == topic),
                     f"records of {topic} (the offsets the model used)")
            committed = st.committed(cfg["kafka.group.id"], topic)
            check_eq({p: committed.get(p) or 0 for p in range(n)},
                     {p: ends[(topic, p)] for p in range(n)},
                     f"committed offsets of {topic}")
        say("committed offsets = end offsets: " + ", ".join(
            f"{t}/{p} {o}" for (t, p), o in sorted(ends.items())))

        hashes = customer_hashes(r)
        for cid in sorted(customers):
            h = hashes[cid]
            say(f"  {cid}: " + " ".join(
                f"{f}={h[f]}" for f in cpmodel.STATE_FIELDS if f in h)
                + " " + " ".join(f"{f}={v}" for f, v in sorted(h.items())
                                 if f.startswith("a:")))
        res = cp.run(["inspect", ANNA], timeout=30)
        check_eq(res.returncode, 0, f"inspect exit code ({res.stderr})")
        got = json.loads(res.stdout)
        m = check_inspect(got, customers[ANNA], hashes[ANNA]["v"])
        say(f"inspect {ANNA} at {m['evaluated_at']}: lifecycle "
            f"{m['lifecycle']['stage']} (won back on day "
            f"{m['lifecycle']['won_back_day']}), engagement "
            f"{m['engagement']['level']} {m['engagement']['score']:.9f}, "
            f"satisfaction {m['satisfaction']['level']}, value "
            f"{m['value']['tier']} {m['value']['score']:.6f}, custom "
            f"{m['custom']}, profile {got['profile']}")
        r.close()
        say(f"custpulse runs: {len(plan)} phases in {t_runs:.1f}s")
    say(f"test_mixed_topics: passed ({checks_made()} checks)")


if __name__ == "__main__":
    main()
