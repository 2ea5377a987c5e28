"""shared_kafka.py - one Kafka broker for a whole ctest run (fixture
cp_shared_kafka, tests/CMakeLists.txt).

    shared_kafka.py start       # FIXTURES_SETUP: start, wait until ready
    shared_kafka.py stop        # FIXTURES_CLEANUP: stop, remove
    shared_kafka.py supervise D # internal: the broker's parent (see below)

The state of a run lives in $CP_SHARED_KAFKA_DIR/<ctest pid>/ (ctest runs
every test as its direct child, so the setup, the tests and the cleanup all
find it through their parent pid; two ctest runs of one build tree do not
meet): owner (ctest's pid and start time), kafka/ (server.properties, data),
kafka.log, supervisor.log, supervisor.pid, kafka.pid and, once the broker
answers, bootstrap ("127.0.0.1:port"), which harness.py reads.

Nothing outlives the run: start leaves behind only a supervisor process in a
session (process group) of its own, whose child is the broker (killed by
PR_SET_PDEATHSIG if the supervisor dies). The supervisor stops the broker and
removes the directory when the ctest process goes away (Ctrl-C, a kill, a
crash: the cleanup test then never runs); stop SIGTERMs the supervisor, which
stops the broker (SIGTERM, SIGKILL after 15 s), then SIGKILLs whatever of
that process group is left and removes the directory. start also sweeps the
directories of runs whose ctest is gone.

If the broker dies during the run, the supervisor removes bootstrap (tests
that start later use brokers of their own) and stop reports it, exit 1.
"""
import os
import shutil
import signal
import subprocess
import sys
import time

# Ours, not harness.py's: it must not look for a shared broker here.
BASE = os.environ.pop("CP_SHARED_KAFKA_DIR", None)
os.environ.pop("CP_SHARED_KAFKA", None)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

START_TIMEOUT_S = 90
STOP_TIMEOUT_S = 15
POLL_S = 0.5


def say(msg):
    print(f"[shared_kafka {time.strftime('%H:%M:%S')}] {msg}", flush=True)


def start_time(pid):
    """The process's start time (clock ticks since boot) or None if it is
    gone: a pid with another start time is another process."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            stat = f.read()
    except OSError:
        return None
    return int(stat[stat.rindex(")") + 2:].split()[19])


def read(path, default=None):
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return default


def write(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        f.write(text + "\n")
    os.rename(tmp, path)


def owner_alive(d):
    """Whether the ctest that owns run directory d is still running."""
    try:
        pid, t0 = (int(x) for x in read(os.path.join(d, "owner"), "").split())
    except ValueError:
        return False
    return start_time(pid) == t0


def group_members(d):
    """Pids of the processes of d's supervisor's process group that belong
    to d (their command line names d), the supervisor first."""
    pgid = read(os.path.join(d, "supervisor.pid"))
    if not pgid or not pgid.isdigit():
        return []
    pgid, out = int(pgid), []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            if os.getpgid(int(name)) != pgid:
                continue
            with open(f"/proc/{name}/cmdline", "rb") as f:
                cmd = f.read().decode("utf-8", "replace")
        except OSError:
            continue
        if d in cmd.split("\0") or (d + "/") in cmd:
            out.append(int(name))
    return sorted(out, key=lambda p: p != pgid)


def kill_all(d, sig):
    pids = group_members(d)
    for pid in pids:
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            pass
    return pids


def shut_down(d, timeout):
    """SIGTERM to the supervisor (which stops the broker), then SIGKILL to
    whatever of the run is left after timeout. Returns True if something
    had to be SIGKILLed."""
    kill_all(d, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while group_members(d) and time.monotonic() < deadline:
        time.sleep(0.1)
    left = kill_all(d, signal.SIGKILL)
    if left:
        say(f"SIGKILLed {left} of {d}")
        deadline = time.monotonic() + 10
        while group_members(d) and time.monotonic() < deadline:
            time.sleep(0.1)
    return bool(left)


def remove(d):
    if os.environ.get("CP_KEEP_TMP") == "1":
        say(f"kept {d}")
    else:
        shutil.rmtree(d, ignore_errors=True)


def sweep(base, keep):
    """Runs whose ctest is gone (the supervisor normally removes them
    itself; not if it was SIGKILLed too)."""
    for name in os.listdir(base):
        d = os.path.join(base, name)
        if d == keep or not os.path.isdir(d) or owner_alive(d):
            continue
        say(f"stale run {d} (its ctest is gone): stopping, removing")
        shut_down(d, STOP_TIMEOUT_S)
        shutil.rmtree(d, ignore_errors=True)


def cmd_start():
    d = harness.shared_kafka_dir(BASE)
    if d is None:
        sys.exit("shared_kafka.py: CP_SHARED_KAFKA_DIR is not set")
    base, ctest = os.path.dirname(d), os.getppid()
    os.makedirs(base, exist_ok=True)
    sweep(base, d)
    if os.path.isdir(d):  # a second setup in the same run
        say(f"{d} exists: stopping the broker there first")
        shut_down(d, STOP_TIMEOUT_S)
        shutil.rmtree(d, ignore_errors=True)
    os.makedirs(d)
    write(os.path.join(d, "owner"), f"{ctest} {start_time(ctest)}")
    t0 = time.monotonic()
    port, controller = harness.free_ports(2)
    harness.kafka_prepare(os.path.join(d, "kafka"), port, controller)
    write(os.path.join(d, "port"), str(port))
    with open(os.path.join(d, "supervisor.log"), "ab") as log:
        sup = subprocess.Popen(
            [sys.executable, os.path.abspath(__file__), "supervise", d],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True, close_fds=True)
    write(os.path.join(d, "supervisor.pid"), str(sup.pid))

    def ready():
        if sup.poll() is not None:
            raise RuntimeError(f"supervisor exited {sup.returncode}")
        return harness._kafka_ready(port)
    try:
        harness.wait_until(ready, START_TIMEOUT_S, "the shared broker", 0.1)
    except (RuntimeError, TimeoutError) as e:
        print(f"shared_kafka.py: {e}\n----- kafka.log -----\n"
              + harness._tail(os.path.join(d, "kafka.log"), 60)
              + "\n----- supervisor.log -----\n"
              + harness._tail(os.path.join(d, "supervisor.log")),
              file=sys.stderr, flush=True)
        shut_down(d, STOP_TIMEOUT_S)
        remove(d)
        sys.exit(1)
    write(os.path.join(d, "bootstrap"), f"127.0.0.1:{port}")
    say(f"broker 127.0.0.1:{port} ready in {time.monotonic() - t0:.1f}s for "
        f"ctest pid {ctest} ({d}; supervisor pid = process group "
        f"{sup.pid})")


def cmd_supervise(d):
    """The broker's parent, in a session of its own, until the cleanup test
    SIGTERMs it or its ctest is gone."""
    owner, t0 = (int(x) for x in read(os.path.join(d, "owner")).split())
    stop = []
    for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(s, lambda signum, frame: stop.append(signum))
    kdir, me = os.path.join(d, "kafka"), os.getpid()

    def die_with_us():
        # PR_SET_PDEATHSIG: the broker dies with us, even by SIGKILL. No
        # setsid: it stays in our process group.
        if harness._libc is not None:
            harness._libc.prctl(harness._PR_SET_PDEATHSIG, signal.SIGKILL,
                                0, 0, 0)
        if os.getppid() != me:
            os._exit(1)
    with open(os.path.join(d, "kafka.log"), "ab") as log:
        kafka = subprocess.Popen(
            harness.kafka_argv(kdir), cwd=kdir, stdin=subprocess.DEVNULL,
            stdout=log, stderr=subprocess.STDOUT, close_fds=True,
            preexec_fn=die_with_us)
    write(os.path.join(d, "kafka.pid"), str(kafka.pid))
    say(f"broker pid {kafka.pid}; watching ctest pid {owner}")
    orphaned = False
    while not stop:
        if kafka.poll() is not None:
            say(f"the broker exited {kafka.returncode} during the run")
            write(os.path.join(d, "died"), f"exit {kafka.returncode}")
            try:
                os.unlink(os.path.join(d, "bootstrap"))
            except FileNotFoundError:
                pass
            break
        if start_time(owner) != t0:
            say(f"ctest pid {owner} is gone: stopping the broker")
            orphaned = True
            break
        time.sleep(POLL_S)
    if stop:
        say(f"signal {stop[0]}: stopping the broker")
    if kafka.poll() is None:
        kafka.terminate()
        try:
            kafka.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            say(f"broker still up {STOP_TIMEOUT_S}s after SIGTERM: SIGKILL")
            kafka.kill()
            kafka.wait()
    say(f"broker stopped ({kafka.returncode})")
    if orphaned:
        remove(d)


def cmd_stop():
    d = harness.shared_kafka_dir(BASE)
    if d is None:
        sys.exit("shared_kafka.py: CP_SHARED_KAFKA_DIR is not set")
    if not os.path.isdir(d):
        say(f"no shared broker for ctest pid {os.getppid()} ({d})")
        return 0
    died = read(os.path.join(d, "died"))
    t0 = time.monotonic()
    killed = shut_down(d, STOP_TIMEOUT_S + 5)
    tail = harness._tail(os.path.join(d, "supervisor.log"), 10)
    say(f"stopped in {time.monotonic() - t0:.1f}s"
        + (" (SIGKILL needed)" if killed else "") + f"; supervisor.log:\n"
        + tail)
    rc = 0
    if died:
        print(f"shared_kafka.py: the shared broker died during the run "
              f"({died}); later tests used brokers of their own\n"
              "----- kafka.log -----\n"
              + harness._tail(os.path.join(d, "kafka.log"), 60),
              file=sys.stderr, flush=True)
        rc = 1
    remove(d)
    return rc


def main(argv):
    if argv[:1] == ["start"]:
        cmd_start()
        return 0
    if argv[:1] == ["stop"]:
        return cmd_stop()
    if len(argv) == 2 and argv[0] == "supervise":
        cmd_supervise(argv[1])
        return 0
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
