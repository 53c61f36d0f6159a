"""`sidestep drill` on loopback: sidestep in front of two stub regions with short health
intervals and a 1 s failback_delay. The drill's JSON report must show the failover and the
fail-back it caused, with no 5xx; an interrupted drill and one whose failover never comes must
still clear the force they set."""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import sst  # noqa: E402

FAILBACK_MS = 1000


def config(us, eu, ap):
    return {
        "listen": ["127.0.0.1:0"],
        "admin": {"address": "127.0.0.1:0"},
        "workers": 2,
        "local_region": "us-east",
        # generous enough that a loaded sanitizer build never fails a probe by accident
        "health": {"path": "/healthz", "interval": "%dms" % sst.scaled(250),
                   "timeout": "%dms" % sst.scaled(200), "rise": 1, "fall": 3},
        "regions": [
            {"name": "us-east", "url": "http://127.0.0.1:1", "backends": [us.addr],
             "failback_delay": "%dms" % FAILBACK_MS},
            {"name": "eu-west", "url": "http://%s" % eu.addr, "backends": [eu.addr],
             "failback_delay": "%dms" % FAILBACK_MS},
            {"name": "ap-south", "url": "http://%s" % ap.addr, "backends": [ap.addr],
             "failback_delay": "%dms" % FAILBACK_MS},
        ],
        "routes": [
            {"name": "drill", "match": {"host": "*", "path_prefix": "/drill"},
             "primary": "us-east", "failover": ["eu-west", "ap-south"]},
            {"name": "default", "match": {"host": "*", "path_prefix": "/"},
             "primary": "us-east", "failover": ["ap-south"]},
        ],
        "log": {"access": "off"},
    }


class Drill(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.us = sst.Stub(name="us-east")
        cls.eu = sst.Stub(name="eu-west")
        cls.ap = sst.Stub(name="ap-south")
        cls.proxy = sst.Sidestep(config(cls.us, cls.eu, cls.ap))
        cls.tmp = tempfile.mkdtemp(prefix="sidestep-drill-")

        def ready():
            st = cls.status()
            return all(r["routable"] for r in st["regions"])
        sst.wait_until(ready, 5.0, what="every region routable")

    @classmethod
    def tearDownClass(cls):
        code = cls.proxy.stop()
        for s in (cls.us, cls.eu, cls.ap):
            s.stop()
        if code != 0:
            raise AssertionError("sidestep exit code %d" % code)

    @classmethod
    def status(cls):
        return sst.http(cls.proxy.admin_port, "GET", "/status").json()

    def region(self, name):
        return next(r for r in self.status()["regions"] if r["name"] == name)

    def tearDown(self):
        # whatever happened, the drill must not have left a force behind
        self.assertIsNone(self.region("us-east")["force"])
        sst.wait_until(lambda: self.region("us-east")["routable"], 5.0,
                       what="us-east routable again")

    def drill_argv(self, *extra, path="/drill/x", report=None):
        argv = [sst.SST_BIN, "drill", "--url", "http://127.0.0.1:%d%s" % (self.proxy.port, path),
                "--admin", "127.0.0.1:%d" % self.proxy.admin_port, "--timeout", "2s"]
        if report is not None:
            argv += ["--json", report]
        return argv + list(extra)

    def run_drill(self, *extra, path="/drill/x", timeout=40):
        report = os.path.join(self.tmp, "report-%d.json" % time.monotonic_ns())
        p = subprocess.run(self.drill_argv(*extra, path=path, report=report),
                           capture_output=True, text=True, timeout=sst.scaled(timeout))
        with open(report) as f:
            return p, json.load(f)

    def check_passed(self, p, rep, expected="eu-west"):
        msg = "stdout:\n%s\nstderr:\n%s" % (p.stdout, p.stderr)
        self.assertEqual(p.returncode, 0, msg)
        self.assertEqual(rep["result"], "pass", msg)
        self.assertEqual(rep["problems"], [])
        self.assertEqual((rep["region"], rep["expected_region"]), ("us-east", expected))
        self.assertEqual(rep["failback_delay_ms"], FAILBACK_MS)
        # the failover it caused: measured from the force-down, well under a second here
        self.assertIsNotNone(rep["failover_ms"], msg)
        self.assertLess(rep["failover_ms"], 1000)
        # the fail-back: the region is held for failback_delay after the restore
        self.assertIsNotNone(rep["failback_ms"], msg)
        self.assertGreaterEqual(rep["failback_ms"], FAILBACK_MS - 50)
        self.assertLess(rep["failback_ms"], FAILBACK_MS + 2000)
        self.assertLess(rep["force_down_at_ms"], rep["clear_at_ms"])
        # clients saw proxied answers and redirects to the expected region only
        self.assertGreater(rep["statuses"].get("200", 0), 0, rep["statuses"])
        self.assertGreater(rep["statuses"].get("307 " + expected, 0), 0, rep["statuses"])
        for key in rep["statuses"]:
            self.assertFalse(key.startswith("5"), rep["statuses"])
            self.assertTrue(key == "200" or key == "307 " + expected, rep["statuses"])
        self.assertEqual(rep["errors"], {"connect": 0, "timeout": 0, "reset": 0, "protocol": 0,
                                         "unexpected_status": 0})
        self.assertEqual(rep["requests"]["answered"], rep["requests"]["sent"])
        self.assertEqual(rep["phases"]["before"]["redirected_expected"], 0)
        self.assertGreater(rep["phases"]["during"]["redirected_expected"], 0)
        self.assertGreater(rep["phases"]["after"]["proxied"], 0)
        self.assertIn("failover", p.stdout)
        self.assertIn("PASS", p.stdout)

    def test_drill_reports_failover_and_failback(self):
        events_before = self.proxy.stderr_text().count("operator force-down: drill")
        p, rep = self.run_drill("--rate", "50", "--hold", "1s")
        self.check_passed(p, rep)
        self.assertEqual(rep["route"], "drill")
        self.assertEqual((rep["method"], rep["rate"]), ("GET", 50))
        # 50 req/s for the whole drill: at least the hold plus the failback delay's worth
        self.assertGreater(rep["requests"]["sent"], 50 * 2 * 0.8)
        # the events it caused were logged by sidestep
        self.proxy.wait_stderr("operator clear force-down: drill")
        self.assertGreater(self.proxy.stderr_text().count("operator force-down: drill"),
                           events_before)

    def test_post_drill_with_body_on_the_default_route(self):
        p, rep = self.run_drill("--rate", "40", "--hold", "500ms", "--method", "POST",
                                "--body-size", "2k", path="/orders")
        self.check_passed(p, rep, expected="ap-south")
        self.assertEqual(rep["route"], "default")
        self.assertEqual((rep["method"], rep["body_size"]), ("POST", 2048))

    def test_no_failover_gives_up_and_restores(self):
        # expecting eu-west on the default route, whose failover is ap-south: never happens
        p, rep = self.run_drill("--rate", "30", "--expect", "eu-west", "--failover-timeout",
                                "1s", path="/other")
        self.assertEqual(p.returncode, 1, p.stderr)
        self.assertEqual(rep["result"], "fail")
        self.assertIsNone(rep["failover_ms"])
        self.assertTrue(any("no failover" in x for x in rep["problems"]), rep["problems"])
        self.assertIn("FAIL", p.stdout)
        self.assertGreater(rep["statuses"].get("307 ap-south", 0), 0)

    def test_interrupted_drill_clears_the_force(self):
        report = os.path.join(self.tmp, "interrupted.json")
        proc = subprocess.Popen(self.drill_argv("--rate", "20", "--hold", "30s", report=report),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            sst.wait_until(lambda: self.region("us-east")["force"] is not None, 10.0,
                           what="the drill's force-down")
            time.sleep(0.3)
            proc.send_signal(signal.SIGINT)
            out, err = proc.communicate(timeout=sst.scaled(10))
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        self.assertEqual(proc.returncode, 1, err)
        self.assertIsNone(self.region("us-east")["force"])
        with open(report) as f:
            rep = json.load(f)
        self.assertEqual(rep["result"], "fail")
        self.assertTrue(any("interrupted" in x for x in rep["problems"]), rep["problems"])
        self.assertIn("interrupted", err)

    def test_usage_and_unreachable_admin(self):
        p = subprocess.run([sst.SST_BIN, "drill", "--rate", "fast"], capture_output=True,
                           text=True, timeout=sst.scaled(10))
        self.assertEqual(p.returncode, 2)
        self.assertIn("--rate", p.stderr)
        p = subprocess.run([sst.SST_BIN, "drill", "--url", "https://example.test/"],
                           capture_output=True, text=True, timeout=sst.scaled(10))
        self.assertEqual(p.returncode, 2)
        p = subprocess.run([sst.SST_BIN, "drill", "--admin", "127.0.0.1:%d" % sst.free_port(),
                            "--url", "http://127.0.0.1:%d/" % self.proxy.port],
                           capture_output=True, text=True, timeout=sst.scaled(20))
        self.assertEqual(p.returncode, 1)
        self.assertIn("connection refused", p.stderr)
        p = subprocess.run(self.drill_argv("--region", "mars"), capture_output=True, text=True,
                           timeout=sst.scaled(20))
        self.assertEqual(p.returncode, 1)
        self.assertIn("mars", p.stderr)


if __name__ == "__main__":
    unittest.main()
