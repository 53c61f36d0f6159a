"""Running wrk and reading its --latency report."""

import re

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text):
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError("wrk latency %r" % text)
    return float(m.group(1)) * _UNITS_MS[m.group(2)]


def parse(text):
    """Figures from wrk's output: requests, seconds, rps, p50_ms, p75_ms, p90_ms, p99_ms,
    socket_errors (dict), non_2xx_3xx. Raises ValueError when the report is not there."""
    out = {"socket_errors": {"connect": 0, "read": 0, "write": 0, "timeout": 0},
           "non_2xx_3xx": 0}
    m = re.search(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m),", text, re.M)
    if not m:
        raise ValueError("no request count in wrk output:\n" + text[-1500:])
    out["requests"] = int(m.group(1))
    out["seconds"] = _ms(m.group(2) + m.group(3)) / 1000.0
    m = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.M)
    if not m:
        raise ValueError("no Requests/sec in wrk output")
    out["rps"] = float(m.group(1))
    for pct in ("50", "75", "90", "99"):
        m = re.search(r"^\s+%s%%\s+(\S+)" % pct, text, re.M)
        if not m:
            raise ValueError("no %s%% latency in wrk output (run with --latency)" % pct)
        out["p%s_ms" % pct] = _ms(m.group(1))
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    if m:
        out["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"),
                                        (int(g) for g in m.groups())))
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    if m:
        out["non_2xx_3xx"] = int(m.group(1))
    return out


def argv(port, target, connections, seconds, body_bytes=None, script_dir=".", tls=False):
    """The wrk command line: one thread, --latency, POST through post.lua when body_bytes,
    https when `tls` (wrk's OpenSSL client defaults, no certificate check)."""
    cmd = ["wrk", "-t1", "-c%d" % connections, "-d%ds" % seconds, "--latency"]
    if body_bytes is not None:
        cmd += ["-s", "%s/post.lua" % script_dir]
    cmd.append("%s://127.0.0.1:%d%s" % ("https" if tls else "http", port, target))
    if body_bytes is not None:
        cmd += ["--", str(body_bytes)]
    return cmd
