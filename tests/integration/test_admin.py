"""The admin API and `sidestep ctl` over loopback: every endpoint and action with its error
answers, the bearer token rule, TTL expiry. Reload and graceful stop are in test_reload.py."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "support"))
import sst  # noqa: E402


class AdminCase(unittest.TestCase):
    """One sidestep in front of two stubs for the whole class; each test leaves no operator
    action behind."""

    token = None

    @classmethod
    def setUpClass(cls):
        cls.us = sst.Stub(name="us-east")
        cls.eu = sst.Stub(name="eu-west")
        cls.proxy = sst.Sidestep(sst.two_region_config(cls.us, cls.eu, token=cls.token))
        sst.wait_routable(cls.proxy, cls.token)

    @classmethod
    def tearDownClass(cls):
        code = cls.proxy.stop()
        cls.us.stop()
        cls.eu.stop()
        if code != 0:
            raise AssertionError("sidestep exit code %d:\n%s" % (code, cls.proxy.stderr_text()))

    # -- helpers

    def admin(self, method, target, body=None, headers=None, token=None):
        hdrs = list((headers or {}).items())
        tok = token if token is not None else self.token
        if tok is not None:
            hdrs.append(("Authorization", "Bearer " + tok))
        if isinstance(body, (dict, list)):
            body = json.dumps(body)
        return sst.http(self.proxy.admin_port, method, target, hdrs, body)

    def status(self):
        r = self.admin("GET", "/status")
        self.assertEqual(r.status, 200, r.text)
        return r.json()

    def region(self, name):
        return next(r for r in self.status()["regions"] if r["name"] == name)

    def get(self, target="/"):
        return sst.http(self.proxy.port, "GET", target)

    def wait_proxied(self, timeout=5.0):
        def proxied():
            r = self.get()
            return r.status == 200 and not r.has_header("X-Sidestep-Region")
        return sst.wait_until(proxied, timeout, what="traffic proxied to us-east")

    def ctl(self, *args, env=None):
        e = dict(os.environ)
        e.pop("SIDESTEP_TOKEN", None)
        e["SIDESTEP_ADMIN"] = "127.0.0.1:%d" % self.proxy.admin_port
        e.update(env or {})
        p = subprocess.run([sst.SST_BIN, "ctl"] + list(args), capture_output=True, text=True,
                           timeout=sst.scaled(20), env=e)
        return p.returncode, p.stdout, p.stderr


class StatusAndMetrics(AdminCase):
    def test_status_shape(self):
        self.get("/warm")
        st = self.status()
        for key in ("version", "pid", "time", "started_at", "uptime_ms", "workers", "config",
                    "listeners", "admin", "local_region", "counters", "regions", "routes"):
            self.assertIn(key, st)
        self.assertEqual(st["pid"], self.proxy.pid)
        self.assertEqual(st["workers"], 2)
        self.assertEqual(st["config"], {"version": 1, "source": self.proxy.config_path})
        self.assertEqual(st["listeners"], self.proxy.ready["listen"])
        self.assertEqual(st["admin"], self.proxy.ready["admin"])
        self.assertRegex(st["started_at"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
        c = st["counters"]
        for key in ("requests", "connections_active", "connections_total", "redirects",
                    "inflight_failovers"):
            self.assertIsInstance(c[key], int)
        self.assertGreaterEqual(c["requests"], 1)
        self.assertGreaterEqual(c["connections_total"], 1)
        names = [r["name"] for r in st["regions"]]
        self.assertEqual(names, ["us-east", "eu-west"])
        us = st["regions"][0]
        self.assertEqual(us["state"], "up")
        self.assertTrue(us["routable"])
        self.assertEqual(us["failback_delay_ms"], 300)
        self.assertIsNone(us["force"])
        self.assertIsNone(us["drain"])
        self.assertEqual(set(us["reason"]), {"code", "text"})
        b = us["backends"][0]
        self.assertEqual(b["address"], self.us.addr)
        self.assertEqual(b["region"], "us-east")
        self.assertEqual(b["state"], "up")
        sst.wait_until(lambda: self.region("us-east")["backends"][0]["probe"]["ok"] >= 1,
                       what="a probe result")
        p = self.region("us-east")["backends"][0]["probe"]
        self.assertEqual(p["last_status"], 200)
        self.assertEqual(p["last_result"], "L7OK")
        self.assertIsInstance(p["last_duration_ms"], int)
        self.assertGreaterEqual(p["consecutive_successes"], 1)
        self.assertEqual(p["failed"], 0)
        self.assertIn("ejections", b["passive"])
        rt = st["routes"][0]
        self.assertEqual((rt["name"], rt["primary"], rt["failover"]),
                         ("default", "us-east", ["eu-west"]))
        self.assertEqual(rt["decision"]["kind"], "proxy")
        self.assertEqual(rt["decision"]["region"], "us-east")
        self.assertIsNone(rt["decision"]["status"])

    def test_head_status_has_no_body(self):
        with sst.Conn(self.proxy.admin_port) as c:
            c.request("HEAD", "/status", self.auth_headers())
            r = c.recv_response(method="HEAD")
        self.assertEqual(r.status, 200)
        self.assertGreater(int(r.header("Content-Length")), 10)
        self.assertEqual(r.body, b"")

    def auth_headers(self):
        return [("Authorization", "Bearer " + self.token)] if self.token else []

    def test_metrics(self):
        self.get("/m")
        r = self.admin("GET", "/metrics")
        self.assertEqual(r.status, 200)
        self.assertTrue(r.header("Content-Type").startswith("text/plain; version=0.0.4"))
        for family in ("sidestep_requests_total", "sidestep_responses_total",
                       "sidestep_connections_active", "sidestep_upstream_requests_total",
                       "sidestep_backend_up", "sidestep_region_up", "sidestep_region_routable",
                       "sidestep_probes_total", "sidestep_reloads_total",
                       "sidestep_config_version", "sidestep_uptime_seconds"):
            self.assertIn("# TYPE %s " % family, r.text)
        self.assertIn('sidestep_region_up{region="us-east"} 1', r.text)

    def test_unknown_paths_and_methods(self):
        for target in ("/", "/nope", "/status/", "/regions/us-east", "/backends/x/drain",
                       "/regions/us-east/explode"):
            r = self.admin("POST", target, {"reason": "x"})
            self.assertEqual(r.status, 404, target)
            self.assertEqual(r.json()["status"], 404)
        r = self.admin("POST", "/status")
        self.assertEqual((r.status, r.header("Allow")), (405, "GET, HEAD"))
        r = self.admin("GET", "/regions/us-east/drain")
        self.assertEqual((r.status, r.header("Allow")), (405, "POST"))
        r = self.admin("DELETE", "/reload")
        self.assertEqual((r.status, r.header("Allow")), (405, "POST"))
        r = self.admin("GET", "/backends/%s/force-down" % self.us.addr)
        self.assertEqual((r.status, r.header("Allow")), (405, "POST"))
        r = self.admin("POST", "/regions/mars/drain", {"reason": "x"})
        self.assertEqual(r.status, 404)
        self.assertIn("mars", r.json()["error"])
        r = self.admin("POST", "/backends/127.0.0.1:1/force-down", {"reason": "x"})
        self.assertEqual(r.status, 404)
        r = self.admin("POST", "/regions/a%zz/drain", {"reason": "x"})
        self.assertEqual(r.status, 400)

    def test_bad_bodies(self):
        cases = [None, "", "reason=x", "{", "[]", '{"reason": 1}', '{"reason": ""}',
                 '{"reason": "  "}', '{"reason": "x", "ttl": "soon"}', '{"reason": "x", "ttl": 5}',
                 '{"reason": "x", "ttl": "0"}', '{"reason": "x", "extra": true}', "{}",
                 '{"reason": "%s"}' % ("r" * 101)]
        for body in cases:
            r = self.admin("POST", "/regions/us-east/force-down", body)
            self.assertEqual(r.status, 400, repr(body))
            self.assertTrue(r.json()["error"], repr(body))
        r = self.admin("POST", "/regions/us-east/clear", {"reason": "x", "ttl": "1m"})
        self.assertEqual(r.status, 400)
        self.assertIn("ttl", r.json()["error"])
        # nothing was applied
        self.assertIsNone(self.region("us-east")["force"])

    def test_limits_and_garbage(self):
        port = self.proxy.admin_port
        out = sst.raw(port, b"\x16\x03\x01\x00\xa5garbage\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out[:60])
        big_head = b"GET /status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 20000 + b"\r\n\r\n"
        out = sst.raw(port, big_head)
        self.assertTrue(out.startswith(b"HTTP/1.1 431 "), out[:60])
        out = sst.raw(port, b"POST /regions/us-east/drain HTTP/1.1\r\nHost: x\r\n"
                      b"Content-Length: 70000\r\n\r\n")
        self.assertTrue(out.startswith(b"HTTP/1.1 413 "), out[:60])
        with sst.Conn(port) as c:  # chunked, past the cap
            c.send(b"POST /regions/us-east/drain HTTP/1.1\r\nHost: x\r\n"
                   b"Transfer-Encoding: chunked\r\n\r\n")
            c.send(sst.chunked([b"{" * 40000, b" " * 40000]))
            self.assertEqual(c.recv_response().status, 413)
        out = sst.raw(port, b"GET /status HTTP/1.1\r\n\r\n")  # no Host
        self.assertTrue(out.startswith(b"HTTP/1.1 400 "), out[:60])
        # the listener still answers
        self.assertEqual(self.admin("GET", "/status").status, 200)

    def test_half_closed_client_gets_its_answer(self):
        hdrs = "".join("%s: %s\r\n" % h for h in self.auth_headers())
        out = sst.raw(self.proxy.admin_port,
                      ("GET /status HTTP/1.1\r\nHost: x\r\n%s\r\n" % hdrs).encode(),
                      half_close=True)
        self.assertTrue(out.startswith(b"HTTP/1.1 200 "), out[:60])
        self.assertTrue(out.rstrip().endswith(b"}"))

    def test_expect_continue(self):
        with sst.Conn(self.proxy.admin_port) as c:
            body = json.dumps({"reason": "expect"}).encode()
            c.request("POST", "/regions/eu-west/drain",
                      self.auth_headers() + [("Expect", "100-continue"),
                                             ("Content-Length", str(len(body)))])
            interim = c.recv_head()
            self.assertEqual(interim.status, 100)
            c.send(body)
            r = c.recv_response()
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["drain"]["reason"], "expect")
        self.assertEqual(self.admin("POST", "/regions/eu-west/undrain",
                                    {"reason": "done"}).status, 200)

    def test_many_concurrent_clients(self):
        results = []
        lock = threading.Lock()

        def client():
            for _ in range(5):
                r = self.admin("GET", "/status")
                with lock:
                    results.append(r.status)

        # plus some idle connections holding slots open
        idle = [socket.create_connection(("127.0.0.1", self.proxy.admin_port)) for _ in range(20)]
        try:
            threads = [threading.Thread(target=client) for _ in range(40)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=sst.scaled(30))
        finally:
            for s in idle:
                s.close()
        self.assertEqual(results, [200] * 200)

    def test_idle_connections_cannot_lock_out_an_operator(self):
        # 128 connections that send nothing fill every slot: the next client takes the slot of
        # the oldest, which is closed, and is answered at once
        idle = [socket.create_connection(("127.0.0.1", self.proxy.admin_port))
                for _ in range(128)]
        try:
            time.sleep(sst.scaled(0.3))
            t0 = time.monotonic()
            with sst.Conn(self.proxy.admin_port) as c:
                c.request("GET", "/status", self.auth_headers())
                self.assertEqual(c.recv_response().status, 200)
            self.assertLess(time.monotonic() - t0, sst.scaled(2.0))
            idle[0].settimeout(sst.scaled(2.0))
            self.assertEqual(idle[0].recv(100), b"")  # the oldest was closed
        finally:
            for s in idle:
                s.close()

    def test_connection_cap_queues_requests_past_their_head(self):
        # 128 requests waiting for their bodies are not evicted: the next client waits in the
        # backlog and is served as soon as one of them ends
        # a valid head (known region, the token when there is one): the body is awaited
        auth = "".join("%s: %s\r\n" % h for h in self.auth_headers())
        head = ("POST /regions/us-east/drain HTTP/1.1\r\nHost: x\r\n%sContent-Length: 20\r\n"
                "\r\n" % auth).encode()
        busy = []
        try:
            for _ in range(128):
                s = socket.create_connection(("127.0.0.1", self.proxy.admin_port))
                busy.append(s)
                s.sendall(head)
            time.sleep(sst.scaled(0.3))
            with sst.Conn(self.proxy.admin_port) as c:
                c.request("GET", "/status", self.auth_headers())
                self.assertEqual(c.recv_some(0.5), b"")
                busy.pop().close()
                self.assertEqual(c.recv_response().status, 200)
        finally:
            for s in busy:
                s.close()

    def test_slow_request_gets_408(self):
        with sst.Conn(self.proxy.admin_port) as c:
            c.send(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # never finished
            t0 = time.monotonic()
            r = c.recv_response(timeout=10)
            self.assertEqual(r.status, 408)
            self.assertIn("head not received", r.json()["error"])
            self.assertGreater(time.monotonic() - t0, 2.5)
        with sst.Conn(self.proxy.admin_port) as c:
            c.request("POST", "/regions/us-east/drain",
                      self.auth_headers() + [("Content-Length", "30")])
            c.send(b'{"reason":')  # the body never completes
            r = c.recv_response(timeout=15)
            self.assertEqual(r.status, 408)
            self.assertIn("body not received", r.json()["error"])

class Actions(AdminCase):
    def tearDown(self):
        for name in ("us-east", "eu-west"):
            self.admin("POST", "/regions/%s/clear" % name, {"reason": "cleanup"})
            self.admin("POST", "/regions/%s/undrain" % name, {"reason": "cleanup"})
        for b in (self.us.addr, self.eu.addr):
            self.admin("POST", "/backends/%s/clear" % b, {"reason": "cleanup"})
        # a region that was down is held for failback_delay: wait it out
        sst.wait_routable(self.proxy, self.token)
        self.wait_proxied()

    def test_region_force_down_redirects_next_request(self):
        self.wait_proxied()
        r = self.admin("POST", "/regions/us-east/force-down", {"reason": "drill", "ttl": "10m"})
        self.assertEqual(r.status, 200, r.text)
        j = r.json()
        self.assertEqual((j["name"], j["state"], j["routable"]), ("us-east", "down", False))
        self.assertEqual(j["force"]["state"], "down")
        self.assertEqual(j["force"]["reason"], "drill")
        self.assertTrue(590000 <= j["force"]["expires_in_ms"] <= 600000)
        self.assertEqual(j["reason"]["code"], "OPERATOR")
        self.assertIn("drill", j["reason"]["text"])
        resp = self.get("/next?q=1")  # the very next request
        self.assertEqual(resp.status, 307)
        self.assertEqual(resp.header("X-Sidestep-Region"), "eu-west")
        self.assertEqual(resp.header("Location"), "http://%s/next?q=1" % self.eu.addr)
        dec = self.status()["routes"][0]["decision"]
        self.assertEqual((dec["kind"], dec["region"], dec["status"]), ("redirect", "eu-west", 307))
        self.assertEqual(dec["location"], "http://%s/" % self.eu.addr)
        # the event is logged with the reason
        self.proxy.wait_stderr("operator force-down: drill")

        r = self.admin("POST", "/regions/us-east/clear", {"reason": "drill over"})
        self.assertEqual(r.status, 200)
        j = r.json()
        self.assertIsNone(j["force"])
        self.assertEqual(j["state"], "up")
        self.assertIsNotNone(j["failback_hold"])  # failback_delay before traffic returns
        self.assertEqual(self.get().status, 307)
        self.wait_proxied()

    def test_region_force_up_drain_undrain(self):
        r = self.admin("POST", "/regions/eu-west/force-up", {"reason": "pin"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.json()["force"], {"state": "up", "reason": "pin", "expires": None,
                                             "expires_in_ms": None})
        r = self.admin("POST", "/regions/us-east/drain", {"reason": "maint", "ttl": "5m"})
        self.assertEqual(r.status, 200)
        j = r.json()
        self.assertEqual(j["drain"]["reason"], "maint")
        self.assertFalse(j["routable"])
        self.assertEqual(j["state"], "up")  # a drain is not a failure
        self.assertEqual(self.get().header("X-Sidestep-Region"), "eu-west")
        r = self.admin("POST", "/regions/us-east/undrain", {"reason": "maint over"})
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.json()["drain"])
        self.assertTrue(r.json()["routable"])  # undrain starts no failback hold
        self.assertEqual(self.get().status, 200)

    def test_backend_actions(self):
        addr = self.us.addr
        r = self.admin("POST", "/backends/%s/force-down" % addr, {"reason": "kernel", "ttl": "1h"})
        self.assertEqual(r.status, 200, r.text)
        j = r.json()
        self.assertEqual((j["address"], j["region"], j["state"]), (addr, "us-east", "down"))
        self.assertEqual(j["force"]["state"], "down")
        # us-east's only backend is forced down: the region fails over
        self.assertEqual(self.region("us-east")["backends_up"], 0)
        self.assertEqual(self.get().status, 307)
        r = self.admin("POST", "/backends/%s/force-up" % addr, {"reason": "back"})
        self.assertEqual(r.json()["force"]["state"], "up")
        r = self.admin("POST", "/backends/%s/clear" % addr.replace(":", "%3A"),
                       {"reason": "done"})
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.json()["force"])
        self.assertEqual(r.json()["state"], "up")

    def test_ttl_expiry(self):
        r = self.admin("POST", "/regions/us-east/force-down", {"reason": "short", "ttl": "700ms"})
        self.assertEqual(r.status, 200)
        self.assertEqual(self.get().status, 307)
        reg = sst.wait_until(lambda: (lambda g: g if g["force"] is None else None)(
            self.region("us-east")), 5.0, what="the force to expire")
        self.assertEqual(reg["reason"]["code"], "TTL")
        self.proxy.wait_stderr("reason=TTL")
        self.wait_proxied()
        r = self.admin("POST", "/backends/%s/force-down" % self.eu.addr,
                       {"reason": "short", "ttl": "300ms"})
        self.assertEqual(r.json()["state"], "down")
        sst.wait_until(lambda: self.region("eu-west")["backends"][0]["force"] is None, 5.0,
                       what="the backend force to expire")

    def test_clear_without_force_is_harmless(self):
        r = self.admin("POST", "/regions/eu-west/clear", {"reason": "nothing"})
        self.assertEqual(r.status, 200)
        self.assertIsNone(r.json()["force"])
        self.assertEqual(self.admin("POST", "/regions/eu-west/undrain",
                                    {"reason": "nothing"}).status, 200)

    def test_ctl(self):
        code, out, err = self.ctl("status")
        self.assertEqual(code, 0, err)
        self.assertIn("us-east", out)
        self.assertIn("proxy to us-east", out)
        code, out, err = self.ctl("--json", "status")
        self.assertEqual(code, 0, err)
        self.assertEqual(json.loads(out)["regions"][1]["name"], "eu-west")
        code, out, err = self.ctl("force-down", "region", "us-east", "--reason", "ctl test",
                                  "--ttl", "2m")
        self.assertEqual(code, 0, err)
        self.assertIn('forced down: "ctl test"', out)
        code, out, err = self.ctl("status")
        self.assertRegex(out, r"redirect 307 to eu-west")
        code, out, err = self.ctl("clear", "region", "us-east", "--reason=done")
        self.assertEqual(code, 0, err)
        code, out, err = self.ctl("force-down", "backend", self.eu.addr, "--reason", "b")
        self.assertEqual(code, 0, err)
        self.assertIn(self.eu.addr, out)
        code, out, err = self.ctl("clear", "backend", self.eu.addr, "--reason", "b")
        self.assertEqual(code, 0, err)
        code, out, err = self.ctl("drain", "mars", "--reason", "x")
        self.assertEqual(code, 1)
        self.assertIn('404: unknown region "mars"', err)
        code, out, err = self.ctl("metrics")
        self.assertEqual(code, 0, err)
        self.assertIn("sidestep_region_up", out)
        for bad in (["drain", "us-east"], ["force-down", "us-east", "--reason", "x"],
                    ["frobnicate"], ["undrain", "us-east", "--reason", "x", "--ttl", "1m"],
                    ["drain", "us-east", "--reason", "x", "--ttl", "soon"], []):
            code, out, err = self.ctl(*bad)
            self.assertEqual(code, 2, bad)
        code, out, err = self.ctl("status", env={"SIDESTEP_ADMIN": "127.0.0.1:%d"
                                                 % sst.free_port()})
        self.assertEqual(code, 1)
        self.assertIn("connection refused", err)


class Token(AdminCase):
    token = "s3cret-token"

    def test_token_required(self):
        for target, method in (("/status", "GET"), ("/metrics", "GET"), ("/nope", "GET"),
                               ("/reload", "POST"), ("/regions/us-east/drain", "POST")):
            r = self.admin(method, target, token="")
            self.assertEqual(r.status, 401, target)
            self.assertEqual(r.header("WWW-Authenticate"), 'Bearer realm="sidestep"')
            r = sst.http(self.proxy.admin_port, method, target,
                         [("Authorization", "Bearer wrong-token")])
            self.assertEqual(r.status, 401, target)
        r = sst.http(self.proxy.admin_port, "GET", "/status",
                     [("Authorization", "Bearer " + self.token),
                      ("Authorization", "Bearer " + self.token)])
        self.assertEqual(r.status, 401)
        self.assertEqual(self.admin("GET", "/status").status, 200)
        self.assertEqual(sst.http(self.proxy.admin_port, "GET", "/status",
                                  [("Authorization", "bearer  " + self.token)]).status, 200)
        # nothing was changed by the refused calls
        self.assertIsNone(self.region("us-east")["drain"])

    def test_ctl_token(self):
        code, _, err = self.ctl("status")
        self.assertEqual(code, 1)
        self.assertIn("401", err)
        code, _, err = self.ctl("status", env={"SIDESTEP_TOKEN": self.token})
        self.assertEqual(code, 0, err)
        code, _, err = self.ctl("--token", self.token, "status")
        self.assertEqual(code, 0, err)


if __name__ == "__main__":
    unittest.main()
