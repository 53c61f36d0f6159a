"""Counting a server's system calls during a wrk run with `perf stat` on the syscall
tracepoints (the kernel counts them; the server is not slowed the way strace slows it).
Optional: needs perf and readable tracepoints (root, or perf_event_paranoid allowing it)."""

import os
import shutil
import signal
import subprocess

NAMES = ("read", "readv", "recvfrom", "recvmsg", "write", "writev", "sendto", "sendmsg",
         "epoll_wait", "epoll_pwait", "epoll_ctl", "accept", "accept4", "close", "connect",
         "socket", "setsockopt", "getsockopt", "getsockname", "getpeername", "ioctl", "fcntl",
         "futex", "shutdown", "splice")
TRACE = "/sys/kernel/tracing/events/syscalls"


def available():
    """None when counting works here, else why not."""
    if shutil.which("perf") is None:
        return "perf is not installed (Debian: linux-perf)"
    if not os.path.isdir(TRACE) and not os.path.isdir("/sys/kernel/debug/tracing/events"):
        return "syscall tracepoints are not visible (tracefs not mounted?)"
    return None


def events():
    names = [n for n in NAMES if os.path.isdir(os.path.join(TRACE, "sys_enter_" + n))]
    return ["raw_syscalls:sys_enter"] + ["syscalls:sys_enter_" + n for n in names]


class Counter:
    """perf stat attached to pids from start() to finish()."""

    def __init__(self, registry, pids, out_path, log_path):
        self.out_path = out_path
        argv = ["perf", "stat", "-x", ",", "-o", out_path, "-e", ",".join(events()),
                "-p", ",".join(str(p) for p in pids)]
        self.proc = registry.start("perf", argv, log_path)
        self.registry = registry

    def finish(self):
        """Stops perf (SIGINT makes it write its counts) and returns {name: count}, with
        "total" for every syscall."""
        self.registry.stop(self.proc, sig=signal.SIGINT, timeout=10.0)
        counts = {}
        try:
            with open(self.out_path) as f:
                for line in f:
                    parts = line.strip().split(",")
                    if len(parts) < 3 or not parts[0].strip().isdigit():
                        continue
                    event = parts[2]
                    name = "total" if event == "raw_syscalls:sys_enter" else \
                        event.rsplit("sys_enter_", 1)[-1]
                    counts[name] = counts.get(name, 0) + int(parts[0])
        except OSError:
            pass
        return counts


def run_counted(registry, pids, out_dir, tag, run_wrk):
    """Runs run_wrk() (which returns wrk's parsed figures) while counting the syscalls of
    pids; returns {name: calls per request}, or None when nothing was counted."""
    c = Counter(registry, pids, os.path.join(out_dir, "perf-%s.csv" % tag),
                os.path.join(out_dir, "perf.log"))
    try:
        figures = run_wrk()
    finally:
        counts = c.finish()
    if not counts.get("total") or not figures.get("requests"):
        return None
    return {k: v / figures["requests"] for k, v in counts.items() if v}
