"""Tables (aligned Markdown, printed and saved), the target check, the gnuplot chart, and the
results part of docs/benchmarks.md, all from one results dict (results.json)."""

import os
import shutil
import subprocess
import sys

PLACEMENT_TEXT = {
    "pinned": "pinned: wrk, the stub backend and the harness's clients on core 0, the server on "
              "core 1",
    "shared": "shared: nothing pinned, everything shares both cores",
}
PEERS = ("nginx", "haproxy")
REDIRECT_WORKLOADS = ("get307", "post307-1k", "post307-64k")
PROXY_WORKLOADS = ("proxy-get", "proxy-post-1k")
TLS_KEEPALIVE_WORKLOADS = ("get307-tls", "proxy-get-tls")
HANDSHAKE_WORKLOADS = ("hs-full-ecdsa", "hs-full-rsa", "hs-resume")
DOC_BEGIN = "<!-- bench:results:begin -->"
DOC_END = "<!-- bench:results:end -->"
#: a --tls run rewrites this part of docs/benchmarks.md instead
TLS_DOC_BEGIN = "<!-- bench:tls:begin -->"
TLS_DOC_END = "<!-- bench:tls:end -->"


def table(header, rows):
    """An aligned Markdown table."""
    cells = [list(map(str, header))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    out = []
    for n, r in enumerate(cells):
        out.append("| " + " | ".join(c.ljust(widths[i]) for i, c in enumerate(r)) + " |")
        if n == 0:
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    return "\n".join(out)


def num(v, fmt="%.0f"):
    return "—" if v is None else fmt % v


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def rtext(r):
    return "—" if r is None else "%.2f×" % r


def _ok(row):
    return row is not None and not row.get("error")


def _combos(results):
    seen = []
    for r in results:
        key = (r["placement"], r["workers"])
        if key not in seen:
            seen.append(key)
    return seen


#: runs whose others' CPU is within this many percentage points of the quietest count as quiet
QUIET_SLACK = 3.0


def _find(results, typ, placement, workers, workload, server):
    """The run that stands for this cell. With several runs (--repeat, merged files): among the
    successful runs during which the rest of the machine was (nearly) as quiet as in the
    quietest one, the one with the lowest CPU time per request, the usual best-of-N estimate of
    a cost that noise only ever adds to. A failed run only when all failed."""
    rows = [r for r in results
            if r["type"] == typ and r["placement"] == placement and r["workers"] == workers
            and r["workload"] == workload and r["server"] == server]
    ok = [r for r in rows if not r.get("error")]
    if not ok:
        return rows[0] if rows else None
    quietest = min(r.get("others_pct") or 0.0 for r in ok)
    quiet = [r for r in ok if (r.get("others_pct") or 0.0) <= quietest + QUIET_SLACK]
    return min(quiet, key=lambda r: r.get("cpu_us_per_req") or 0.0)


def _workloads(results, typ):
    out = []
    for r in results:
        if r["type"] == typ and r["workload"] not in out:
            out.append(r["workload"])
    return out


def _servers(results, typ):
    out = []
    for r in results:
        if r["type"] == typ and r["server"] not in out:
            out.append(r["server"])
    return out


def wrk_tables(results, placement, workers):
    wls = _workloads(results, "wrk")
    srv = _servers(results, "wrk")
    rows = []
    for wl in wls:
        for s in srv:
            r = _find(results, "wrk", placement, workers, wl, s)
            if r is None:
                continue
            if r.get("error"):
                rows.append([wl, s, "FAILED: " + r["error"][:120], "", "", "", "", "", "", ""])
                continue
            cpu = r.get("cpu_s") or 0
            sys_share = 100.0 * r["sys_s"] / cpu if cpu else None
            rows.append([wl, s, num(r["rps"]), num(r["p50_ms"], "%.3f"), num(r["p99_ms"], "%.3f"),
                         num(r["cpu_us_per_req"], "%.2f"), num(sys_share, "%.0f%%"),
                         num(r["peak_rss_kib"] / 1024, "%.1f"), str(r["errors"]),
                         num(r.get("others_pct"), "%.0f%%")])
    if not rows:
        return ""
    out = [table(["workload", "server", "req/s", "p50 ms", "p99 ms", "CPU µs/req", "of it sys",
                  "peak RSS MiB", "errors", "others' CPU"], rows)]
    if "sidestep" in srv and any(p in srv for p in PEERS):
        peers = [p for p in PEERS if p in srv]
        hdr = ["workload"]
        for metric in ("req/s", "p50", "p99", "CPU/req", "peak RSS"):
            for p in peers:
                hdr.append("%s ÷ %s" % (metric, p))
        rrows = []
        for wl in wls:
            me = _find(results, "wrk", placement, workers, wl, "sidestep")
            if not _ok(me):
                continue
            line = [wl]
            for key in ("rps", "p50_ms", "p99_ms", "cpu_us_per_req", "peak_rss_kib"):
                for p in peers:
                    other = _find(results, "wrk", placement, workers, wl, p)
                    line.append(rtext(ratio(me.get(key), other.get(key)) if _ok(other) else None))
            rrows.append(line)
        if rrows:
            out.append("sidestep's figure divided by each peer's (req/s: above 1 is better; "
                       "latency, CPU and RSS: below 1 is better):")
            out.append(table(hdr, rrows))
    return "\n\n".join(out)


def syscall_table(results, placement, workers):
    """System calls per request (from --syscalls), total and the most frequent kinds."""
    rows = []
    for wl in _workloads(results, "wrk"):
        for s in _servers(results, "wrk"):
            # counted in one run per cell, not necessarily the one the other tables show
            sc = next((r["syscalls_per_req"] for r in results
                       if r["type"] == "wrk" and r["placement"] == placement
                       and r["workers"] == workers and r["workload"] == wl and r["server"] == s
                       and r.get("syscalls_per_req")), None)
            if not sc:
                continue
            kinds = sorted(((v, k) for k, v in sc.items() if k != "total" and v >= 0.01),
                           reverse=True)
            rows.append([wl, s, "%.2f" % sc.get("total", 0),
                         ", ".join("%s %.2f" % (k, v) for v, k in kinds[:6])])
    if not rows:
        return ""
    return table(["workload", "server", "syscalls/req", "most frequent (per request)"], rows)


def idle_table(results, placement, workers):
    rows = []
    me = _find(results, "idle", placement, workers, "idle", "sidestep")
    for s in _servers(results, "idle"):
        r = _find(results, "idle", placement, workers, "idle", s)
        if r is None:
            continue
        if r.get("error"):
            rows.append([s, "FAILED: " + r["error"][:120], "", "", "", "", "", ""])
            continue
        rel = "—" if s == "sidestep" or not _ok(me) else \
            rtext(ratio(me["rss_delta_kib"], r["rss_delta_kib"]))
        rows.append([s, "%d / %d" % (r["opened"], r["target_conns"]),
                     str(r["closed_by_server"]), num(r["rss_before_kib"] / 1024, "%.1f"),
                     num(r["rss_after_kib"] / 1024, "%.1f"),
                     num(r["rss_delta_kib"] / 1024, "%.1f"), num(r["kib_per_conn"], "%.2f"), rel])
    if not rows:
        return ""
    return table(["server", "held", "closed by server", "RSS before MiB", "RSS after MiB",
                  "added MiB", "KiB/conn", "sidestep's added ÷ this"], rows)


def failover_table(results, placement, workers):
    rows = []
    for s in _servers(results, "failover"):
        r = _find(results, "failover", placement, workers, "failover", s)
        if r is None:
            continue
        if r.get("error"):
            rows.append([s, "FAILED: " + r["error"][:120]] + [""] * 11)
            continue
        st = {int(k): v for k, v in r["statuses"].items()}
        other = sum(v for k, v in st.items() if k not in (200, 307) and not 500 <= k <= 599)
        errs = ", ".join("%s %d" % kv for kv in sorted(r["errors"].items())) or "0"
        rows.append([s, str(r["requests"]), str(st.get(200, 0)), str(st.get(307, 0)),
                     str(r["five_xx"]), str(other), errs,
                     num(r["first_307_ms"], "%.0f"), num(r["switch_ms"], "%.0f"),
                     num(r["last_non307_ms"], "%.0f"), str(r["non307_after"]),
                     num(r["max_latency_after_ms"], "%.0f"), str(r.get("max_open", "—"))])
    if not rows:
        return ""
    return table(["server", "requests", "200", "307", "5xx", "other", "errors",
                  "first 307 ms", "all 307 if sent after ms", "last non-307 answer ms",
                  "non-307 after kill", "max latency after kill ms", "connections"], rows)


def direct_table(results):
    rows = []
    for placement, workers in _combos(results):
        a = _find(results, "direct", placement, workers, "direct", "stub")
        b = _find(results, "direct", placement, workers, "direct", "sidestep")
        if a is None or b is None:
            continue
        if not (_ok(a) and _ok(b)):
            rows.append([placement, str(workers), "FAILED: %s" % ((a.get("error") or
                                                                   b.get("error"))[:120])]
                        + [""] * 7)
            continue
        rows.append([placement, str(workers), num(a["rps"]), num(b["rps"]),
                     rtext(ratio(b["rps"], a["rps"])), num(a["p50_ms"], "%.3f"),
                     num(b["p50_ms"], "%.3f"), num(a["p99_ms"], "%.3f"), num(b["p99_ms"], "%.3f"),
                     num(b["cpu_us_per_req"], "%.2f")])
    if not rows:
        return ""
    return table(["placement", "workers", "stub req/s", "via sidestep req/s", "ratio",
                  "stub p50 ms", "via sidestep p50 ms", "stub p99 ms", "via sidestep p99 ms",
                  "sidestep CPU µs/req"], rows)


def handshake_table(results, placement, workers):
    """Full and resumed handshakes: rate, the server's CPU per handshake, and what that CPU
    figure means as the rate one core of the server could sustain."""
    srv = _servers(results, "handshake")
    rows = []
    for wl in _workloads(results, "handshake"):
        for s in srv:
            r = _find(results, "handshake", placement, workers, wl, s)
            if r is None:
                continue
            if r.get("error"):
                rows.append([wl, s, "FAILED: " + r["error"][:120], "", "", "", "", "", "", ""])
                continue
            cpu = r.get("cpu_s") or 0
            per = r.get("cpu_us_per_req")
            agreed = r.get("negotiated") or "—"
            if r.get("other_negotiated"):
                agreed += " (%d others)" % r["other_negotiated"]
            rows.append([wl, s, num(r["rps"]), num(r.get("resumed_pct"), "%.0f%%"),
                         num(per, "%.1f"),
                         num(100.0 * r["sys_s"] / cpu if cpu and "sys_s" in r else None,
                             "%.0f%%"),
                         num(1e6 / per if per else None), str(r["errors"]),
                         num(r.get("others_pct"), "%.0f%%"), agreed])
    if not rows:
        return ""
    out = [table(["workload", "server", "handshakes/s", "resumed", "CPU µs/handshake",
                  "of it sys", "per server core/s", "errors", "others' CPU", "negotiated"],
                 rows)]
    if "sidestep" in srv and any(p in srv for p in PEERS):
        peers = [p for p in PEERS if p in srv]
        rrows = []
        for wl in _workloads(results, "handshake"):
            me = _find(results, "handshake", placement, workers, wl, "sidestep")
            if not _ok(me):
                continue
            line = [wl]
            for key in ("rps", "cpu_us_per_req"):
                for p in peers:
                    other = _find(results, "handshake", placement, workers, wl, p)
                    line.append(rtext(ratio(me.get(key), other.get(key)) if _ok(other) else None))
            rrows.append(line)
        if rrows:
            hdr = ["workload"] + ["handshakes/s ÷ %s" % p for p in peers] + \
                ["CPU/handshake ÷ %s" % p for p in peers]
            out.append("sidestep's figure divided by each peer's (handshakes/s: above 1 is "
                       "better; CPU: below 1 is better):")
            out.append(table(hdr, rrows))
    return "\n\n".join(out)


def _best(results, placement, workers, wl, key, pick, typ="wrk"):
    vals = [r[key] for p in PEERS for r in [_find(results, typ, placement, workers, wl, p)]
            if _ok(r) and r.get(key) is not None]
    return pick(vals) if vals else None


def tls_target_table(results):
    """Issue 14's targets: keep-alive CPU per request over TLS at most the better peer's, and
    handshakes within 10% of the better peer. The load generator shares one core, so it may cap
    every server at the same rate: the handshake target is judged on the server's CPU per
    handshake (the rate its core could sustain), with the measured rate beside it."""
    rows = []
    for placement, workers in _combos(results):
        for wl in TLS_KEEPALIVE_WORKLOADS + HANDSHAKE_WORKLOADS:
            typ = "handshake" if wl in HANDSHAKE_WORKLOADS else "wrk"
            me = _find(results, typ, placement, workers, wl, "sidestep")
            if not _ok(me):
                if me is not None:
                    rows.append([wl, placement, str(workers), "sidestep FAILED", "", "", ""])
                continue
            best_cpu = _best(results, placement, workers, wl, "cpu_us_per_req", min, typ)
            cpu = ratio(me["cpu_us_per_req"], best_cpu)
            rate = ratio(me["rps"], _best(results, placement, workers, wl, "rps", max, typ))
            limit = 1.0 if typ == "wrk" else 1.1
            ok = cpu is not None and cpu <= limit
            rows.append([wl, placement, str(workers),
                         "%.2f vs %.2f µs" % (me["cpu_us_per_req"], best_cpu)
                         if best_cpu else "—",
                         "—" if cpu is None else "%.2f× %s" % (cpu, "✓" if ok else "✗"),
                         rtext(rate), "≤%.2f×" % limit])
    if not rows:
        return ""
    return table(["workload", "placement", "workers", "CPU/req: sidestep vs best peer",
                  "÷ best peer", "rate ÷ best peer", "target"], rows)


def target_table(results):
    """Where sidestep stands against each target, per placement and worker count."""
    rows = []
    for placement, workers in _combos(results):
        for wl in REDIRECT_WORKLOADS + PROXY_WORKLOADS:
            me = _find(results, "wrk", placement, workers, wl, "sidestep")
            if not _ok(me):
                if me is not None:
                    rows.append([wl, placement, str(workers), "sidestep FAILED", "", "", ""])
                continue
            cpu = ratio(me["cpu_us_per_req"], _best(results, placement, workers, wl,
                                                    "cpu_us_per_req", min))
            rps = ratio(me["rps"], _best(results, placement, workers, wl, "rps", max))
            p99 = ratio(me["p99_ms"], _best(results, placement, workers, wl, "p99_ms", min))
            rps_goal = 1.1 if wl in PROXY_WORKLOADS and placement == "shared" else 1.0

            def mark(v, ok):
                return "—" if v is None else "%.2f× %s" % (v, "✓" if ok(v) else "✗")

            met = [cpu is not None and cpu <= 0.75, rps is not None and rps >= rps_goal,
                   p99 is not None and p99 <= 1.0]
            rows.append([wl, placement, str(workers), mark(cpu, lambda v: v <= 0.75),
                         mark(rps, lambda v: v >= rps_goal) + (" (goal ≥%.1f)" % rps_goal),
                         mark(p99, lambda v: v <= 1.0), "yes" if all(met) else "no"])
    out = []
    if rows:
        out.append(table(["workload", "placement", "workers",
                          "CPU/req ÷ best peer (≤0.75)", "req/s ÷ best peer",
                          "p99 ÷ best peer (≤1.00)", "all met"], rows))
    irows = []
    for placement, workers in _combos(results):
        me = _find(results, "idle", placement, workers, "idle", "sidestep")
        hap = _find(results, "idle", placement, workers, "idle", "haproxy")
        if _ok(me) and _ok(hap):
            r = ratio(me["rss_delta_kib"], hap["rss_delta_kib"])
            irows.append(["idle %d" % me["target_conns"], placement, str(workers),
                          "%.1f MiB vs %.1f MiB" % (me["rss_delta_kib"] / 1024,
                                                    hap["rss_delta_kib"] / 1024),
                          "%s %s" % (rtext(r), "✓" if r is not None and r <= 0.5 else "✗")])
    if irows:
        out.append(table(["workload", "placement", "workers", "RSS added: sidestep vs haproxy",
                          "ratio (≤0.50)"], irows))
    frows = []
    for placement, workers in _combos(results):
        me = _find(results, "failover", placement, workers, "failover", "sidestep")
        if _ok(me):
            ok = me["error_total"] == 0 and me["five_xx"] == 0 and me["last_non307_ms"] <= 100
            frows.append(["failover", placement, str(workers), str(me["error_total"]),
                          str(me["five_xx"]), "%.0f ms" % me["last_non307_ms"],
                          "✓" if ok else "✗"])
    if frows:
        out.append(table(["workload", "placement", "workers", "errors", "5xx",
                          "all 307 after", "met (0, 0, ≤100 ms)"], frows))
    return "\n\n".join(out)


def tls_settings_text(s):
    return ("TLS: the same certificate for the three servers, made at run time by "
            "tests/support/certs.py (ECDSA P-256 leaf + intermediate; RSA 2048 for "
            "hs-full-rsa); TLS 1.2 and 1.3, the suites and groups of sidestep's `ciphers: "
            "intermediate` (read from src/tls/tls_ctx.c) in the client's order, tickets on, "
            "no session cache. Clients (wrk, tls-load) use OpenSSL's defaults: TLS 1.3, "
            "TLS_AES_256_GCM_SHA384, X25519. Keep-alive: wrk, %d s runs; handshakes: tls-load "
            "(bench/tls_load.c), %d s runs, %s connections at once."
            % (s["duration_s"], s["duration_s"], s.get("hs_conns", "—")))


def markdown(data):
    """The results section: settings, then per placement and worker count the tables."""
    meta = data["meta"]
    res = data["results"]
    m = meta["machine"]
    v = meta["versions"]
    s = meta["settings"]
    runs = meta.get("runs") or [{"command": meta["command"], "date": meta["date"],
                                 "elapsed_s": meta.get("elapsed_s", 0),
                                 "interrupted": meta.get("interrupted"),
                                 "loadavg_at_start": m["loadavg_at_start"],
                                 "loadavg_at_end": meta.get("loadavg_at_end")}]
    lines = []
    for run in runs:
        lines.append("Run: `%s` on %s, %.0f s%s; load average %s at the start, %s at the end."
                     % (run["command"], run["date"], run.get("elapsed_s") or 0,
                        " (interrupted)" if run.get("interrupted") else "",
                        " / ".join("%.2f" % x for x in run.get("loadavg_at_start") or []),
                        " / ".join("%.2f" % x for x in run.get("loadavg_at_end") or [])))
    if len(runs) > 1:
        lines.append("")
        lines.append("The tables merge these runs (`--report-only A.json,B.json`), choosing per "
                     "cell among all of their runs as below.")
    lines += [
        "",
        "Machine: %s CPUs (%s), kernel %s, open files %s. Other jobs shared the machine "
        "during the runs: see the `others' CPU` column."
        % (m["nproc"], m["cpu"], m["kernel"], m["nofile"]),
        "",
        "Versions: %s%s; %s; %s; %s." % (v["sidestep"],
                                         " at commit %s" % v["sidestep_commit"]
                                         if v.get("sidestep_commit") else "",
                                         v["nginx"], v["haproxy"], v["wrk"]),
        "",
        "wrk: 1 thread, %d connections, %d s per run after a %d s warm-up, a fresh server per "
        "run; each workload measured %d time(s), servers taking turns; the tables show, of "
        "the runs least disturbed by other processes (others' CPU within 3 points of the "
        "quietest), the one with the lowest CPU time per request."
        % (s["connections"], s["duration_s"], s["warmup_s"], s.get("repeat", 1)),
    ]
    if s.get("tls"):
        lines += ["", tls_settings_text(s)]
    else:
        lines[-1] += (" Idle: %d connections. Failover: %d GET/s, starting on %d keep-alive "
                      "connections, for %.1f s, primary SIGKILLed at %.1f s."
                      % (s["idle_conns"], s["failover_rate"], s["failover_conns"],
                         s["failover_seconds"], s["failover_kill_at_s"]))
    out = ["\n".join(lines)]
    tt = target_table(res)
    if tt:
        out.append("### Target check\n\n" + tt)
    tt = tls_target_table(res)
    if tt:
        out.append("### TLS target check\n\n" + tt)
    for placement, workers in _combos(res):
        if placement == "n/a":
            continue
        head = "### %s; %d worker%s" % (PLACEMENT_TEXT.get(placement, placement), workers,
                                        "" if workers == 1 else "s")
        parts = [head]
        t = wrk_tables(res, placement, workers)
        if t:
            parts.append(t)
        t = handshake_table(res, placement, workers)
        if t:
            parts.append("TLS handshakes (tls-load, %s connections at once, a new connection "
                         "per request; CPU per handshake includes the TCP accept and close):"
                         "\n\n%s" % (s.get("hs_conns", "—"), t))
        t = syscall_table(res, placement, workers)
        if t:
            parts.append("System calls per request (a separate 3 s run under `perf stat`, all "
                         "the server's processes):\n\n" + t)
        t = idle_table(res, placement, workers)
        if t:
            parts.append("Idle keep-alive connections (RSS summed over the server's processes):"
                         "\n\n" + t)
        t = failover_table(res, placement, workers)
        if t:
            parts.append("Failover under load (times from the SIGKILL of the primary's "
                         "backend):\n\n" + t)
        if len(parts) > 1:
            out.append("\n\n".join(parts))
    t = direct_table(res)
    if t:
        out.append("### wrk straight at the stub, and through sidestep (proxied GET)\n\n" + t)
    return "\n\n".join(out) + "\n"


# --- chart -------------------------------------------------------------------------------------


def chart(data, out_dir):
    """docs-style PNG: for each placement and worker count, CPU µs/request and req/s per
    workload, sidestep beside nginx and HAProxy. Returns the PNG path or None."""
    if shutil.which("gnuplot") is None:
        print("bench: gnuplot not found, no chart (apt-get install gnuplot-nox)", file=sys.stderr)
        return None
    res = data["results"]
    combos = [c for c in _combos(res) if any(r["type"] == "wrk" and
                                             (r["placement"], r["workers"]) == c for r in res)]
    servers = [s for s in ("sidestep", "nginx", "haproxy") if s in _servers(res, "wrk")]
    wls = _workloads(res, "wrk")
    if not combos or not servers or not wls:
        return None
    dats = []
    for placement, workers in combos:
        path = os.path.join(out_dir, "chart-%s-w%d.dat" % (placement, workers))
        with open(path, "w") as f:
            f.write("# workload " + " ".join("%s_cpu %s_krps" % (s, s) for s in servers) + "\n")
            for wl in wls:
                cells = []
                for s in servers:
                    r = _find(res, "wrk", placement, workers, wl, s)
                    if _ok(r):
                        cells += ["%.3f" % r["cpu_us_per_req"], "%.3f" % (r["rps"] / 1000)]
                    else:
                        cells += ["NaN", "NaN"]
                f.write("%s %s\n" % (wl, " ".join(cells)))
        dats.append((placement, workers, path))
    png = os.path.join(out_dir, "benchmarks.png")
    cols = len(dats)
    colors = {"sidestep": "#1b7837", "nginx": "#2166ac", "haproxy": "#b2182b"}
    gp = ["set terminal pngcairo size %d,900 font 'DejaVu Sans,10'" % max(700, 520 * cols),
          "set output '%s'" % png,
          "set style data histograms",
          "set style histogram clustered gap 1",
          "set style fill solid 0.9 border -1",
          "set boxwidth 0.9",
          "set grid ytics",
          "set key top left",
          "set xtics rotate by -25",
          "set yrange [0:*]",
          "set xrange [-0.6:%g]" % (len(wls) - 0.4),
          "set multiplot layout 2,%d title 'sidestep, nginx and HAProxy on loopback "
          "(%s)'" % (cols, data["meta"]["date"])]
    for metric, col_off, ylabel in (("cpu", 0, "server CPU µs per request (lower is better)"),
                                    ("krps", 1, "thousand requests/s (higher is better)")):
        for placement, workers, path in dats:
            gp.append("set title '%s, %d worker%s'" % (placement, workers,
                                                        "" if workers == 1 else "s"))
            gp.append("set ylabel '%s'" % ylabel)
            plots = []
            for i, s in enumerate(servers):
                col = 2 + 2 * i + col_off
                xt = ":xtic(1)" if i == 0 else ""
                plots.append("'%s' using %d%s title '%s' lc rgb '%s'"
                             % (path, col, xt, s, colors[s]))
            gp.append("plot " + ", ".join(plots))
    gp.append("unset multiplot")
    script = os.path.join(out_dir, "chart.gp")
    with open(script, "w") as f:
        f.write("\n".join(gp) + "\n")
    try:
        done = subprocess.run(["gnuplot", script], capture_output=True, timeout=60)
    except subprocess.TimeoutExpired:
        print("bench: gnuplot timed out", file=sys.stderr)
        return None
    if done.returncode != 0:
        print("bench: gnuplot failed: %s" % done.stderr.decode(errors="replace")[-800:],
              file=sys.stderr)
        return None
    return png


def update_doc(root, text, png, tls=False):
    """Rewrites the results part of docs/benchmarks.md (the TLS part for a --tls run)."""
    doc = os.path.join(root, "docs", "benchmarks.md")
    begin, end = (TLS_DOC_BEGIN, TLS_DOC_END) if tls else (DOC_BEGIN, DOC_END)
    with open(doc) as f:
        old = f.read()
    if begin not in old or end not in old:
        print("bench: %s lacks the %s ... %s markers; not updated" % (doc, begin, end),
              file=sys.stderr)
        return False
    head, rest = old.split(begin, 1)
    _, tail = rest.split(end, 1)
    with open(doc + ".tmp", "w") as f:
        f.write(head + begin + "\n" + text + "\n" + end + tail)
    os.replace(doc + ".tmp", doc)
    if png:
        shutil.copyfile(png, os.path.join(root, "docs", "benchmarks.png"))
    print("bench: updated %s%s" % (doc, " and docs/benchmarks.png" if png else ""),
          file=sys.stderr)
    return True


def emit(data, out_dir, root, update):
    """Prints the tables, saves results.md and the chart; rewrites the doc when asked.
    Returns 0, or 1 when any run failed."""
    text = markdown(data)
    with open(os.path.join(out_dir, "results.md"), "w") as f:
        f.write(text)
    print(text)
    tls = bool(data["meta"]["settings"].get("tls"))
    # the chart is the plain-HTTP matrix's: a --tls run leaves docs/benchmarks.png alone
    png = None if tls else chart(data, out_dir)
    if update:
        update_doc(root, text, png, tls=tls)
    failed = [r for r in data["results"] if r.get("error")]
    if failed:
        print("bench: %d run(s) failed" % len(failed), file=sys.stderr)
        return 1
    return 0
