"""Processes the harness starts, and what /proc says about them.

Every process goes through Procs.start(), which remembers it; Procs.stop_all() stops each one
by PID (SIGTERM, bounded wait, SIGKILL), children included, and runs from a finally block and at
exit, so Ctrl-C or an error leaves nothing behind. Nothing here ever signals a process it did
not start (children are matched by parent PID and start time before they are signalled).
"""

import atexit
import os
import resource
import signal
import subprocess
import time

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOOPBACK = "127.0.0.1"


def raise_nofile():
    """Raises this process's soft open-files limit to the hard limit; children inherit it."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _stat_fields(pid):
    """Fields of /proc/PID/stat after the command name (index 0 is the state), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            text = f.read()
    except OSError:
        return None
    # the command name is in parentheses and may itself contain spaces or ')'
    return text[text.rindex(")") + 2:].split()


def start_time(pid):
    """The process start time in clock ticks since boot (tells a PID from its reuse), or None."""
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None


def cpu_ticks(pid):
    """(utime, stime) of a process in clock ticks: every thread, live or exited, is counted."""
    fields = _stat_fields(pid)
    if fields is None:
        return (0, 0)
    return (int(fields[11]), int(fields[12]))


def status_kib(pid, key):
    """A kB value from /proc/PID/status (VmRSS, VmHWM, ...), 0 when the process is gone."""
    try:
        with open("/proc/%d/status" % pid) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def children(pid):
    """PIDs whose parent is pid, found by scanning /proc."""
    out = []
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        fields = _stat_fields(int(name))
        if fields is not None and int(fields[1]) == pid:
            out.append(int(name))
    return out


def tree(pid):
    """pid and all its descendants."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children(p))
    return out


def alive(pid, started):
    """True while pid still names the process that started at `started` (a zombie is dead)."""
    fields = _stat_fields(pid)
    return fields is not None and fields[0] != "Z" and int(fields[19]) == started


def machine_ticks():
    """(busy, steal) clock ticks of all CPUs together since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq + steal, steal


class Others:
    """CPU the rest of the machine used during a measurement: everything /proc/stat counts as
    busy minus what the measured processes, the harness and its reaped children (wrk) used.
    A noise indicator: on an idle machine it stays near 0 (softirq work done in ksoftirqd on
    the run's behalf lands here too)."""

    def __init__(self):
        self.at = time.monotonic()
        self.busy, self.steal = machine_ticks()
        self.own = self._own()

    @staticmethod
    def _own():
        s = resource.getrusage(resource.RUSAGE_SELF)
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        return s.ru_utime + s.ru_stime + c.ru_utime + c.ru_stime

    def finish(self, measured_cpu_s):
        """Returns (others' CPU as % of all cores over the interval, steal %)."""
        wall = time.monotonic() - self.at
        busy, steal = machine_ticks()
        ncpu = os.cpu_count() or 1
        total = (busy - self.busy) / CLK_TCK
        others = total - measured_cpu_s - (self._own() - self.own)
        if wall <= 0:
            return 0.0, 0.0
        return (max(0.0, 100.0 * others / (wall * ncpu)),
                100.0 * (steal - self.steal) / CLK_TCK / (wall * ncpu))


class Sample:
    """CPU ticks and memory of a set of processes at one instant."""

    def __init__(self, pids):
        self.pids = list(pids)
        self.at = time.monotonic()
        self.user = self.sys = 0
        self.rss_kib = self.hwm_kib = 0
        for p in self.pids:
            u, s = cpu_ticks(p)
            self.user += u
            self.sys += s
            self.rss_kib += status_kib(p, "VmRSS")
            self.hwm_kib += status_kib(p, "VmHWM")

    def cpu_seconds_since(self, before):
        return ((self.user - before.user) + (self.sys - before.sys)) / CLK_TCK

    def user_seconds_since(self, before):
        return (self.user - before.user) / CLK_TCK

    def sys_seconds_since(self, before):
        return (self.sys - before.sys) / CLK_TCK


class Proc:
    """One started process: its Popen, its log file, the cores it is pinned to."""

    def __init__(self, name, popen, log_path):
        self.name = name
        self.popen = popen
        self.pid = popen.pid
        self.log_path = log_path
        self.started = start_time(popen.pid)
        self.known_children = {}  # pid -> start time, refreshed by pids()
        self.exit_code = None

    def running(self):
        return self.popen.poll() is None

    def pids(self):
        """The process and its descendants (nginx: master and workers) right now."""
        if not self.running():
            return []
        out = tree(self.pid)
        for p in out[1:]:
            if p not in self.known_children:
                st = start_time(p)
                if st is not None:
                    self.known_children[p] = st
        return out

    def log_text(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Procs:
    """The registry of every process the harness started."""

    def __init__(self):
        self.live = []
        #: [name, pid, start time] of every process started or seen as a child, for the record
        self.history = []
        atexit.register(self.stop_all)

    def start(self, name, argv, log_path, cpus=None, env=None, stdout=None, cwd=None,
              stdin=None):
        """Starts argv (pinned to `cpus`, a list of core numbers, when given) in its own session,
        so a Ctrl-C reaches only the harness, which then stops it by PID. stderr (and stdout
        unless a pipe is asked for) go to log_path; stdin is /dev/null unless a pipe is asked
        for (the fault relay takes its commands there)."""
        if cpus:
            argv = ["taskset", "-c", ",".join(str(c) for c in cpus)] + list(argv)
        log = open(log_path, "ab")
        try:
            popen = subprocess.Popen(argv, stdin=stdin if stdin is not None else
                                     subprocess.DEVNULL,
                                     stdout=stdout if stdout is not None else log, stderr=log,
                                     start_new_session=True, env=env, cwd=cwd)
        finally:
            log.close()
        proc = Proc(name, popen, log_path)
        self.live.append(proc)
        self.history.append([name, proc.pid, proc.started])
        return proc

    def stop(self, proc, sig=signal.SIGTERM, timeout=5.0):
        """Stops one process and its children by PID; returns its exit code (negative: signal).
        Bounded: SIGKILL after `timeout` seconds, and for children still alive afterwards."""
        proc.pids()  # remember the current children before the parent goes
        if proc.popen.poll() is None:
            try:
                os.kill(proc.pid, sig)
            except ProcessLookupError:
                pass
            try:
                proc.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.popen.wait(timeout=5)
        # children of a killed parent (nginx workers) may outlive it: by PID, start time checked
        deadline = time.monotonic() + timeout
        for child, started in proc.known_children.items():
            self.history.append([proc.name + " child", child, started])
            while alive(child, started) and time.monotonic() < deadline:
                time.sleep(0.02)
            if alive(child, started):
                try:
                    os.kill(child, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        for pipe in (proc.popen.stdout, proc.popen.stdin):
            if pipe is not None:
                try:
                    pipe.close()
                except OSError:  # a relay that died leaves a broken stdin pipe
                    pass
        proc.exit_code = proc.popen.returncode
        if proc in self.live:
            self.live.remove(proc)
        return proc.exit_code

    def kill(self, proc):
        """SIGKILL by PID, now (the failover workload's dying backend)."""
        return self.stop(proc, sig=signal.SIGKILL, timeout=5.0)

    def stop_all(self):
        for proc in list(reversed(self.live)):
            try:
                self.stop(proc)
            except Exception:  # keep stopping the others
                pass


def read_first_line(proc, timeout):
    """The first stdout line of a process started with stdout=PIPE, within timeout seconds."""
    import select

    fd = proc.popen.stdout.fileno()
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            break
        ch = os.read(fd, 1)
        if not ch:
            break
        line += ch
    return line.decode("ascii", "replace").strip()


class Ports:
    """Hands out fixed loopback ports below the ephemeral range (32768 and up), checking each
    is free, so no server port ever collides with a client's source port."""

    def __init__(self, base=23000, limit=32767):
        self.next = base
        self.limit = limit

    def take(self):
        import socket

        while self.next <= self.limit:
            port = self.next
            self.next += 1
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                try:
                    s.bind((LOOPBACK, port))
                except OSError:
                    continue
            return port
        raise RuntimeError("no free loopback port below %d" % self.limit)
