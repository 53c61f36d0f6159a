"""The benchmark harnesses run: bench/bench.py --quick on the smallest workload set (GET answered
with 307) against sidestep, nginx and HAProxy, and prints a table with a row per server; then
the TLS path (--tls --quick): keep-alive 307 over https, full and resumed handshakes with
tls-load, the same certificate for all three; and bench/failover.py on its shortest scenario
(the primary region refuses connections under POSTs, about 10 s) against sidestep and HAProxy.
Speed is not checked, only that every figure is there, plausible in kind (resumed handshakes
resumed, full ones not) and error-free. Skipped when a tool is missing.
"""

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import unittest

SOURCE = os.environ.get("SST_SOURCE_DIR") or os.path.dirname(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BENCH = os.path.join(SOURCE, "bench", "bench.py")
FAILOVER = os.path.join(SOURCE, "bench", "failover.py")
SBIN_PATH = os.environ.get("PATH", "") + ":/usr/sbin:/sbin"
TOOLS = ("wrk", "nginx", "haproxy", "taskset")
MISSING = [t for t in TOOLS if shutil.which(t, path=SBIN_PATH) is None]
SERVERS = ("sidestep", "nginx", "haproxy")
TLS_WORKLOADS = ("get307-tls", "hs-full-ecdsa", "hs-resume")


def still_running(pid, started):
    """True while pid is the process that started at `started` (clock ticks since boot)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return fields[0] != "Z" and int(fields[19]) == started


@unittest.skipIf(MISSING, "benchmark tools missing: %s (scripts/install-deps.sh test)"
                 % ", ".join(MISSING))
@unittest.skipUnless(os.environ.get("SST_BIN") and os.environ.get("SST_STUB"),
                     "SST_BIN and SST_STUB are not set (run through ctest)")
class BenchSmoke(unittest.TestCase):
    def test_quick_get307_prints_a_table(self):
        out_dir = tempfile.mkdtemp(prefix="sidestep-bench-smoke-")
        try:
            done = subprocess.run(
                [sys.executable, "-B", BENCH, "--quick", "--workloads", "get307",
                 "--out", out_dir],
                capture_output=True, timeout=55)
            stdout = done.stdout.decode("utf-8", "replace")
            stderr = done.stderr.decode("utf-8", "replace")
            self.assertEqual(done.returncode, 0, "bench failed:\n%s\n%s" % (stdout, stderr))

            self.assertIn("| workload | server   | req/s", stdout)
            for server in SERVERS:
                m = re.search(r"^\| get307 +\| %s +\| (\d+) +\| ([\d.]+) +\| ([\d.]+) +\| "
                              r"([\d.]+) " % server, stdout, re.M)
                self.assertIsNotNone(m, "no get307 row for %s in:\n%s" % (server, stdout))
                self.assertGreater(int(m.group(1)), 0, "req/s of %s" % server)
                self.assertGreater(float(m.group(4)), 0.0, "CPU per request of %s" % server)
            # sidestep's figures as ratios to each peer
            self.assertRegex(stdout, r"\| get307 +\| [\d.]+× +\| [\d.]+× ")

            with open(os.path.join(out_dir, "results.json")) as f:
                data = json.load(f)
            rows = [r for r in data["results"] if r["type"] == "wrk"]
            self.assertEqual(sorted(r["server"] for r in rows), sorted(SERVERS))
            for r in rows:
                self.assertIsNone(r["error"])
                self.assertGreater(r["requests"], 0)
                self.assertEqual(r["errors"], 0, "%s: wrk saw errors" % r["server"])
                self.assertGreater(r["peak_rss_kib"], 0)
            self.assertFalse(data["meta"]["interrupted"])
            # sidestep stopped cleanly, and no server the harness started is left running
            self.assertNotIn("NOTE: sidestep exited", stderr)
            procs = data["meta"]["processes"]
            self.assertGreaterEqual(len(procs), 6, procs)  # 3 servers, 3 wrk, nginx's worker
            self.assertEqual([p for p in procs if still_running(p[1], p[2])], [])
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)

    def test_quick_tls_prints_keepalive_and_handshake_tables(self):
        out_dir = tempfile.mkdtemp(prefix="sidestep-bench-smoke-tls-")
        try:
            done = subprocess.run(
                [sys.executable, "-B", BENCH, "--tls", "--quick", "--duration", "1",
                 "--workloads", ",".join(TLS_WORKLOADS), "--out", out_dir],
                capture_output=True, timeout=150)
            stdout = done.stdout.decode("utf-8", "replace")
            stderr = done.stderr.decode("utf-8", "replace")
            self.assertEqual(done.returncode, 0, "bench failed:\n%s\n%s" % (stdout, stderr))

            for server in SERVERS:
                m = re.search(r"^\| get307-tls +\| %s +\| (\d+) +\| [\d.]+ +\| [\d.]+ +\| "
                              r"([\d.]+) " % server, stdout, re.M)
                self.assertIsNotNone(m, "no get307-tls row for %s in:\n%s" % (server, stdout))
                self.assertGreater(int(m.group(1)), 0, "req/s of %s" % server)
                self.assertGreater(float(m.group(2)), 0.0, "CPU per request of %s" % server)
                for wl, resumed in (("hs-full-ecdsa", "0%"), ("hs-resume", r"\d+%")):
                    m = re.search(r"^\| %s +\| %s +\| (\d+) +\| (%s) +\| ([\d.]+) +\| \d+%% +\| "
                                  r"(\d+) +\| 0 " % (wl, server, resumed), stdout, re.M)
                    self.assertIsNotNone(m, "no %s row for %s in:\n%s" % (wl, server, stdout))
                    self.assertGreater(int(m.group(1)), 0, "%s handshakes/s" % server)
                    self.assertGreater(float(m.group(3)), 0.0, "%s CPU/handshake" % server)
            self.assertIn("### TLS target check", stdout)
            self.assertRegex(stdout, r"\| hs-full-ecdsa +\| [\d.]+× +\| [\d.]+× +\| [\d.]+× ")

            with open(os.path.join(out_dir, "results.json")) as f:
                data = json.load(f)
            self.assertTrue(data["meta"]["settings"]["tls"])
            self.assertFalse(data["meta"]["interrupted"])
            rows = data["results"]
            self.assertEqual(sorted((r["workload"], r["server"]) for r in rows),
                             sorted((w, s) for w in TLS_WORKLOADS for s in SERVERS))
            negotiated = set()
            for r in rows:
                self.assertIsNone(r["error"], r)
                self.assertEqual(r["errors"], 0, "%s %s: errors" % (r["workload"], r["server"]))
                if r["type"] != "handshake":
                    continue
                self.assertGreater(r["handshakes"], 0, r)
                negotiated.add(r["negotiated"])
                self.assertEqual(r["other_negotiated"], 0, r)
                self.assertEqual(r["statuses"], {"307": r["answers"]}, r)
                if r["mode"] == "full":
                    self.assertEqual(r["resumed"], 0, r)
                else:  # each slot's first connection is a full handshake, the rest resume
                    self.assertGreaterEqual(r["resumed"],
                                            r["handshakes"] - 2 * r["connections"], r)
            # the same version, suite and group with every server
            self.assertEqual(len(negotiated), 1, negotiated)
            self.assertRegex(negotiated.pop(), r"^TLSv1\.3 TLS_AES_\w+ \w+$")
            # the certificates were made at run time, into the run's directory
            self.assertTrue(os.path.exists(os.path.join(out_dir, "certs", "api-ecdsa.pem")))
            self.assertNotIn("NOTE: sidestep exited", stderr)
            procs = data["meta"]["processes"]
            self.assertEqual([p for p in procs if still_running(p[1], p[2])], [])
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)


@unittest.skipIf(shutil.which("haproxy", path=SBIN_PATH) is None or shutil.which("taskset") is None,
                 "haproxy or taskset missing (scripts/install-deps.sh test)")
@unittest.skipUnless(os.environ.get("SST_BIN") and os.environ.get("SST_STUB"),
                     "SST_BIN and SST_STUB are not set (run through ctest)")
class GraySmoke(unittest.TestCase):
    def test_refused_region_under_posts(self):
        out_dir = tempfile.mkdtemp(prefix="sidestep-gray-smoke-")
        try:
            done = subprocess.run(
                [sys.executable, "-B", FAILOVER, "--faults", "refused", "--workloads", "post",
                 "--before", "0.5", "--after", "1.5", "--no-verify", "--selfcheck", "0",
                 "--out", out_dir],
                capture_output=True, timeout=60)
            stdout = done.stdout.decode("utf-8", "replace")
            stderr = done.stderr.decode("utf-8", "replace")
            self.assertEqual(done.returncode, 0, "failover.py failed:\n%s\n%s" % (stdout, stderr))
            for server in ("sidestep", "haproxy"):
                self.assertRegex(stdout, r"\| refused +\| post +\| %s +\| \d+" % server)

            with open(os.path.join(out_dir, "results.json")) as f:
                data = json.load(f)
            rows = {r["server"]: r for r in data["results"] if r["type"] == "gray"}
            self.assertEqual(sorted(rows), ["haproxy", "sidestep"])
            for server, r in rows.items():
                self.assertIsNone(r["error"], server)
                self.assertEqual(r["requests"], 200, server)  # 100/s for 2 s, none omitted
                self.assertEqual(r["errors_before"], 0, "%s failed before the fault" % server)
                # the relays counted the POSTs by id, and both regions answered
                self.assertGreater(r["reached_backends"], 0, server)
                self.assertEqual(r["relays"]["us-east-1"]["fault"], "refused")
                self.assertEqual(r["relays"]["us-east-2"]["fault"], "refused")
                self.assertIsNone(r["relays"]["eu-west"]["fault"])
                self.assertGreater(r["answers"].get("primary", 0), 0, server)
                self.assertIsNotNone(r["first_failover_ms"], "%s never failed over" % server)
            # a refused connect is redirected at once: only a POST in flight when the relay
            # reset its connections may fail, and none reaches a backend twice
            me = rows["sidestep"]
            self.assertEqual(me["errors"] - me["errors_in_flight"], 0, me["errors_by_kind"])
            self.assertEqual(me["sent_twice"], 0)
            self.assertFalse(data["meta"]["interrupted"])
            self.assertNotIn("NOTE: sidestep exited", stderr)
            procs = data["meta"]["processes"]
            self.assertGreaterEqual(len(procs), 10, procs)  # 2 x (3 stubs, relay, server)
            self.assertEqual([p for p in procs if still_running(p[1], p[2])], [])
        finally:
            shutil.rmtree(out_dir, ignore_errors=True)


if __name__ == "__main__":
    unittest.main(verbosity=2)
