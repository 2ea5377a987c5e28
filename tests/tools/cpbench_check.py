#!/usr/bin/env python3
"""Runs bench/cpbench.py --quick and checks what must hold whatever the
timings (ctest bench.cpbench, label bench; real Kafka + Redis started by
the benchmark itself, about a minute).

    cpbench_check.py JSON CPBENCH [cpbench options...]

1. cpbench exits 0 and prints its machine line, one line per phase and
   its closing line; JSON is written and parses, with every phase.
2. Phases 1 and 2: custpulse's DLQ count equals cploadgen's malformed
   count, its duplicates equal cploadgen's (each is sent right after its
   original, well inside the de-duplication window), and applied +
   duplicates + dlq equals the records cploadgen produced (nothing lost,
   nothing counted twice, nothing redelivered in a clean run).
3. Outputs were produced in every phase; in phase 2 every output with an
   input cause names a record of the phase's input (its timestamp was
   found) and latencies were measured.
4. Phase 3: each due customer was evaluated once and none is left due.
Timings, rates and CPU figures are printed by cpbench, never checked.
"""
import json
import subprocess
import sys

LINES = ("cpbench quick:", "phase 1 backlog:", "phase 2 steady:",
         "phase 3 sweep:", "cpbench: quick done")


def fail(msg):
    print(f"cpbench_check: FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def check_eq(got, want, what):
    if got != want:
        fail(f"{what}: {got} != {want}")


def check_counts(name, p):
    c = p["counters"]
    check_eq(p["dlq"], p["malformed"], f"{name}: dlq vs cploadgen malformed")
    check_eq(c["duplicates"], p["loadgen"]["duplicates"],
             f"{name}: duplicates vs cploadgen's")
    check_eq(c["applied"] + c["duplicates"] + c["dlq"], p["records"],
             f"{name}: applied + duplicates + dlq vs records produced")
    if c["outputs"] <= 0:
        fail(f"{name}: no outputs")
    print(f"cpbench_check: {name}: {p['records']:,} records = "
          f"{c['applied']:,} applied + {c['duplicates']} duplicates + "
          f"{c['dlq']} dlq (cploadgen malformed {p['malformed']}); "
          f"{c['outputs']:,} outputs", flush=True)


def main():
    json_path, cpbench, extra = sys.argv[1], sys.argv[2], sys.argv[3:]
    res = subprocess.run([sys.executable, "-u", cpbench, "--quick", "--json",
                          json_path, *extra], stdout=subprocess.PIPE,
                         text=True, timeout=600)
    print(res.stdout, end="", flush=True)
    if res.returncode != 0:
        fail(f"cpbench exited {res.returncode}")
    out = res.stdout.splitlines()
    for prefix in LINES:
        if sum(line.startswith(prefix) for line in out) != 1:
            fail(f"expected one line starting {prefix!r}")
    with open(json_path) as f:
        doc = json.load(f)
    phases = doc["phases"]
    check_eq(sorted(phases), ["backlog", "steady", "sweep"], "phases")
    check_counts("phase 1", phases["backlog"])
    steady = phases["steady"]
    check_counts("phase 2", steady)
    check_eq(steady["outputs_cause_not_found"], 0,
             "phase 2: outputs whose cause was not read back")
    if not steady["latency_ms"]["outputs"]:
        fail("phase 2: no latency measured")
    sweep = phases["sweep"]
    check_eq(sweep["counters"]["due_evaluations"], sweep["due"],
             "phase 3: due evaluations vs customers due")
    check_eq(sweep["due_left"], 0, "phase 3: customers still due")
    if sweep["outputs"] <= 0:
        fail("phase 3: no outputs")
    print(f"cpbench_check: phase 3: {sweep['due']:,} due customers "
          f"evaluated, none left; ok", flush=True)


if __name__ == "__main__":
    main()
