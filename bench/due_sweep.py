#!/usr/bin/env python3
"""Due-time sweep cost (issue 6; docs/churn.md "Time-driven evaluation"):
the work of a sweep is proportional to the customers due, not to all
customers. Shown by counting, not by timing: Redis' own key lookups
(INFO keyspace_hits + keyspace_misses, which count every key a command or
a script reads or writes) and commands per type (INFO commandstats), with
custpulse's counters beside them.

For each population size N (default 100,000 and 1,000,000), a fresh
redis-server gets N customer hashes (a one-order customer of layout 4,
built by tests/integration/cpmodel.py) and the due index (one shard:
the embedded cluster's orders topic has one partition), of which D
(default 10,000 = 1 % of 1M) are due (dd one day in the past, the others
in 30 days). Then `custpulse run --exit-at-end` with the embedded Kafka
cluster (kafka.bootstrap.servers = embedded, empty topics) reaches the
end of its input at once and sweeps until nothing is due: it evaluates
exactly the D due customers. Printed per run: the lookups and commands of
the run and per due customer, and the ratio to N.

    python3 bench/due_sweep.py [--bin PATH] [--sizes 100000,1000000]
                               [--due 10000] [--json out.json]

Loading 1M hashes takes about 10 s (a Lua loop in Redis); the run itself a
few seconds. Progress is printed as it goes.
"""
import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "integration"))
import cpmodel  # noqa: E402

DAY = 86400000


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_bin(arg):
    for p in [arg, os.environ.get("CP_BIN"),
              os.path.join(HERE, "..", "build", "custpulse")]:
        if p and os.path.isfile(p) and os.access(p, os.X_OK):
            return os.path.abspath(p)
    sys.exit("custpulse binary not found: --bin PATH or CP_BIN")


def cli(port, *args):
    out = subprocess.run(["redis-cli", "-p", str(port), *args],
                         capture_output=True, text=True, check=True).stdout
    return out


def info(port, section):
    d = {}
    for line in cli(port, "INFO", section).splitlines():
        if ":" in line and not line.startswith("#"):
            k, v = line.strip().split(":", 1)
            d[k] = v
    return d


def lookups(port):
    s = info(port, "stats")
    return int(s["keyspace_hits"]) + int(s["keyspace_misses"])


def calls(port):
    out = {}
    for k, v in info(port, "commandstats").items():
        name = k[len("cmdstat_"):]
        out[name] = int(v.split(",")[0].split("=")[1])
    return out


def template(now_ms):
    """The hash fields of a one-order customer whose order is 100 days old
    (cpmodel's expected_hash: what custpulse writes)."""
    c = cpmodel.Customer("t")
    t = now_ms - 100 * DAY
    c.apply({"event_id": "e1", "type": "order.placed", "customer_id": "t",
             "occurred_at": cpmodel.format_time_ms(t), "order_id": "o1",
             "amount": "25.00", "currency": "USD"})
    c.evaluate(t, cpmodel.Fixed(90, 2, "100.00"))
    return {k: v for k, v in cpmodel.expected_hash(c).items()
            if not k.startswith("w:")}


LOAD_LUA = """
local fields = cjson.decode(ARGV[1])
local from, to, due = tonumber(ARGV[2]), tonumber(ARGV[3]), tonumber(ARGV[4])
local past, future = ARGV[5], ARGV[6]
for i = from, to do
  local id = 'b-' .. i
  local dd = (i < due) and past or future
  local args = {}
  for k, v in pairs(fields) do args[#args + 1] = k; args[#args + 1] = v end
  args[#args + 1] = 'dd'; args[#args + 1] = dd
  redis.call('HSET', 'cp:c:{' .. id .. '}', unpack(args))
  redis.call('ZADD', 'cp:due:0', dd, id)
end
return to - from + 1
"""


def load(port, n, due, fields, now_ms, say=None):
    """Writes customers b-0 .. b-<n-1> (hash `fields` plus dd) and the due
    index cp:due:0; the first `due` are due (dd a day before now_ms), the
    others in 30 days. say(text) reports progress (default: print).
    Also bench/cpbench.py's sweep phase."""
    say = say or (lambda text: print(text, flush=True))
    past, future = str(now_ms - DAY), str(now_ms + 30 * DAY)
    step = 50000
    for lo in range(0, n, step):
        hi = min(n, lo + step) - 1
        cli(port, "EVAL", LOAD_LUA, "0", json.dumps(fields), str(lo),
            str(hi), str(due), past, future)
        say(f"  loaded {hi + 1:,} / {n:,} customers")


def run_one(binary, n, due, workdir):
    port = free_port()
    rdir = os.path.join(workdir, f"redis-{n}")
    os.makedirs(rdir)
    redis = subprocess.Popen(
        ["redis-server", "--port", str(port), "--bind", "127.0.0.1",
         "--save", "", "--appendonly", "no", "--dir", rdir],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(100):
            try:
                cli(port, "PING")
                break
            except subprocess.CalledProcessError:
                time.sleep(0.05)
        now_ms = int(time.time() * 1000)
        print(f"N = {n:,} customers, {due:,} due: loading", flush=True)
        t0 = time.time()
        load(port, n, due, template(now_ms), now_ms)
        load_s = time.time() - t0
        mem = int(info(port, "memory")["used_memory"])
        cli(port, "CONFIG", "RESETSTAT")
        k0 = lookups(port)
        props = os.path.join(workdir, f"cp-{n}.properties")
        with open(props, "w") as f:
            f.write("kafka.bootstrap.servers = embedded\n"
                    f"redis.port = {port}\nredis.host = 127.0.0.1\n"
                    "topic.partitions = 1\nrfm.reference = fixed\n"
                    "rfmq.mode = fixed\nclock = wall\n")
        t0 = time.time()
        res = subprocess.run([binary, "run", "-c", props, "--exit-at-end"],
                             capture_output=True, text=True, timeout=600)
        run_s = time.time() - t0
        if res.returncode != 0:
            sys.exit(f"custpulse failed ({res.returncode}):\n"
                     f"{res.stderr[-3000:]}")
        stopped = [json.loads(ln) for ln in res.stderr.splitlines()
                   if '"msg":"stopped"' in ln][-1]
        touched = lookups(port) - k0
        cs = calls(port)
        left = int(cli(port, "ZCOUNT", "cp:due:0", "-inf",
                       str(now_ms)).strip())
        return {
            "customers": n, "due": due, "load_s": round(load_s, 1),
            "used_memory_bytes": mem, "run_s": round(run_s, 2),
            "sweeps": stopped["sweeps"],
            "sweep_customers": stopped["sweep_customers"],
            "due_evaluations": stopped["due_evaluations"],
            "due_left": left,
            "redis_key_lookups": touched,
            "key_lookups_per_due_customer": round(touched / due, 2),
            "key_lookups_per_customer_of_population": round(touched / n, 4),
            "commands": {k: v for k, v in sorted(cs.items())
                         if k not in ("info", "config|resetstat", "ping")},
            "custpulse_redis_commands": stopped["redis_commands"],
            "custpulse_round_trips": stopped["redis_round_trips"],
        }
    finally:
        redis.terminate()
        redis.wait()


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--bin")
    ap.add_argument("--sizes", default="100000,1000000")
    ap.add_argument("--due", type=int, default=10000)
    ap.add_argument("--json")
    a = ap.parse_args()
    binary = find_bin(a.bin)
    if not shutil.which("redis-server"):
        sys.exit("redis-server not found")
    work = tempfile.mkdtemp(prefix="cp-due-bench-")
    rows = []
    try:
        for n in [int(x) for x in a.sizes.split(",")]:
            r = run_one(binary, n, min(a.due, n), work)
            rows.append(r)
            print(f"  swept in {r['run_s']} s: {r['sweep_customers']:,} "
                  f"customers read by {r['sweeps']} sweep batches, "
                  f"{r['due_evaluations']:,} evaluations, "
                  f"{r['due_left']} still due; Redis key lookups "
                  f"{r['redis_key_lookups']:,} = "
                  f"{r['key_lookups_per_due_customer']} per due customer = "
                  f"{r['key_lookups_per_customer_of_population']} per "
                  f"customer of the population", flush=True)
            print("  commands: " + ", ".join(
                f"{k} {v:,}" for k, v in r["commands"].items()), flush=True)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| customers | due | key lookups | per due customer | "
          "per customer | HGETALL | EVALSHA | ZRANGEBYSCORE | sweep s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        c = r["commands"]
        print(f"| {r['customers']:,} | {r['due']:,} | "
              f"{r['redis_key_lookups']:,} | "
              f"{r['key_lookups_per_due_customer']} | "
              f"{r['key_lookups_per_customer_of_population']} | "
              f"{c.get('hgetall', 0):,} | {c.get('evalsha', 0):,} | "
              f"{c.get('zrangebyscore', 0):,} | {r['run_s']} |")
    if a.json:
        with open(a.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
