#!/usr/bin/env python3
"""sidestep against nginx and HAProxy on loopback, at equal worker counts, in two placements.

    python3 bench/bench.py                 full run (about 30 minutes), tables on stdout
    python3 bench/bench.py --quick         a few seconds per workload, 1 worker, one placement
    python3 bench/bench.py --direct        wrk straight at the stub, then through sidestep
    python3 bench/bench.py --tls           the TLS workloads (about 4 minutes), pinned, 1 worker
    python3 bench/bench.py --update-doc    also rewrite the results part of docs/benchmarks.md
                                           and docs/benchmarks.png
    python3 bench/bench.py --report-only bench/out/RUN/results.json --update-doc

Workloads: get307, post307-1k, post307-64k (every request answered 307), proxy-get,
proxy-post-1k (proxied to a stub over keep-alive), idle (N idle keep-alive connections: RSS),
failover (a constant-rate client while the primary's backend is SIGKILLed), direct (stub alone
against sidestep in front of it). TLS (--tls): get307-tls, proxy-get-tls (keep-alive over
https, wrk), hs-full-ecdsa, hs-full-rsa (a full handshake per request), hs-resume (a resumed one,
session tickets), the handshakes driven by tls-load (bench/tls_load.c); one certificate, suite
list and group list for all three servers. Configs are rendered from bench/templates/ into
bench/out/RUN/; the table, results.json and the chart land there too. Standard library only;
every process started here is stopped by PID at the end, on Ctrl-C and on error as well.
See docs/benchmarks.md.
"""

import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from benchlib import clients, procs, report, servers, syscalls, tls, wrk  # noqa: E402

SERVERS = ("sidestep", "nginx", "haproxy")
WRK_WORKLOADS = {
    # name: (server mode, method, target, body bytes or None, expected status)
    "get307": ("redirect", "GET", "/bench/get?id=12345", None, 307),
    "post307-1k": ("redirect", "POST", "/bench/post?id=12345", 1024, 307),
    "post307-64k": ("redirect", "POST", "/bench/post?id=12345", 65536, 307),
    "proxy-get": ("proxy", "GET", "/bench/get?id=12345", None, 200),
    "proxy-post-1k": ("proxy", "POST", "/bench/post?id=12345", 1024, 200),
    # over TLS (a mode ending in -tls): the ECDSA P-256 certificate, keep-alive https
    "get307-tls": ("redirect-tls", "GET", "/bench/get?id=12345", None, 307),
    "proxy-get-tls": ("proxy-tls", "GET", "/bench/get?id=12345", None, 200),
}
HANDSHAKE_WORKLOADS = {
    # name: (certificate key type, tls-load mode); a GET answered 307, then the server's close
    "hs-full-ecdsa": ("ecdsa", "full"),
    "hs-full-rsa": ("rsa", "full"),
    "hs-resume": ("ecdsa", "resume"),
}
HANDSHAKE_TARGET = "/bench/hs?id=12345"
TLS_WORKLOADS = ("get307-tls", "proxy-get-tls") + tuple(HANDSHAKE_WORKLOADS)
WORKLOADS = tuple(WRK_WORKLOADS) + tuple(HANDSHAKE_WORKLOADS) + ("idle", "failover", "direct")
FAILOVER_VARIANTS = (
    # label, server kind, server mode
    ("sidestep", "sidestep", "failover"),
    ("nginx (backup 307)", "nginx", "failover"),
    ("haproxy (backup)", "haproxy", "failover-backup"),
    ("haproxy (backup, redispatch)", "haproxy", "failover-redispatch"),
    ("haproxy (nbsrv redirect)", "haproxy", "failover-nbsrv"),
)
LOCATION = "http://eu-west.example"
# what a failed wrk run raises: it becomes the row's error, the matrix goes on
MEASURE_ERRORS = (RuntimeError, ValueError, OSError, clients.HttpError,
                  subprocess.TimeoutExpired)


class Interrupted(Exception):
    pass


def on_signal(signum, frame):
    raise Interrupted("signal %d" % signum)


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="2 s per workload, 16 connections, 1 worker, one placement")
    p.add_argument("--direct", action="store_true", help="only the stub-direct comparison")
    p.add_argument("--tls", action="store_true",
                   help="only the TLS workloads (%s), pinned, 1 worker, 4 s runs measured twice; "
                        "about 4 minutes (quick: about 40 s)" % ",".join(TLS_WORKLOADS))
    p.add_argument("--hs-conns", type=int,
                   help="tls-load connections at once for the handshake workloads (default 32; "
                        "quick 8)")
    p.add_argument("--workloads", help="comma list of: " + ",".join(WORKLOADS))
    p.add_argument("--servers", default=",".join(SERVERS), help="comma list (default: all)")
    p.add_argument("--workers", help="comma list of worker counts (default 1,2; quick: 1)")
    p.add_argument("--placements", help="comma list of pinned,shared (default both; quick: "
                                        "pinned)")
    p.add_argument("--duration", type=int, help="seconds per wrk run (default 6; quick 2)")
    p.add_argument("--warmup", type=int, help="seconds of wrk before each run (default 1; "
                                              "quick 0)")
    p.add_argument("--connections", type=int, help="wrk connections (default 64; quick 16)")
    p.add_argument("--idle-conns", type=int, help="idle connections (default 10000; quick "
                                                  "1000)")
    p.add_argument("--failover-rate", type=int, help="requests/s (default 500; quick 300)")
    p.add_argument("--repeat", type=int,
                   help="measure each wrk workload this many times, the servers taking turns; "
                        "the tables keep the least disturbed run (default 2; quick 1)")
    p.add_argument("--syscalls", action="store_true",
                   help="once per cell, a 3 s wrk run under perf stat counting the server's "
                        "system calls per request (needs perf)")
    p.add_argument("--wait-quiet", type=float,
                   help="before each measured run, wait up to this many seconds for the rest of "
                        "the machine to use under 10%% of the CPUs (default 20; quick 0)")
    p.add_argument("--out", help="output directory (default bench/out/YYYYmmdd-HHMMSS)")
    p.add_argument("--sidestep", default=os.environ.get("SST_BIN") or
                   os.path.join(ROOT, "build", "sidestep"), help="sidestep binary")
    p.add_argument("--stub", default=os.environ.get("SST_STUB") or
                   os.path.join(ROOT, "build", "tests", "sidestep-stub"), help="stub binary")
    p.add_argument("--tls-load", help="the handshake load generator (default: tls-load beside "
                                      "the stub binary)")
    p.add_argument("--update-doc", action="store_true",
                   help="rewrite the results section of docs/benchmarks.md and the chart")
    p.add_argument("--report-only", metavar="RESULTS_JSON",
                   help="no runs: rebuild the tables and chart from a results.json")
    a = p.parse_args(argv)

    quick = a.quick
    if a.workloads:
        a.workload_list = _list(a.workloads, WORKLOADS, "workload")
    elif a.direct:
        a.workload_list = ["direct"]
    elif a.tls:
        a.workload_list = list(TLS_WORKLOADS)
    else:  # the plain-HTTP matrix; the TLS workloads run with --tls
        a.workload_list = [w for w in WORKLOADS if w not in TLS_WORKLOADS and
                           (w != "direct" or not quick)]
    a.server_list = _list(a.servers, SERVERS, "server")
    a.worker_list = [int(w) for w in a.workers.split(",")] if a.workers else \
        ([1] if quick or a.direct or a.tls else [1, 2])
    cpus = sorted(os.sched_getaffinity(0))
    a.cpus = cpus
    default_placements = ["pinned", "shared"] if len(cpus) >= 2 else ["shared"]
    if quick or a.tls:
        default_placements = default_placements[:1]
    a.placement_list = _list(a.placements, ("pinned", "shared"), "placement") \
        if a.placements else default_placements
    if "pinned" in a.placement_list and len(cpus) < 2:
        p.error("the pinned placement needs two cores; this process may use %s" % cpus)
    a.duration = a.duration or (2 if quick else 4 if a.tls else 6)
    a.warmup = a.warmup if a.warmup is not None else (0 if quick else 1)
    a.connections = a.connections or (16 if quick else 64)
    a.hs_conns = a.hs_conns or (8 if quick else 32)
    a.tls_load = a.tls_load or os.path.join(os.path.dirname(os.path.abspath(a.stub)),
                                            "tls-load")
    a.idle_conns = a.idle_conns or (1000 if quick else 10000)
    a.failover_rate = a.failover_rate or (300 if quick else 500)
    a.wait_quiet = a.wait_quiet if a.wait_quiet is not None else \
        (0 if quick else 5 if a.tls else 20)
    a.repeat = max(1, a.repeat or (1 if quick else 2))
    a.failover_conns = 2 if quick else 4
    a.failover_seconds = 3.5 if quick else 8.0
    a.failover_kill_at = 1.0 if quick else 2.5
    return a


def _list(text, allowed, what):
    items = [x.strip() for x in text.split(",") if x.strip()]
    for x in items:
        if x not in allowed:
            raise SystemExit("unknown %s %r (known: %s)" % (what, x, ", ".join(allowed)))
    return items


def placement_cpus(placement, cpus):
    """(client cores, server cores): pinned puts wrk, the stub and the harness's own clients on
    the first core and the server on the second; shared pins nothing."""
    if placement == "pinned":
        return [cpus[0]], [cpus[1]]
    return None, None


def machine_info():
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {"nproc": os.cpu_count(), "cpu": model, "kernel": platform.release(),
            "loadavg_at_start": [round(x, 2) for x in load],
            "nofile": procs.raise_nofile()}


class Bench:
    def __init__(self, args, out_dir):
        self.a = args
        self.out = out_dir
        self.procs = procs.Procs()
        self.ports = procs.Ports()
        nofile = procs.raise_nofile()
        # room for the idle workload's clients plus listeners, probes and upstream sockets
        maxconn = min(max(args.idle_conns + 2000, 4096), nofile - 100)
        self.launch = servers.Launcher(self.procs, self.ports, args.sidestep, args.stub,
                                       out_dir, nofile, maxconn)
        self.certs = tls.Certs(out_dir)
        self.results = []

    def log(self, msg):
        print(msg, file=sys.stderr, flush=True)

    def quiet(self):
        """Waits (bounded by --wait-quiet) until other processes use under 10% of the machine
        over one second; returns (seconds waited, their last share in %)."""
        if self.a.wait_quiet <= 0:
            return 0.0, None
        t0 = time.monotonic()
        while True:
            o = procs.Others()
            time.sleep(1.0)
            pct, _ = o.finish(0.0)
            waited = time.monotonic() - t0
            if pct < 10.0 or waited >= self.a.wait_quiet:
                if pct >= 10.0:
                    self.log("  (machine still busy: others use %.0f%% after %.0f s; going on)"
                             % (pct, waited))
                return waited, pct

    # --- one wrk workload against one server ---------------------------------------------------

    def run_wrk(self, placement, workers, workload, kind, rnd=0):
        mode, method, target, body, want = WRK_WORKLOADS[workload]
        is_tls = mode.endswith("-tls")
        ccpu, scpu = placement_cpus(placement, self.a.cpus)
        row = {"type": "wrk", "placement": placement, "workers": workers, "workload": workload,
               "server": kind, "round": rnd, "error": None}
        stub = server = None
        try:
            if mode.startswith("proxy"):
                stub = self.launch.stub("us-east", workers, ccpu)
            server = self.launch.server(kind, mode, workers, scpu,
                                        stub_port=stub.port if stub else None,
                                        extra=self.certs.values("ecdsa") if is_tls else None)
            self._check(server, method, target, body, want, tls=is_tls)
            before, after = self._measure(row, server.port, server, stub, target, body, ccpu,
                                          tls=is_tls)
            row["user_s"] = after.user_seconds_since(before)
            row["sys_s"] = after.sys_seconds_since(before)
            row["peak_rss_kib"] = after.hwm_kib
            row["processes"] = len(after.pids)
            if self.a.syscalls and rnd == 0:  # counts barely vary: once per cell
                row["syscalls_per_req"] = syscalls.run_counted(
                    self.procs, server.pids(), self.out,
                    "%s-%s-w%d-%s" % (placement, workload, workers, kind),
                    lambda: wrk.parse(self._wrk(server.port, target, body, 3, ccpu,
                                                tls=is_tls)))
        except MEASURE_ERRORS as e:
            self._failed(row, e)
        finally:
            self._stop(server, row, stub)
        self.results.append(row)
        if not row["error"]:
            self.log("  %-13s %-8s w%d %-6s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms  "
                     "%5.2f us/req  %6.1f MiB  errors %d  others %.0f%%"
                     % (workload, kind, workers, placement, row["rps"], row["p50_ms"],
                        row["p99_ms"], row["cpu_us_per_req"] or 0, row["peak_rss_kib"] / 1024,
                        row["errors"], row["others_pct"]))
        return row

    def _check(self, server, method, target, body, want, tls=False):
        """One request before the load: the server must answer what the workload expects."""
        payload = b"a" * body if body else b""
        status, headers, _ = clients.check_request(server.port, method, target, payload,
                                                   tls=tls)
        if status != want:
            raise RuntimeError("%s answered %d to %s %s, expected %d"
                               % (server.kind, status, method, target, want))
        if want == 307 and headers.get("location") != LOCATION + target:
            raise RuntimeError("%s sent Location %r, expected %r"
                               % (server.kind, headers.get("location"), LOCATION + target))

    def _wrk(self, port, target, body, seconds, cpus, tls=False):
        argv = wrk.argv(port, target, self.a.connections, seconds, body, HERE, tls=tls)
        return self._run_load(argv, seconds, cpus)

    def _run_load(self, argv, seconds, cpus):
        """Runs a load generator (wrk, tls-load) for about `seconds`; its stdout, also
        appended with the command to wrk.log. A non-zero exit is an error (a sanitizer's
        report, a usage error)."""
        log = os.path.join(self.out, "wrk.log")
        with open(log, "ab") as f:
            f.write(("\n$ %s\n" % " ".join(argv)).encode())
        proc = self.procs.start(os.path.basename(argv[0]), argv, log, cpus=cpus,
                                stdout=subprocess.PIPE)
        try:
            out, _ = proc.popen.communicate(timeout=seconds + 30)
        finally:
            self.procs.stop(proc)
        text = out.decode("utf-8", "replace")
        with open(log, "a") as f:
            f.write(text)
        if proc.exit_code != 0:
            raise RuntimeError("%s exited with %s (see %s)"
                               % (os.path.basename(argv[0]), proc.exit_code, log))
        return text

    def _measure(self, row, port, watched, stub, target, body, ccpu, tls=False, load=None):
        """The timed wrk run at `port`, after the quiet wait and the warm-up: fills row with
        wrk's figures and the CPU the watched processes spent per request (the stub's, when it
        is not the one watched, goes to stub_cpu_s and counts as the run's own for others_pct).
        `load(seconds)`, when given, replaces wrk: it returns the figures, "requests" among them.
        Returns the process samples before and after."""
        if load is None:
            def load(seconds):
                return wrk.parse(self._wrk(port, target, body, seconds, ccpu, tls=tls))
        row["quiet_wait_s"], row["others_before_pct"] = self.quiet()
        if self.a.warmup:
            load(self.a.warmup)
        others = procs.Others()
        before = procs.Sample(watched.pids())
        stub_before = procs.Sample(stub.pids()) if stub is not None and stub is not watched \
            else None
        figures = load(self.a.duration)
        after = procs.Sample(watched.pids())
        stub_cpu = procs.Sample(stub.pids()).cpu_seconds_since(stub_before) \
            if stub_before is not None else 0.0
        row["others_pct"], row["steal_pct"] = others.finish(
            after.cpu_seconds_since(before) + stub_cpu)
        row["stub_cpu_s"] = stub_cpu
        row.update(figures)
        row["cpu_s"] = after.cpu_seconds_since(before)
        row["cpu_us_per_req"] = row["cpu_s"] * 1e6 / row["requests"] if row["requests"] \
            else None
        if "socket_errors" in row:
            row["errors"] = sum(row["socket_errors"].values()) + row["non_2xx_3xx"]
        return before, after

    def _failed(self, row, e):
        row["error"] = str(e).strip().splitlines()[0][:300] if str(e).strip() else repr(e)
        self.log("  FAILED: %s" % row["error"])

    def _stop(self, server, row, stub=None):
        """Stops the server, then the stub behind it."""
        if server is not None:
            code = self.procs.stop(server.proc)
            # sidestep promises a clean exit (0) on SIGTERM; the others die by the signal
            if server.kind == "sidestep" and code != 0:
                note = "sidestep exited with %s after SIGTERM (log: %s)" % (
                    code, server.proc.log_path)
                row.setdefault("notes", []).append(note)
                self.log("  NOTE: " + note)
        if stub is not None:
            self.procs.stop(stub.proc)

    # --- TLS handshakes: a new connection per request --------------------------------------------

    def run_handshake(self, placement, workers, workload, kind, rnd=0):
        """tls-load against the server's TLS redirect config: full or resumed handshakes, one
        GET answered 307 on each connection. CPU per handshake is the server's user + system
        time over the handshakes completed, TCP accept and close included."""
        keytype, mode = HANDSHAKE_WORKLOADS[workload]
        ccpu, scpu = placement_cpus(placement, self.a.cpus)
        row = {"type": "handshake", "placement": placement, "workers": workers,
               "workload": workload, "server": kind, "round": rnd, "error": None,
               "key": keytype, "mode": mode, "connections": self.a.hs_conns}
        server = None

        def load(seconds):
            argv = tls.load_argv(self.a.tls_load, server.port, HANDSHAKE_TARGET, seconds,
                                 self.a.hs_conns, mode)
            res = tls.parse_load(self._run_load(argv, seconds, ccpu))
            wrong = sum(n for code, n in res["statuses"].items() if code != "307")
            return {"requests": res["handshakes"], "handshakes": res["handshakes"],
                    "resumed": res["resumed"], "answers": res["answers"],
                    "negotiated": res.get("negotiated"),
                    "other_negotiated": res.get("other_negotiated"),
                    "statuses": res["statuses"], "load_errors": res["errors"],
                    "seconds": res["seconds"], "rps": res["handshakes"] / res["seconds"],
                    "errors": sum(res["errors"].values()) + wrong}

        try:
            server = self.launch.server(kind, "redirect-tls", workers, scpu,
                                        extra=self.certs.values(keytype))
            self._check(server, "GET", HANDSHAKE_TARGET, None, 307, tls=True)
            before, after = self._measure(row, server.port, server, None, None, None, ccpu,
                                          load=load)
            row["user_s"] = after.user_seconds_since(before)
            row["sys_s"] = after.sys_seconds_since(before)
            row["peak_rss_kib"] = after.hwm_kib
            row["resumed_pct"] = 100.0 * row["resumed"] / row["handshakes"] \
                if row["handshakes"] else None
        except MEASURE_ERRORS as e:
            self._failed(row, e)
        finally:
            self._stop(server, row)
        self.results.append(row)
        if not row["error"]:
            self.log("  %-13s %-8s w%d %-6s %7.0f handshakes/s  %7.1f us/handshake  resumed "
                     "%3.0f%%  errors %d  others %.0f%%"
                     % (workload, kind, workers, placement, row["rps"],
                        row["cpu_us_per_req"] or 0, row["resumed_pct"] or 0, row["errors"],
                        row["others_pct"]))
        return row

    # --- idle keep-alive connections -----------------------------------------------------------

    def run_idle(self, placement, workers, kind):
        ccpu, scpu = placement_cpus(placement, self.a.cpus)
        row = {"type": "idle", "placement": placement, "workers": workers, "workload": "idle",
               "server": kind, "error": None, "target_conns": self.a.idle_conns}
        server = holder = None
        saved = os.sched_getaffinity(0)
        try:
            server = self.launch.server(kind, "redirect", workers, scpu)
            self._check(server, "GET", "/idle?k=1", None, 307)
            time.sleep(0.5)
            before = procs.Sample(server.pids())
            if ccpu:
                os.sched_setaffinity(0, ccpu)
            holder = clients.IdleHolder(server.port, self.a.idle_conns)
            res = holder.open()
            time.sleep(1.0)
            holder.count_closed()
            after = procs.Sample(server.pids())
            row.update({"opened": res.opened, "failed": res.failed, "seconds": res.seconds,
                        "statuses": res.statuses, "closed_by_server": res.closed_by_server,
                        "rss_before_kib": before.rss_kib, "rss_after_kib": after.rss_kib,
                        "rss_delta_kib": after.rss_kib - before.rss_kib,
                        "peak_rss_kib": after.hwm_kib})
            row["kib_per_conn"] = row["rss_delta_kib"] / res.opened if res.opened else None
            if res.opened < self.a.idle_conns or res.closed_by_server:
                row.setdefault("notes", []).append(
                    "held %d of %d (failed %d, closed by the server %d)"
                    % (res.opened, self.a.idle_conns, res.failed, res.closed_by_server))
        except (RuntimeError, ValueError, OSError, clients.HttpError) as e:
            self._failed(row, e)
        finally:
            os.sched_setaffinity(0, saved)
            if holder is not None:
                holder.close()
            self._stop(server, row)
        self.results.append(row)
        if not row["error"]:
            self.log("  idle          %-8s w%d %-6s %d held, RSS %+.1f MiB (%.2f KiB/conn)"
                     % (kind, workers, placement, row["opened"], row["rss_delta_kib"] / 1024,
                        row["kib_per_conn"] or 0))
        return row

    # --- failover under load -------------------------------------------------------------------

    def run_failover(self, placement, workers, label, kind, mode):
        ccpu, scpu = placement_cpus(placement, self.a.cpus)
        row = {"type": "failover", "placement": placement, "workers": workers,
               "workload": "failover", "server": label, "kind": kind, "error": None}
        primary = secondary = server = None
        saved = os.sched_getaffinity(0)
        try:
            primary = self.launch.stub("us-east", 1, ccpu)
            if kind == "sidestep":
                secondary = self.launch.stub("eu-west", 1, ccpu)
            server = self.launch.server(kind, mode, workers, scpu, stub_port=primary.port,
                                        stub2_port=secondary.port if secondary else None)
            self._check(server, "GET", "/failover?warm=1", None, 200)
            time.sleep(1.2)  # let the first health checks pass everywhere
            pid = primary.proc.pid
            if ccpu:
                os.sched_setaffinity(0, ccpu)

            def kill():
                os.kill(pid, signal.SIGKILL)

            res = clients.run_paced(server.port, self.a.failover_rate, self.a.failover_conns,
                                    self.a.failover_seconds, self.a.failover_kill_at, kill)
            row.update(res.to_dict())
            row["statuses"] = {str(k): v for k, v in res.statuses.items()}
        except (RuntimeError, ValueError, OSError, clients.HttpError) as e:
            self._failed(row, e)
        finally:
            os.sched_setaffinity(0, saved)
            self._stop(server, row)
            for s in (primary, secondary):
                if s is not None:
                    self.procs.stop(s.proc)
        self.results.append(row)
        if not row["error"]:
            self.log("  failover      %-29s w%d %-6s %d req, statuses %s, errors %s, last "
                     "non-307 at +%.0f ms"
                     % (label, workers, placement, row["requests"], row["statuses"],
                        row["errors"], row["last_non307_ms"]))
        return row

    # --- stub direct against sidestep in front of it -------------------------------------------

    def run_direct(self, placement, workers):
        ccpu, scpu = placement_cpus(placement, self.a.cpus)
        target = "/bench/get?id=12345"
        for via in ("stub", "sidestep"):
            row = {"type": "direct", "placement": placement, "workers": workers,
                   "workload": "direct", "server": via, "error": None}
            stub = server = None
            try:
                # the stub gets the server's core when it is the server under test
                stub = self.launch.stub("us-east", workers, scpu if via == "stub" else ccpu)
                port = stub.port
                watched = stub
                if via == "sidestep":
                    server = self.launch.server("sidestep", "proxy", workers, scpu,
                                                stub_port=stub.port)
                    port = server.port
                    watched = server
                status, _, _ = clients.check_request(port, "GET", target)
                if status != 200:
                    raise RuntimeError("%s answered %d" % (via, status))
                self._measure(row, port, watched, stub, target, None, ccpu)
            except MEASURE_ERRORS as e:
                self._failed(row, e)
            finally:
                self._stop(server, row, stub)
            self.results.append(row)
            if not row["error"]:
                self.log("  direct        %-8s w%d %-6s %9.0f req/s  p50 %6.3f ms  p99 %6.3f ms"
                         % (via, workers, placement, row["rps"], row["p50_ms"], row["p99_ms"]))

    # --- the whole matrix ----------------------------------------------------------------------

    def run(self):
        a = self.a
        for placement in a.placement_list:
            for workers in a.worker_list:
                self.log("== %s, %d worker%s" % (placement, workers, "" if workers == 1 else "s"))
                for workload in a.workload_list:
                    if workload in WRK_WORKLOADS:
                        for rnd in range(a.repeat):
                            for kind in a.server_list:
                                self.run_wrk(placement, workers, workload, kind, rnd)
                    elif workload in HANDSHAKE_WORKLOADS:
                        for rnd in range(a.repeat):
                            for kind in a.server_list:
                                self.run_handshake(placement, workers, workload, kind, rnd)
                    elif workload == "idle":
                        for kind in a.server_list:
                            self.run_idle(placement, workers, kind)
                    elif workload == "failover":
                        for label, kind, mode in FAILOVER_VARIANTS:
                            if kind in a.server_list:
                                self.run_failover(placement, workers, label, kind, mode)
                    elif workload == "direct":
                        for rnd in range(a.repeat):
                            self.run_direct(placement, workers)


def check_tools(args):
    missing = [t for t in ("wrk", "taskset") if shutil.which(t) is None]
    for t in args.server_list:
        if t != "sidestep" and shutil.which(t) is None:
            missing.append(t)
    paths = [args.sidestep, args.stub]
    if any(w in HANDSHAKE_WORKLOADS for w in args.workload_list):
        paths.append(args.tls_load)
    for path in paths:
        if not os.access(path, os.X_OK):
            missing.append(path)
    return missing


def report_only(args):
    """Rebuilds the report from one results.json, or merges several (comma-separated: runs
    taken at different times, e.g. a re-run of cells a busy machine disturbed) into a new
    directory; the tables then keep, per cell, the least disturbed run of all of them."""
    paths = [p for p in args.report_only.split(",") if p]
    datas = []
    for path in paths:
        with open(path) as f:
            datas.append(json.load(f))
    if len(datas) == 1:
        out_dir = os.path.dirname(os.path.abspath(paths[0]))
        return report.emit(datas[0], out_dir, ROOT, args.update_doc)
    same = ("duration_s", "warmup_s", "connections", "wrk_threads", "idle_conns",
            "failover_rate", "failover_conns", "failover_seconds", "failover_kill_at_s")
    for path, d in zip(paths[1:], datas[1:]):
        diff = [k for k in same
                if d["meta"]["settings"].get(k) != datas[0]["meta"]["settings"].get(k)]
        if diff:
            print("bench: %s was measured with other settings (%s); not merged"
                  % (path, ", ".join(diff)), file=sys.stderr)
            return 2
    data = {"meta": dict(datas[0]["meta"]), "results": []}
    data["meta"]["runs"] = [{k: d["meta"].get(k) for k in ("command", "date", "elapsed_s",
                                                           "interrupted", "loadavg_at_end")}
                            | {"loadavg_at_start": d["meta"]["machine"]["loadavg_at_start"]}
                            for d in datas]
    for d in datas:
        data["results"].extend(d["results"])
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.abspath(args.out or os.path.join(HERE, "out", "merged-" + stamp))
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(data, f, indent=1)
    rc = report.emit(data, out_dir, ROOT, args.update_doc)
    print("bench: merged results in %s" % out_dir, file=sys.stderr)
    return rc


def main(argv):
    # nginx and haproxy live in /usr/sbin, which a non-root PATH may lack
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    args = parse_args(argv)
    if args.report_only:
        return report_only(args)

    missing = check_tools(args)
    if args.syscalls and syscalls.available():
        missing.append("--syscalls: " + syscalls.available())
    if missing:
        print("bench: missing: %s (scripts/install-deps.sh installs the packages; build first)"
              % ", ".join(missing), file=sys.stderr)
        return 2
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.abspath(args.out or os.path.join(HERE, "out", stamp))
    os.makedirs(out_dir, exist_ok=True)
    os.chmod(out_dir, 0o755)
    # a harness started in the background inherits an ignored SIGINT: take it back
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python3 bench/bench.py " + " ".join(argv),
        "machine": machine_info(),
        "versions": servers.versions(args.sidestep),
        "settings": {"duration_s": args.duration, "warmup_s": args.warmup,
                     "connections": args.connections, "wrk_threads": 1,
                     "repeat": args.repeat, "wait_quiet_s": args.wait_quiet,
                     "idle_conns": args.idle_conns, "failover_rate": args.failover_rate,
                     "failover_conns": args.failover_conns,
                     "failover_seconds": args.failover_seconds,
                     "failover_kill_at_s": args.failover_kill_at,
                     "workers": args.worker_list, "placements": args.placement_list,
                     "workloads": args.workload_list, "servers": args.server_list,
                     "quick": args.quick, "tls": args.tls, "hs_conns": args.hs_conns},
    }
    bench = Bench(args, out_dir)
    started = time.monotonic()
    interrupted = False
    try:
        bench.run()
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
        print("bench: interrupted, stopping everything", file=sys.stderr)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the cleanup short
        bench.procs.stop_all()
    meta["processes"] = bench.procs.history
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta["interrupted"] = interrupted
    try:
        meta["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    except OSError:
        pass
    data = {"meta": meta, "results": bench.results}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(data, f, indent=1)
    rc = report.emit(data, out_dir, ROOT, args.update_doc and not interrupted)
    print("bench: results in %s" % out_dir, file=sys.stderr)
    if interrupted:
        return 130
    return rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
