"""memwhatif.py - what other encodings of the same customer state would
cost in Redis: `cpbench.py --memory-whatif` (phase 1).

The customer hashes and due-index entries custpulse wrote are read back,
rewritten in each encoding below and loaded into a scratch redis-server
started with deploy/local/redis.conf (so with its hash-max-listpack-value
512); each line is that server's used memory after the load over the
number of customers, measured exactly like cpbench's figure. The
encodings are estimates of layouts custpulse does not write: their
binary forms are those a codec would produce (LEB128 integers, zigzag for
signed ones, 8-byte doubles), not a specification.

  layout 3          watermarks as fields w:<topic>:<partition> (text)
  layout 4          what custpulse writes (w binary)
  no due index      layout 4 without the due-index entries
  + binary numbers  layout 4 with g, gp, sp, gc, h, mk and k binary
  internal blob     every field but the public ones (v o m f l s q sl se
                    ss sv sq sc cw dd a:*) in one binary value i (a version
                    byte, a bitmap of the fields present, each one's
                    length and bytes)
  blob, 6-byte ids  the blob with event-id hashes of 6 bytes instead of 8
  blob, no due      the blob without the due-index entries
  floor             each customer a hash of one field (v), no due entries:
                    the key, its object and dictionary entry

Python 3 standard library, tests/integration/storecodec.py (the
contract's codecs; cpbench puts it on the path) and redis-cli.
"""
import os
import socket
import struct
import subprocess
import tempfile
import time

import storecodec  # tests/integration: the contract's codecs (cpbench's path)

PUBLIC = {b"v", b"o", b"m", b"f", b"l", b"s", b"q", b"sl", b"se", b"ss",
          b"sv", b"sq", b"sc", b"cw", b"dd"}


def split_w(v, names):
    """Layout 4's w -> [(layout-3 field name, offset text)]."""
    return [(b"w:%s:%d" % (names.get(t, "#%08x" % t).encode(), p), b"%d" % o)
            for t, p, o in storecodec.decode_w(v)]


def number(x):
    """A text number as its binary form: an integer as a zigzag LEB128, a
    double as 8 bytes."""
    try:
        return storecodec.uvarint(storecodec.zigzag(int(x)))
    except ValueError:
        return struct.pack("<d", float(x))


def binary_numbers(f, v):
    if f == b"g":
        score, ms = v.split(b":")
        return struct.pack("<d", float(score)) + number(ms)
    if f == b"gp":
        return struct.pack("<d", float(v))
    if f in (b"sp", b"gc", b"h", b"k"):
        return b"".join(number(x) for x in v.split(b","))
    if f == b"mk":
        day, bits = v.split(b",")
        return number(b"-1" if day == b"-" else day) + number(bits)
    return None


def layout3(h, names):
    out = []
    for f, v in h:
        if f == b"w":
            out += split_w(v, names)
        else:
            out.append((f, v))
    return out


def with_binary_numbers(h):
    out = []
    for f, v in h:
        b = binary_numbers(f, v)
        out.append((f, b if b is not None else v))
    return out


INTERNAL = (b"lv", b"n", b"z", b"b", b"yw", b"e", b"r", b"w", b"g", b"gc",
            b"gp", b"sp", b"k", b"h", b"mk")


def blob(h, id_bytes=8):
    """The public fields as they are, every internal one (INTERNAL) in one
    value i: a version byte, a 2-byte bitmap of the fields present, then
    each present one in INTERNAL's order as LEB128 length and bytes
    (numbers binary, as binary_numbers; lv is the version byte)."""
    out, vals = [], {}
    for f, v in h:
        if f in PUBLIC or f.startswith(b"a:") or f not in INTERNAL:
            out.append((f, v))
            continue
        if f == b"e" and id_bytes != 8:
            v = b"".join(v[i:i + id_bytes] for i in range(0, len(v), 8))
        elif f in (b"n", b"z", b"b", b"yw"):
            v = number(v)
        else:
            b = binary_numbers(f, v)
            v = b if b is not None else v
        vals[f] = v
    bits, inner = 0, bytearray()
    for i, f in enumerate(INTERNAL):
        if f in vals and f != b"lv":
            bits |= 1 << i
            inner += storecodec.uvarint(len(vals[f])) + vals[f]
    out.append((b"i", b"\x04" + struct.pack("<H", bits) + bytes(inner)))
    return out


def resp(args):
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    return b"".join(out)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def used_memory(port):
    out = subprocess.run(["redis-cli", "-p", str(port), "INFO", "memory"],
                         capture_output=True, text=True, check=True).stdout
    for line in out.splitlines():
        if line.startswith("used_memory:"):
            return int(line.split(":")[1])
    raise RuntimeError("no used_memory in INFO")


def measure(conf, hashes, due):
    """used memory per customer of hashes ({key: [(field, value)]}) and due
    ({zset key: [(member, score)]}) loaded into a fresh redis-server."""
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="memwhatif-") as d:
        proc = subprocess.Popen(
            ["redis-server", conf, "--port", str(port), "--dir", d,
             "--appendonly", "no", "--save", ""],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            for _ in range(100):
                try:
                    u0 = used_memory(port)
                    break
                except subprocess.CalledProcessError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("scratch redis-server did not start")
            buf = bytearray()
            for k, pairs in hashes.items():
                buf += resp([b"HSET", k] + [x for p in pairs for x in p])
            for k, entries in due.items():
                for member, score in entries:
                    buf += resp([b"ZADD", k, score, member])
            subprocess.run(["redis-cli", "-p", str(port), "--pipe"],
                           input=bytes(buf), capture_output=True, check=True)
            return (used_memory(port) - u0) / max(1, len(hashes))
        finally:
            proc.terminate()
            proc.wait(30)


def read_state(r, prefix):
    """({customer key: [(field, value)]}, {due key: [(member, score)]})."""
    def scan(pattern):
        cursor, keys = b"0", []
        while True:
            cursor, batch = r.cmd("SCAN", cursor, "MATCH", pattern,
                                  "COUNT", 2000)
            keys += batch
            if cursor in (b"0", 0, "0"):
                return keys
    hashes = {}
    for k in scan(prefix + "c:*"):
        flat = r.cmd("HGETALL", k)
        hashes[k] = list(zip(flat[0::2], flat[1::2]))
    due = {}
    for k in scan(prefix + "due:*"):
        flat = r.cmd("ZRANGE", k, 0, -1, "WITHSCORES")
        due[k] = list(zip(flat[0::2], flat[1::2]))
    return hashes, due


def whatif(r, prefix, topics, conf, say=print):
    """{encoding: bytes per customer} for the state under prefix."""
    say("memory what-if: reading the customer hashes")
    hashes, due = read_state(r, prefix)
    names = {storecodec.fnv1a32(t): t for t in topics}
    b = {k: blob(h) for k, h in hashes.items()}
    cases = [
        ("layout 3", lambda: ({k: layout3(h, names)
                               for k, h in hashes.items()}, due)),
        ("layout 4", lambda: (hashes, due)),
        ("no due index", lambda: (hashes, {})),
        ("+ binary numbers", lambda: ({k: with_binary_numbers(h)
                                       for k, h in hashes.items()}, due)),
        ("internal blob", lambda: (b, due)),
        ("blob, 6-byte ids", lambda: ({k: blob(h, 6)
                                       for k, h in hashes.items()}, due)),
        ("blob, no due", lambda: (b, {})),
        ("floor", lambda: ({k: [(b"v", b"1")] for k in hashes}, {})),
    ]
    out = {}
    for name, make in cases:
        hs, dz = make()
        out[name] = round(measure(conf, hs, dz), 1)
        say(f"memory what-if: {name}: {out[name]} B/customer")
    return out


if __name__ == "__main__":
    print(__doc__)
