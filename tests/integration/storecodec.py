"""storecodec.py - the customer hash's de-duplication memories, written
from docs/contracts.md section 2 (not from consumer/store.c), so that a
test comparing them with cpmodel also checks the document's description.

Layout 3 (binary):
  e  8 bytes little-endian per event-id hash, oldest first;
  r  per remembered order, oldest first: the order id's hash (8 bytes
     little-endian), LEB128 net, LEB128 tag = d * 2 + cancelled, where d =
     0 for an unknown day and otherwise zigzag(day - previous known day)
     + 1 (the previous known day is 0 before the first).
Layouts 1 and 2 (text):
  e  16 lower-case hex digits per hash;
  r  "<16 hex>:<net>[:<day>][:c]" joined by ",".
Hashes are FNV-1a 64 of the id's UTF-8 bytes.

Layout 4 adds w, the partition watermarks: per watermark the topic id
(FNV-1a 32 of the topic name, 4 bytes little-endian), LEB128 partition,
LEB128 offset (layout 3 and before: a field w:<topic>:<partition> each).
Tests see w through expand_w: one field w:#<topic id, 8 hex>:<partition>
per watermark (w_field), so a comparison with cpmodel does not depend
on the order custpulse met the partitions in.

Python 3 standard library only.
"""
import struct

FNV_OFFSET = 0xcbf29ce484222325
FNV_PRIME = 0x100000001b3
DEDUP_MAX = 128          # CP_DEDUP_MAX
DAY_MAX = 1 << 40        # CP_STORE_DAY_MAX


def fnv1a64(s):
    h = FNV_OFFSET
    for b in s.encode("utf-8") if isinstance(s, str) else s:
        h = ((h ^ b) * FNV_PRIME) & 0xffffffffffffffff
    return h


def fnv1a32(s):
    h = 0x811c9dc5
    for b in s.encode("utf-8") if isinstance(s, str) else s:
        h = ((h ^ b) * 0x01000193) & 0xffffffff
    return h


def w_field(topic, partition):
    """The field expand_w gives the watermark of (topic, partition)."""
    return "w:#%08x:%d" % (fnv1a32(topic), partition)


def uvarint(x):
    out = bytearray()
    while x >= 0x80:
        out.append(x & 0x7f | 0x80)
        x >>= 7
    out.append(x)
    return bytes(out)


def read_uvarint(b, i):
    """(value, next index); ValueError for a truncated, overlong (a final
    zero byte after the first) or >= 2^64 value."""
    x = 0
    for k in range(10):
        if i + k >= len(b):
            break
        c = b[i + k]
        if k == 9 and c > 1:
            raise ValueError("varint above 2^64 - 1")
        x |= (c & 0x7f) << (7 * k)
        if not c & 0x80:
            if c == 0 and k > 0:
                raise ValueError("overlong varint")
            return x, i + k + 1
    raise ValueError("truncated varint")


def zigzag(d):
    return d * 2 if d >= 0 else -d * 2 - 1


def unzigzag(z):
    return -(z >> 1) - 1 if z & 1 else z >> 1


def encode_e(hashes):
    return b"".join(struct.pack("<Q", h) for h in hashes)


def decode_e(b):
    if len(b) % 8 or len(b) // 8 > DEDUP_MAX:
        raise ValueError(f"e of {len(b)} bytes")
    return [struct.unpack_from("<Q", b, i)[0] for i in range(0, len(b), 8)]


def encode_r(entries):
    """entries: [(id hash, net, cancelled, day or None)] oldest first."""
    out, prev = bytearray(), 0
    for h, net, cancelled, day in entries:
        d = 0
        if day is not None:
            d, prev = zigzag(day - prev) + 1, day
        out += struct.pack("<Q", h) + uvarint(net) + \
            uvarint(d * 2 + (1 if cancelled else 0))
    return bytes(out)


def decode_r(b):
    out, prev, i = [], 0, 0
    while i < len(b):
        if len(out) == DEDUP_MAX or len(b) - i < 10:
            raise ValueError("r: too many entries or a truncated one")
        h = struct.unpack_from("<Q", b, i)[0]
        net, i = read_uvarint(b, i + 8)
        tag, i = read_uvarint(b, i)
        if net > 2 ** 63 - 1:
            raise ValueError("r: net above INT64_MAX")
        day = None
        if tag >> 1:
            day = prev + unzigzag((tag >> 1) - 1)
            if abs(day) > DAY_MAX:
                raise ValueError("r: day out of range")
            prev = day
        out.append((h, net, bool(tag & 1), day))
    return out


def encode_w(entries):
    """entries: [(topic name or id, partition, offset)]."""
    return b"".join(struct.pack("<I", t if isinstance(t, int) else
                                fnv1a32(t)) + uvarint(p) + uvarint(o)
                    for t, p, o in entries)


def decode_w(b):
    """[(topic id, partition, offset)] in stored order; ValueError for an
    empty value, a truncated entry or number, a partition above INT32_MAX,
    an offset above INT64_MAX or a (topic, partition) twice."""
    if not b:
        raise ValueError("w: empty")
    out, seen, i = [], set(), 0
    while i < len(b):
        if len(b) - i < 4:
            raise ValueError("w: truncated topic id")
        t = struct.unpack_from("<I", b, i)[0]
        p, i = read_uvarint(b, i + 4)
        o, i = read_uvarint(b, i)
        if p > 2 ** 31 - 1 or o > 2 ** 63 - 1:
            raise ValueError("w: partition or offset out of range")
        if (t, p) in seen:
            raise ValueError("w: a partition twice")
        seen.add((t, p))
        out.append((t, p, o))
    return out


def expand_w(h):
    """h ({field: str (surrogateescape) or bytes}) with its binary w
    replaced by one field w_field(...) per watermark, valued like h's
    values (str or bytes) with the decimal offset. Legacy w:<topic>:<p>
    fields stay as they are."""
    if "w" not in h:
        return h
    v = h["w"]
    text = isinstance(v, str)
    out = {f: x for f, x in h.items() if f != "w"}
    for t, p, o in decode_w(v.encode("utf-8", "surrogateescape")
                            if text else v):
        out["w:#%08x:%d" % (t, p)] = str(o) if text else str(o).encode()
    return out


def text_e(hashes):
    return "".join("%016x" % h for h in hashes)


def text_r(entries):
    return ",".join("%016x:%d%s%s" % (h, net, "" if day is None else
                                      ":%d" % day, ":c" if c else "")
                    for h, net, c, day in entries)


def model_memories(c):
    """(e, r) a cpmodel.Customer's memories must hold, decoded form."""
    e = [fnv1a64(eid) for eid in c.event_ids]
    r = [(fnv1a64(oid), net, bool(cancelled), day)
         for oid, net, cancelled, day in c.remembered]
    return e, r


def stored_memories(h):
    """(e, r) of a layout-3 hash h ({field: str (surrogateescape) or
    bytes}); an absent field is an empty memory."""
    def raw(f):
        v = h.get(f, b"")
        return v.encode("utf-8", "surrogateescape") if isinstance(v, str) \
            else v
    return decode_e(raw("e")), decode_r(raw("r"))
