#!/usr/bin/env python3
"""Gray failures: sidestep and HAProxy while the primary region hangs, drops SYNs, slows down or
resets mid-response, under a constant request rate (issue 15).

    python3 bench/failover.py                  5 faults x 3 workloads x 2 servers, ~8 minutes
    python3 bench/failover.py --quick          one fault (silence), GET only, short windows
    python3 bench/failover.py --update-doc     also write the "Gray failures" results into
                                               docs/benchmarks.md (block of --label)
    python3 bench/failover.py --sidestep-try-timeout 300ms --sidestep-idempotency-header \\
        Idempotency-Key --label after          once sidestep has those keys
    python3 bench/failover.py --report-only bench/out/gray-RUN/results.json [--update-doc]

Per scenario: three stubs (us-east-1, us-east-2, eu-west), one fault relay process in front of
all three (bench/benchlib/faults.py; the probes go through it too), the server under test in
front of the relays, then an open-loop client (bench/benchlib/openloop.py) at --rate requests/s
for --before seconds, the fault injected into both primary relays (--scope region) or the first
only (--scope one), then --after seconds more. A 307 to eu-west (sidestep) or a 200 answered by
the eu-west stub (HAProxy's backup server) is a failover answer. Standard library only; every
process started here is stopped by PID at the end, on error and on Ctrl-C. See
docs/benchmarks.md, "Gray failures".
"""

import argparse
import datetime
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, HERE)

from benchlib import clients, faults, openloop, procs, report, servers  # noqa: E402

FAULTS = faults.KINDS
WORKLOADS = ("get", "post", "post-key")
SERVERS = ("sidestep", "haproxy")
PRIMARY = ("us-east-1", "us-east-2")
FAILOVER = "eu-west"
LOCATION = "http://eu-west.example"
ID_HEADER = "X-Bench-Id"
KEY_HEADER = "Idempotency-Key"
SLOW_S = 1.0  # "waited more than 1 s"
DOC_SECTION = "## Gray failures"
_KEY = re.compile(r"^[a-z][a-z0-9_]*$")
_VALUE = re.compile(r"^[A-Za-z0-9_.%:/-]+$")


class Interrupted(Exception):
    pass


def on_signal(signum, frame):
    raise Interrupted("signal %d" % signum)


def _kv(text):
    """KEY=VALUE for a YAML flow mapping: plain scalars only, so no quoting is needed."""
    key, sep, value = text.partition("=")
    if not sep or not _KEY.match(key) or not _VALUE.match(value):
        raise argparse.ArgumentTypeError("want key=value (key [a-z0-9_], value [A-Za-z0-9_.%:/-])"
                                         ", got %r" % text)
    return key, value


def parse_args(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true",
                   help="fault silence, workload get, 1 s before and 4 s after the fault")
    p.add_argument("--faults", help="comma list of: " + ",".join(FAULTS))
    p.add_argument("--workloads", help="comma list of: get (GET), post (POST, JSON body), "
                                       "post-key (the same with an Idempotency-Key)")
    p.add_argument("--servers", default=",".join(SERVERS), help="comma list (default: both)")
    p.add_argument("--scope", choices=("region", "one"), default="region",
                   help="the fault hits both primary backends (region, default) or only "
                        "us-east-1 (one: a per-try timeout can then retry on us-east-2)")
    p.add_argument("--rate", type=int, default=100, help="requests/s (default 100)")
    p.add_argument("--before", type=float, help="seconds of load before the fault (default 3; "
                                                "quick 1)")
    p.add_argument("--after", type=float, help="seconds of load after it (default 8; quick 4)")
    p.add_argument("--timeout", type=float, default=10.0,
                   help="the client gives a request up this many seconds after its send time "
                        "(default 10)")
    p.add_argument("--delay", type=float, default=2.0, help="the latency fault, seconds")
    p.add_argument("--size", type=int, default=1024, help="stub response body bytes")
    p.add_argument("--placement", choices=("pinned", "shared"),
                   help="pinned (default with 2+ cores): client, relays and stubs on the first "
                        "core, the server on the second; shared: nothing pinned")
    p.add_argument("--wait-quiet", type=float, default=0.0,
                   help="before each scenario, wait up to this many seconds for the rest of the "
                        "machine to use under 10%% of the CPUs (default 0: no wait)")
    p.add_argument("--no-verify", action="store_true",
                   help="skip the check that each fault does what it says on this kernel")
    p.add_argument("--selfcheck", type=float,
                   help="seconds of load straight at a stub and through a pass-through relay, "
                        "to measure the client itself (default 3; quick 1; 0 skips)")
    g = p.add_argument_group("sidestep keys (passed only when asked, so today's sidestep runs "
                             "the same harness)")
    g.add_argument("--sidestep-try-timeout", metavar="DURATION",
                   help="routes[].try_timeout (also sets the targets check)")
    g.add_argument("--sidestep-idempotency-header", metavar="NAME",
                   help="routes[].idempotency_header, e.g. Idempotency-Key")
    g.add_argument("--sidestep-slow", metavar="DURATION", help="health.slow")
    g.add_argument("--sidestep-route", type=_kv, action="append", default=[],
                   metavar="KEY=VALUE", help="any other route key (repeatable)")
    g.add_argument("--sidestep-health", type=_kv, action="append", default=[],
                   metavar="KEY=VALUE", help="any other top-level health key, e.g. "
                                             "passive_fall=2 (repeatable)")
    g.add_argument("--sidestep-timeouts", type=_kv, action="append", default=[],
                   metavar="KEY=VALUE", help="timeouts keys, e.g. connect=500ms (repeatable)")
    h = p.add_argument_group("HAProxy")
    h.add_argument("--haproxy-connect", default="2s",
                   help="timeout connect (default 2s, sidestep's default timeouts.connect)")
    h.add_argument("--haproxy-line", action="append", default=[], metavar="LINE",
                   help="a line added to the backend, e.g. 'http-request disable-l7-retry if "
                        "METH_POST' (repeatable)")
    p.add_argument("--label", help="names this run's block in docs/benchmarks.md (default: "
                                   "before, or after when any sidestep key is passed)")
    p.add_argument("--out", help="output directory (default bench/out/gray-YYYYmmdd-HHMMSS)")
    p.add_argument("--sidestep", default=os.environ.get("SST_BIN") or
                   os.path.join(ROOT, "build", "sidestep"), help="sidestep binary")
    p.add_argument("--stub", default=os.environ.get("SST_STUB") or
                   os.path.join(ROOT, "build", "tests", "sidestep-stub"), help="stub binary")
    p.add_argument("--update-doc", action="store_true",
                   help="write the results into docs/benchmarks.md, section Gray failures")
    p.add_argument("--report-only", metavar="RESULTS_JSON",
                   help="no runs: print the tables of a results.json (and --update-doc)")
    a = p.parse_args(argv)

    a.fault_list = _list(a.faults, FAULTS, "fault") if a.faults else \
        (["silence"] if a.quick else list(FAULTS))
    a.workload_list = _list(a.workloads, WORKLOADS, "workload") if a.workloads else \
        (["get"] if a.quick else list(WORKLOADS))
    a.server_list = _list(a.servers, SERVERS, "server")
    a.before = a.before if a.before is not None else (1.0 if a.quick else 3.0)
    a.after = a.after if a.after is not None else (4.0 if a.quick else 8.0)
    a.selfcheck = a.selfcheck if a.selfcheck is not None else (1.0 if a.quick else 3.0)
    cpus = sorted(os.sched_getaffinity(0))
    a.placement = a.placement or ("pinned" if len(cpus) >= 2 else "shared")
    if a.placement == "pinned" and len(cpus) < 2:
        p.error("--placement pinned needs two cores; this process may use %s" % cpus)
    a.ccpu, a.scpu = ([cpus[0]], [cpus[1]]) if a.placement == "pinned" else (None, None)
    if a.rate <= 0 or a.before <= 0 or a.after <= 0 or a.timeout <= 0:
        p.error("--rate, --before, --after and --timeout must be positive")
    route = list(a.sidestep_route)
    if a.sidestep_try_timeout:
        route.append(_kv("try_timeout=" + a.sidestep_try_timeout))
    if a.sidestep_idempotency_header:
        route.append(_kv("idempotency_header=" + a.sidestep_idempotency_header))
    health = list(a.sidestep_health)
    if a.sidestep_slow:
        health.append(_kv("slow=" + a.sidestep_slow))
    a.sidestep_keys = {"route": route, "health": health, "timeouts": list(a.sidestep_timeouts)}
    extra = any(a.sidestep_keys.values())
    a.label = a.label or ("after" if extra else "before")
    if not re.match(r"^[a-z0-9][a-z0-9-]*$", a.label):
        p.error("--label: lower-case letters, digits and '-'")
    return a


def _list(text, allowed, what):
    items = [x.strip() for x in text.split(",") if x.strip()]
    for x in items:
        if x not in allowed:
            raise SystemExit("unknown %s %r (known: %s)" % (what, x, ", ".join(allowed)))
    return items


def parse_duration(text):
    """Seconds of a sidestep duration (500ms, 2s, 1m), or None."""
    m = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h)", text or "")
    if not m:
        return None
    return float(m.group(1)) * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[m.group(2)]


def sidestep_values(keys):
    """The template values for the optional sidestep keys."""
    route = "".join("    %s: %s\n" % kv for kv in keys["route"]).rstrip("\n")
    health = "".join(", %s: %s" % kv for kv in keys["health"])
    timeouts = "".join(", %s: %s" % kv for kv in keys["timeouts"])
    return {"ROUTE_EXTRA": route, "HEALTH_EXTRA": health, "TIMEOUTS_EXTRA": timeouts}


def request_maker(workload, scenario, rnd):
    """make_request(i) -> bytes for the load generator. Every request carries X-Bench-Id
    (unique in the run, counted at the relays); post-key also an Idempotency-Key in the IETF
    draft's form (a quoted string)."""
    host = "Host: bench.example\r\n"
    prefix = "%s-%s" % (scenario, rnd)

    def get(i):
        return ("GET /gray/get?i=%d HTTP/1.1\r\n%s%s: %s-%d\r\n\r\n"
                % (i, host, ID_HEADER, prefix, i)).encode("ascii")

    def post(i, key):
        body = json.dumps({"order": i, "sku": "gray-%d" % (i % 97), "qty": 1}).encode()
        head = ("POST /gray/post?i=%d HTTP/1.1\r\n%sContent-Type: application/json\r\n"
                "Content-Length: %d\r\n%s: %s-%d\r\n" % (i, host, len(body), ID_HEADER, prefix,
                                                          i))
        if key:
            head += '%s: "%s"\r\n' % (KEY_HEADER, uuid.uuid4())
        return (head + "\r\n").encode("ascii") + body

    if workload == "get":
        return get
    return lambda i: post(i, workload == "post-key")


# --- one scenario ------------------------------------------------------------------------------

_SST_EVENT = re.compile(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+)Z event (backend|region) (\S+) "
                        r"(\w+) -> (\w+) reason=(\w+)", re.M)
_HAP_DOWN = re.compile(r"Server primary/(\S+) is DOWN, reason: ([^,.]+)(?:, info: \"([^\"]*)\")?")


def down_events(kind, log, fault_wall):
    """What took the primary down, from the server's log: sidestep's events (reason, ms after
    the fault, from its UTC timestamps), HAProxy's DOWN warnings (reason; they carry no time)."""
    out = []
    if kind == "sidestep":
        for m in _SST_EVENT.finditer(log):
            when = datetime.datetime.strptime(m.group(1), "%Y-%m-%dT%H:%M:%S.%f").replace(
                tzinfo=datetime.timezone.utc).timestamp()
            if m.group(5) == "down":
                out.append({"what": "%s %s" % (m.group(2), m.group(3)), "reason": m.group(6),
                            "ms": round((when - fault_wall) * 1000)})
    else:
        for m in _HAP_DOWN.finditer(log):
            info = (m.group(3) or "").rpartition("last one was: ")[2]
            reason = m.group(2) + (": " + info if info else "")
            out.append({"what": "server " + m.group(1), "reason": reason, "ms": None})
    return out


def down_text(events):
    """One cell: the reasons that took the primary's backends down, with sidestep's time of
    the region's fall."""
    reasons = []
    for e in events:
        if e["what"].startswith("region"):
            continue
        if e["reason"] not in reasons:
            reasons.append(e["reason"])
    region = [e for e in events if e["what"] == "region us-east"]
    if not reasons:
        return "—"
    text = ", ".join(reasons)
    if region:
        text += " at %+d ms" % region[0]["ms"]
    return text


def classify(rec):
    """primary, failover or error, for one request record."""
    if rec["error"]:
        return "error"
    st = rec["status"]
    if st == 200 and (rec["origin"] or "").startswith("us-east"):
        return "primary"
    if st == 200 and rec["origin"] == FAILOVER:
        return "failover"
    if st in (307, 308) and (rec["location"] or "").startswith(LOCATION + "/"):
        return "failover"
    return "error"


def error_kind(rec):
    return rec["error"] or str(rec["status"])


def pct(sorted_vals, p):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(len(sorted_vals) * p))]


def analyse(records, fault_at, ids, workload):
    """The scenario's figures from per-request records (dicts) and the relay's id table."""
    out = {"requests": len(records)}
    after = [r for r in records if r["due"] >= fault_at]
    inflight = [r for r in records if r["due"] < fault_at and (r["done"] or 0) > fault_at]
    inflight_ids = {r["id"] for r in inflight}
    before = [r for r in records if r["due"] < fault_at and r["id"] not in inflight_ids]
    kinds = {}
    errs = {}
    for r in records:
        k = classify(r)
        kinds[k] = kinds.get(k, 0) + 1
        if k == "error":
            e = error_kind(r)
            errs[e] = errs.get(e, 0) + 1
    out["answers"] = kinds
    out["errors_by_kind"] = errs
    out["errors"] = kinds.get("error", 0)
    out["errors_in_flight"] = sum(1 for r in inflight if classify(r) == "error")
    out["errors_before"] = sum(1 for r in before if classify(r) == "error")
    out["sent_after"] = len(after)
    out["in_flight"] = len(inflight)
    lat = lambda r: (r["done"] - r["due"]) if r["done"] is not None else None  # noqa: E731
    out["slow"] = sum(1 for r in records if lat(r) is not None and lat(r) > SLOW_S)
    la = sorted(lat(r) * 1000 for r in after if lat(r) is not None)
    out["p50_after_ms"] = pct(la, 0.50)
    out["p99_after_ms"] = pct(la, 0.99)
    out["max_after_ms"] = la[-1] if la else None
    lb = sorted(lat(r) * 1000 for r in before if lat(r) is not None)
    out["p99_before_ms"] = pct(lb, 0.99)
    fo = [r for r in records if classify(r) == "failover" and r["done"] >= fault_at]
    out["first_failover_ms"] = min((r["done"] - fault_at) * 1000 for r in fo) if fo else None
    first = min(fo, key=lambda r: r["done"]) if fo else None
    out["first_failover_sent_ms"] = (first["due"] - fault_at) * 1000 if first else None
    out["failover_before"] = sum(1 for r in records if classify(r) == "failover"
                                 and r["done"] < fault_at)
    bad = [r for r in after if classify(r) == "error" or lat(r) is None or lat(r) > SLOW_S]
    #: every request sent later than this (ms after the fault) got a good answer within 1 s
    out["trouble_until_ms"] = max((r["due"] - fault_at) * 1000 for r in bad) if bad else 0.0
    out["answers_after"] = {}
    for r in after:
        k = classify(r)
        out["answers_after"][k] = out["answers_after"].get(k, 0) + 1
    mine = {r["id"] for r in records}
    twice = {i: where for i, where in ids.items() if len(where) > 1 and i in mine}
    out["sent_twice"] = len(twice)
    out["sent_twice_examples"] = dict(list(twice.items())[:5])
    out["reached_backends"] = sum(1 for i in ids if i in mine)
    return out


class Bench:
    def __init__(self, args, out_dir):
        self.a = args
        self.out = out_dir
        self.procs = procs.Procs()
        self.ports = procs.Ports()
        nofile = procs.raise_nofile()
        self.launch = servers.Launcher(self.procs, self.ports, args.sidestep, args.stub,
                                       out_dir, nofile, 4096)
        self.results = []
        self.seq = 0

    def log(self, msg):
        print(msg, file=sys.stderr, flush=True)

    def quiet(self):
        """Waits (bounded by --wait-quiet) until other processes use under 10% of the machine
        over one second; returns (seconds waited, their last share in %, or None)."""
        if self.a.wait_quiet <= 0:
            return 0.0, None
        t0 = time.monotonic()
        while True:
            o = procs.Others()
            time.sleep(1.0)
            share, _ = o.finish(0.0)
            waited = time.monotonic() - t0
            if share < 10.0 or waited >= self.a.wait_quiet:
                return waited, share

    def _stubs(self):
        return {name: self.launch.stub(name, 1, self.a.ccpu, size=self.a.size)
                for name in PRIMARY + (FAILOVER,)}

    def _relay(self, stubs, label):
        specs = [(name, self.ports.take(), stubs[name].port) for name in PRIMARY + (FAILOVER,)]
        return faults.Control(self.procs, label, specs, os.path.join(self.out, label + ".log"),
                              cpus=self.a.ccpu, delay=self.a.delay)

    def _stop(self, *things):
        for t in things:
            if t is None:
                continue
            if isinstance(t, faults.Control):
                t.stop()
            elif isinstance(t, dict):
                self._stop(*t.values())
            else:
                self.procs.stop(t.proc)

    def _load(self, port, make, seconds, events):
        saved = os.sched_getaffinity(0)
        try:
            if self.a.ccpu:
                os.sched_setaffinity(0, self.a.ccpu)
            return openloop.run(port, self.a.rate, seconds, make, self.a.timeout, events)
        finally:
            os.sched_setaffinity(0, saved)

    # the client measured on its own: straight at a stub, then through a pass-through relay
    def selfcheck(self):
        stubs = relay = None
        try:
            stubs = self._stubs()
            relay = self._relay(stubs, "relay-selfcheck")
            for via, port in (("stub", stubs[PRIMARY[0]].port),
                              ("relay", relay.ports[PRIMARY[0]])):
                self.seq += 1
                res = self._load(port, request_maker("get", "self", self.seq), self.a.selfcheck,
                                 [])
                lat = sorted((r.done - r.due) * 1000 for r in res.requests if r.done)
                row = {"type": "selfcheck", "via": via, "requests": len(res.requests),
                       "ok": sum(1 for r in res.requests if r.status == 200 and not r.error),
                       "p50_ms": pct(lat, 0.5), "p99_ms": pct(lat, 0.99),
                       "max_ms": lat[-1] if lat else None,
                       "send_lag_p99_ms": res.send_lag_p99_ms,
                       "send_lag_max_ms": res.send_lag_max_ms}
                self.results.append(row)
                self.log("  client check via %-5s %d/%d ok, p50 %.2f ms, p99 %.2f ms, max %.2f ms,"
                         " send lag p99 %.2f ms" % (via, row["ok"], row["requests"],
                                                    row["p50_ms"] or 0, row["p99_ms"] or 0,
                                                    row["max_ms"] or 0,
                                                    row["send_lag_p99_ms"] or 0))
        finally:
            self._stop(relay, stubs)

    def scenario(self, fault, workload, kind):
        a = self.a
        self.seq += 1
        row = {"type": "gray", "fault": fault, "workload": workload, "server": kind,
               "scope": a.scope, "error": None, "seq": self.seq}
        stubs = relay = server = None
        targets = list(PRIMARY) if a.scope == "region" else [PRIMARY[0]]
        try:
            stubs = self._stubs()
            relay = self._relay(stubs, "relay-%03d" % self.seq)
            extra = {"PRIMARY1": relay.ports[PRIMARY[0]], "PRIMARY2": relay.ports[PRIMARY[1]],
                     "FAILOVER": relay.ports[FAILOVER], "CONNECT": a.haproxy_connect,
                     "HAPROXY_EXTRA": "\n".join("    " + line for line in a.haproxy_line)}
            extra.update(sidestep_values(a.sidestep_keys))
            server = self.launch.server(kind, "gray", 1, a.scpu, extra=extra)
            self._warm(server)
            row["quiet_wait_s"], row["others_before_pct"] = self.quiet()
            make = request_maker(workload, "s%03d" % self.seq, 0)
            others = procs.Others()
            watched = server.pids() + relay.proc.pids() + \
                [p for s in stubs.values() for p in s.pids()]
            before = procs.Sample(watched)
            load0 = os.getloadavg()
            res = self._load(server.port, make, a.before + a.after,
                             [(a.before, "fault_cmd",
                               lambda: relay.send("fault %s %s" % (fault, ",".join(targets))))])
            after = procs.Sample(watched)
            row["others_pct"], _ = others.finish(after.cpu_seconds_since(before))
            row["loadavg"] = [round(x, 2) for x in load0]
            ack = relay.reply()
            stats = relay.stats()
            fault_at = ack["at"]
            wall_offset = time.time() - time.monotonic()
            row["fault_at_lag_ms"] = (fault_at - res.marks["fault_cmd"]) * 1000
            row["fault_applied_ms"] = ack.get("applied_ms")
            row["fault_at_s"] = fault_at - res.t0
            row["client"] = {"send_lag_p99_ms": res.send_lag_p99_ms,
                             "send_lag_max_ms": res.send_lag_max_ms, "max_open": res.max_open}
            row["relays"] = stats["relays"]
            records = []
            for r in res.requests:
                d = dict(zip(openloop.RECORD_FIELDS, r.record()))
                d["id"] = "s%03d-0-%d" % (self.seq, r.i)
                records.append(d)
            row.update(analyse(records, fault_at, stats["ids"], workload))
            path = os.path.join(self.out, "requests-%03d-%s-%s-%s.json"
                                % (self.seq, fault, workload, kind))
            with open(path, "w") as f:
                json.dump({"fields": list(openloop.RECORD_FIELDS) + ["id"], "t0": res.t0,
                           "fault_at": fault_at,
                           "records": [[d[k] for k in openloop.RECORD_FIELDS] + [d["id"]]
                                       for d in records]}, f)
            row["requests_file"] = os.path.basename(path)
            row["down_events"] = down_events(kind, server.proc.log_text(),
                                             fault_at + wall_offset)
            if row["errors_before"] or row["failover_before"]:
                note = ("%d error(s) and %d failover answer(s) before the fault: the setup, not "
                        "the fault, caused them" % (row["errors_before"], row["failover_before"]))
                row.setdefault("notes", []).append(note)
                self.log("  NOTE: " + note)
        except (RuntimeError, ValueError, OSError, faults.RelayError) as e:
            row["error"] = str(e).strip().splitlines()[0][:300] if str(e).strip() else repr(e)
            self.log("  FAILED: %s" % row["error"])
        finally:
            if server is not None:
                code = self.procs.stop(server.proc)
                if kind == "sidestep" and code != 0:
                    note = "sidestep exited with %s after SIGTERM (log: %s)" % (
                        code, server.proc.log_path)
                    row.setdefault("notes", []).append(note)
                    self.log("  NOTE: " + note)
            self._stop(relay, stubs)
        self.results.append(row)
        if not row["error"]:
            self.log("  %-8s %-8s %-8s errors %4d (in flight %d) %s, >1s %4d, p99 after %6.0f ms,"
                     " first failover %s, sent twice %d"
                     % (fault, workload, kind, row["errors"], row["errors_in_flight"],
                        _kinds(row["errors_by_kind"]), row["slow"], row["p99_after_ms"] or 0,
                        report.num(row["first_failover_ms"], "+%.0f ms"), row["sent_twice"]))
        return row

    def _warm(self, server):
        """Until the server answers a GET from the primary region, and the first probes are
        done (1.5 s: each server probes every 1 s)."""
        t0 = time.monotonic()
        last = None
        while True:
            try:
                status, headers, _ = clients.check_request(server.port, "GET", "/gray/warm")
                last = (status, headers.get("x-stub-origin"))
                if status == 200 and (last[1] or "").startswith("us-east") and \
                        time.monotonic() - t0 >= 1.5:
                    return
            except (OSError, clients.HttpError) as e:
                last = repr(e)
            if time.monotonic() - t0 > 10:
                raise RuntimeError("%s did not answer from us-east within 10 s (last: %r)"
                                   % (server.kind, last))
            time.sleep(0.1)

    def run(self):
        a = self.a
        if not a.no_verify:
            self.log("== checking the faults on this kernel")
            stub = self.launch.stub("verify", 1, a.ccpu, size=a.size)
            try:
                v = faults.verify(self.procs, stub.port, self.ports, self.out, cpus=a.ccpu,
                                  delay=a.delay)
            finally:
                self.procs.stop(stub.proc)
            self.results.append({"type": "verify", "faults": v})
            for k, r in v.items():
                self.log("  %-8s %s: %s after %.3f s%s" % (k, "ok" if r["ok"] else "FAILED",
                                                          r["seen"], r["seconds"],
                                                          ", ListenOverflows +%s" %
                                                          r["listen_overflows"]
                                                          if "listen_overflows" in r else ""))
            if not all(r["ok"] for r in v.values()):
                raise RuntimeError("a fault does not behave as documented on this machine")
        if a.selfcheck > 0:
            self.log("== the client alone (%d req/s)" % a.rate)
            self.selfcheck()
        for fault in a.fault_list:
            self.log("== %s (%s)" % (fault, "both primary backends" if a.scope == "region"
                                     else "us-east-1 only"))
            for workload in a.workload_list:
                for kind in a.server_list:
                    self.scenario(fault, workload, kind)


def _kinds(d):
    return "(" + ", ".join("%s %d" % kv for kv in sorted(d.items())) + ")" if d else ""


# --- report ------------------------------------------------------------------------------------


def _ms(v):
    return report.num(v, "%.0f")


def markdown(data):
    meta = data["meta"]
    s = meta["settings"]
    m = meta["machine"]
    v = meta["versions"]
    res = data["results"]
    lines = [
        "Run: `%s` on %s, %.0f s%s; load average %s at the start, %s at the end."
        % (meta["command"], meta["date"], meta.get("elapsed_s") or 0,
           " (interrupted)" if meta.get("interrupted") else "",
           " / ".join("%.2f" % x for x in m["loadavg_at_start"]),
           " / ".join("%.2f" % x for x in meta.get("loadavg_at_end") or [])),
        "",
        "Machine: %s CPUs (%s), kernel %s; %s. Versions: %s%s; %s."
        % (m["nproc"], m["cpu"], m["kernel"],
           "client, relays and stubs pinned to one core, the server to the other"
           if s["placement"] == "pinned" else "nothing pinned",
           v["sidestep"], " at commit %s" % v["sidestep_commit"] if v.get("sidestep_commit")
           else "", v["haproxy"]),
        "",
        "Load: %d requests/s, each on a new connection, %.0f s before the fault and %.0f s after"
        " it; the client gives up on a request %.0f s after its send time. The fault hits %s. "
        "sidestep keys added to the template: %s. HAProxy: timeout connect %s%s."
        % (s["rate"], s["before_s"], s["after_s"], s["timeout_s"],
           "both primary backends" if s["scope"] == "region" else "us-east-1 only",
           _keys_text(s["sidestep_keys"]) or "none",
           s["haproxy_connect"],
           "".join("; `%s`" % line for line in s["haproxy_lines"])),
    ]
    out = ["\n".join(lines)]
    ver = next((r for r in res if r["type"] == "verify"), None)
    if ver:
        rows = [[k, "ok" if r["ok"] else "FAILED", r["seen"], "%.3f" % r["seconds"],
                 str(r.get("listen_overflows", ""))] for k, r in ver["faults"].items()]
        out.append("Each fault checked on this kernel first (one GET /healthz through a relay "
                   "after the fault):\n\n" + report.table(
                       ["fault", "check", "client saw", "after s", "ListenOverflows +"], rows))
    sc = [r for r in res if r["type"] == "selfcheck"]
    if sc:
        rows = [[r["via"], "%d / %d" % (r["ok"], r["requests"]), report.num(r["p50_ms"], "%.2f"),
                 report.num(r["p99_ms"], "%.2f"), report.num(r["max_ms"], "%.2f"),
                 report.num(r["send_lag_p99_ms"], "%.2f"),
                 report.num(r["send_lag_max_ms"], "%.2f")] for r in sc]
        out.append("The client alone, no fault (its own latency, included in every figure "
                   "below):\n\n" + report.table(["GET straight at", "200", "p50 ms", "p99 ms",
                                                 "max ms", "send lag p99 ms",
                                                 "send lag max ms"], rows))
    rows = []
    for r in res:
        if r["type"] != "gray":
            continue
        if r.get("error"):
            rows.append([r["fault"], r["workload"], r["server"], "FAILED: " + r["error"][:100]]
                        + [""] * 10)
            continue
        rows.append([
            r["fault"], r["workload"], r["server"],
            "%d%s" % (r["errors"], " " + _kinds(r["errors_by_kind"]) if r["errors"] else ""),
            str(r["errors_in_flight"]), "%d / %d" % (r["slow"], r["requests"]),
            _ms(r["p99_after_ms"]), _ms(r["max_after_ms"]),
            report.num(r["first_failover_ms"], "%.0f"),
            report.num(r["first_failover_sent_ms"], "%.0f"),
            _ms(r["trouble_until_ms"]),
            str(r["sent_twice"]) + (" ✗" if r["sent_twice"] and r["workload"] == "post" else ""),
            down_text(r.get("down_events") or []),
            report.num(r.get("others_pct"), "%.0f%%"),
        ])
    if rows:
        out.append(report.table(
            ["fault", "workload", "server", "errors", "of them in flight", "waited > 1 s",
             "p99 after ms", "max after ms", "first failover answer ms",
             "its request sent at ms", "trouble until ms", "sent more than once",
             "primary taken down by", "others' CPU"], rows))
    notes = ["- %s %s %s: %s" % (r["fault"], r["workload"], r["server"], n)
             for r in res if r["type"] == "gray" for n in r.get("notes", [])]
    if notes:
        out.append("Notes:\n\n" + "\n".join(notes))
    t = targets_table(data)
    if t:
        out.append(t)
    return "\n\n".join(out) + "\n"


def _keys_text(keys):
    parts = []
    for section, kvs in (("routes[]", keys.get("route", [])), ("health", keys.get("health", [])),
                         ("timeouts", keys.get("timeouts", []))):
        parts += ["`%s.%s: %s`" % (section, k, v) for k, v in kvs]
    return ", ".join(parts)


def targets_table(data):
    """Issue 15's targets for sidestep, when the run set routes[].try_timeout."""
    keys = dict(data["meta"]["settings"]["sidestep_keys"].get("route", []))
    tt = parse_duration(keys.get("try_timeout"))
    if tt is None:
        return ""
    rows = []
    for r in data["results"]:
        if r["type"] != "gray" or r["server"] != "sidestep" or r.get("error"):
            continue
        if r["workload"] == "post":
            ok = r["sent_twice"] == 0 and r["errors"] == r["errors_in_flight"]
            what = "sent twice %d, errors not in flight %d" % (
                r["sent_twice"], r["errors"] - r["errors_in_flight"])
        else:
            limit = (tt + 0.1) * 1000
            ok = r["errors"] == 0 and (r["max_after_ms"] or 0) <= limit and \
                r["first_failover_ms"] is not None and r["first_failover_ms"] <= (tt + 0.05) * 1000
            what = "errors %d, max after %s ms (≤ %.0f), first failover %s ms (≤ %.0f)" % (
                r["errors"], _ms(r["max_after_ms"]), limit, _ms(r["first_failover_ms"]),
                (tt + 0.05) * 1000)
        rows.append([r["fault"], r["workload"], what, "✓" if ok else "✗"])
    if not rows:
        return ""
    return ("Issue 15's targets with `try_timeout: %s`:\n\n" % keys["try_timeout"]) + \
        report.table(["fault", "workload", "measured", "met"], rows)


def doc_block(label):
    return "<!-- bench:gray:%s:begin -->" % label, "<!-- bench:gray:%s:end -->" % label


def update_doc(text, label):
    """Writes text between this label's markers in docs/benchmarks.md; without them, adds a
    block for the label at the end of the Gray failures section (the section too, when the
    doc lacks it). The rest of the file is kept as it is."""
    doc = os.path.join(ROOT, "docs", "benchmarks.md")
    with open(doc) as f:
        old = f.read()
    begin, end = doc_block(label)
    if begin in old and end in old:
        head, rest = old.split(begin, 1)
        _, tail = rest.split(end, 1)
        new = head + begin + "\n" + text + "\n" + end + tail
    else:
        block = "### Run: %s\n\n%s\n%s\n%s\n" % (label, begin, text, end)
        if DOC_SECTION + "\n" not in old:
            new = old.rstrip("\n") + "\n\n" + DOC_SECTION + "\n\n" + block
        else:
            head, rest = old.split(DOC_SECTION + "\n", 1)
            m = re.search(r"^## ", rest, re.M)
            cut = m.start() if m else len(rest)
            new = head + DOC_SECTION + "\n" + rest[:cut].rstrip("\n") + "\n\n" + block + \
                ("\n" + rest[cut:] if m else "")
    with open(doc + ".tmp", "w") as f:
        f.write(new)
    os.replace(doc + ".tmp", doc)
    print("bench: updated %s (%s)" % (doc, label), file=sys.stderr)


def emit(data, out_dir, update):
    text = markdown(data)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text)
    print(text)
    if update:
        update_doc(text, data["meta"]["settings"]["label"])
    failed = [r for r in data["results"] if r.get("error")]
    if failed:
        print("bench: %d scenario(s) failed" % len(failed), file=sys.stderr)
        return 1
    return 0


# --- main --------------------------------------------------------------------------------------


def check_tools(args):
    missing = [] if shutil.which("taskset") or args.placement == "shared" else ["taskset"]
    if "haproxy" in args.server_list and shutil.which("haproxy") is None:
        missing.append("haproxy")
    for path in (args.sidestep, args.stub):
        if not os.access(path, os.X_OK):
            missing.append(path)
    return missing


def check_sidestep_config(args, out_dir):
    """Renders the sidestep config once with placeholder ports and runs `sidestep --check`:
    a key today's binary lacks stops the run here, with sidestep's own message."""
    values = {"WORKERS": 1, "PORT": 1, "PRIMARY1": 2, "PRIMARY2": 3, "FAILOVER": 4,
              "MAXCONN": 4096}
    values.update(sidestep_values(args.sidestep_keys))
    path = os.path.join(out_dir, "sidestep-check.yaml")
    with open(path, "w") as f:
        f.write(servers.render("sidestep-gray.yaml", values))
    done = subprocess.run([args.sidestep, "--check", path], capture_output=True, timeout=30)
    if done.returncode != 0:
        return (done.stderr or done.stdout).decode("utf-8", "replace").strip()
    return None


def main(argv):
    os.environ["PATH"] = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
    args = parse_args(argv)
    if args.report_only:
        with open(args.report_only) as f:
            data = json.load(f)
        return emit(data, os.path.dirname(os.path.abspath(args.report_only)), args.update_doc)
    missing = check_tools(args)
    if missing:
        print("failover: missing: %s (scripts/install-deps.sh test; build first)"
              % ", ".join(missing), file=sys.stderr)
        return 2
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir = os.path.abspath(args.out or os.path.join(HERE, "out", "gray-" + stamp))
    os.makedirs(out_dir, exist_ok=True)
    if "sidestep" in args.server_list:
        problem = check_sidestep_config(args, out_dir)
        if problem:
            print("failover: this sidestep rejects the config the options ask for:\n  %s"
                  % problem, file=sys.stderr)
            return 2
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    import bench as _bench  # machine_info(): the same record as bench.py's

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "command": "python3 bench/failover.py " + " ".join(argv),
        "machine": _bench.machine_info(),
        "versions": servers.versions(args.sidestep),
        "settings": {"rate": args.rate, "before_s": args.before, "after_s": args.after,
                     "timeout_s": args.timeout, "delay_s": args.delay, "size": args.size,
                     "wait_quiet_s": args.wait_quiet,
                     "scope": args.scope, "placement": args.placement,
                     "faults": args.fault_list, "workloads": args.workload_list,
                     "servers": args.server_list, "sidestep_keys": args.sidestep_keys,
                     "haproxy_connect": args.haproxy_connect,
                     "haproxy_lines": args.haproxy_line, "label": args.label,
                     "quick": args.quick},
    }
    bench = Bench(args, out_dir)
    started = time.monotonic()
    interrupted = False
    try:
        bench.run()
    except (KeyboardInterrupt, Interrupted):
        interrupted = True
        print("failover: interrupted, stopping everything", file=sys.stderr)
    except (RuntimeError, OSError, faults.RelayError) as e:
        bench.results.append({"type": "run", "error": str(e)})
        print("failover: %s" % e, file=sys.stderr)
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            signal.signal(sig, signal.SIG_IGN)
        bench.procs.stop_all()
    meta["processes"] = bench.procs.history
    meta["elapsed_s"] = round(time.monotonic() - started, 1)
    meta["interrupted"] = interrupted
    meta["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
    data = {"meta": meta, "results": bench.results}
    with open(os.path.join(out_dir, "results.json"), "w") as f:
        json.dump(data, f, indent=1)
    rc = emit(data, out_dir, args.update_doc and not interrupted)
    print("failover: results in %s" % out_dir, file=sys.stderr)
    return 130 if interrupted else rc


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
