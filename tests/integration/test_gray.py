"""Gray failures (issue 15) with real processes on loopback and scripted backends
(tests/support/badbackend.py): a backend that accepts and goes silent, one that stalls or is cut
mid-response, one whose accept queue is full.

- the per-try timeout: a GET abandoned at try_timeout is retried on the region's other backend
  when that one answered meanwhile (200), and answered with the 307 at once when the whole
  region is silent (no second wait); a connect still pending at try_timeout (a full accept
  queue) is given up too, for a POST as well (nothing was sent);
- passive ejection under traffic: try timeouts (PASSIVE_TIMEOUT), POSTs that keep waiting (the
  silence is reported at try_timeout, once), responses cut mid-body (PASSIVE_ABORTED) and
  stalled bodies take the backends down; the events say why and the metrics count it;
- idempotency keys: a POST with a valid key is rerouted after a try timeout or an unanswered
  send; without one, or with a malformed one, it gets 504 (502) and reaches a backend once;
- slow probes: health.slow takes a slow but answering region down (L7SLOW), and probes that
  alternate slow and fast never flap it.
"""

import re
import threading
import time
import unittest

import sst
from badbackend import (BadBackend, FullAcceptQueue, cut_mid_response, ok, respond, silent,
                        stall_mid_response)
from sst import Sidestep, scaled

TRY = 0.3
KEY = "Idempotency-Key"
HEALTH_OFF = {"enabled": False, "initial": "up"}
# probes far apart and answered: only traffic can take a backend down within a test
HEALTH_PASSIVE = {"enabled": True, "initial": "up", "interval": "30s", "timeout": "1s",
                  "passive_fall": 3, "passive_fall_refused": 1}


def config(primary, health=None, route=None, timeouts=None, eu=None):
    """us-east (primary, local) with the given backends, eu-west with `eu` (a redirect
    target), a route with try_timeout and idempotency_header, an admin listener."""
    regions = [{"name": "us-east", "url": "http://us-east.example",
                "backends": [b.addr for b in primary],
                "health": dict(health or HEALTH_OFF)}]
    failover = []
    if eu is not None:
        regions.append({"name": "eu-west", "url": "http://eu-west.example",
                        "backends": [eu.addr], "health": dict(HEALTH_OFF)})
        failover = ["eu-west"]
    r = {"name": "default", "primary": "us-east", "failover": failover, "retries": 2,
         "try_timeout": "%dms" % (TRY * 1000), "idempotency_header": KEY}
    r.update(route or {})
    return {
        "workers": 1,
        "local_region": "us-east",
        "listen": [{"address": "127.0.0.1:0"}],
        "admin": {"address": "127.0.0.1:0"},
        "regions": regions,
        "routes": [r],
        "timeouts": dict({"connect": "2s", "upstream_response": "3s", "body": "1s",
                          "linger": "300ms"}, **(timeouts or {})),
        "log": {"access": "stderr"},
    }


def metric(s, name, **labels):
    """The sum of the samples of `name` whose labels include `labels` (values as substrings)."""
    text = sst.http(s.admin_port, "GET", "/metrics").body.decode()
    total = 0
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(?:\{(.*)\})? (\S+)$", line)
        if not m or m.group(1) != name:
            continue
        have = dict(re.findall(r'([a-z_]+)="([^"]*)"', m.group(2) or ""))
        if all(k in have and v in have[k] for k, v in labels.items()):
            total += float(m.group(3))
    return total


def timed(port, method="GET", target="/", headers=None, body=None, timeout=10.0):
    t0 = time.monotonic()
    r = sst.http(port, method, target, headers=headers, body=body, timeout=timeout)
    return r, time.monotonic() - t0


def in_parallel(calls):
    """Runs each call in its own thread; returns their results in order."""
    out = [None] * len(calls)

    def run(i, f):
        try:
            out[i] = f()
        except Exception as e:  # noqa: BLE001 - the test inspects it
            out[i] = e
    threads = [threading.Thread(target=run, args=(i, f)) for i, f in enumerate(calls)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(scaled(15))
    return out


def traffic(backend):
    """Requests other than probes that reached `backend`."""
    return [q for q in backend.requests if q.target != "/healthz"]


class TryTimeout(unittest.TestCase):
    """One fresh sidestep per test: the first pick of smooth round-robin is backends[0]."""

    def test_one_silent_backend_retry_on_the_live_one(self):
        quiet = BadBackend(silent(), name="quiet")
        good = BadBackend(respond(ok(b"good"), then="keep"), name="good")
        eu = BadBackend(respond(ok(b"eu"), then="keep"), name="eu")
        try:
            with Sidestep(config([quiet, good], eu=eu)) as s:
                # A goes to the silent backend; B, sent meanwhile, to the live one, which
                # answers: the evidence of life A's retry needs
                def a():
                    return timed(s.port, "GET", "/a")

                def b():
                    time.sleep(0.05)
                    return timed(s.port, "GET", "/b")
                (ra, ta), (rb, tb) = in_parallel([a, b])
                self.assertEqual((ra.status, ra.body), (200, b"good"))
                self.assertEqual((rb.status, rb.body), (200, b"good"))
                # normally A met the silence; on a loaded machine B may have come first
                waited = [q.target for q in traffic(quiet)]
                self.assertIn(waited, (["/a"], ["/b"]))
                self.assertGreaterEqual(ta if waited == ["/a"] else tb, TRY - 0.02)
                self.assertEqual(sorted(q.target for q in traffic(good)), ["/a", "/b"])
                self.assertEqual(traffic(eu), [])
                # the abandoned connection is closed, never pooled
                self.assertIsNotNone(quiet.conns[0].wait_peer_closed(scaled(2)))
                self.assertEqual(metric(s, "sidestep_upstream_failures_total",
                                        backend=quiet.addr, kind="try_timeout"), 1)
                self.assertEqual(metric(s, "sidestep_retries_total"), 1)
        finally:
            for b in (quiet, good, eu):
                b.stop()

    def test_whole_region_silent_307_without_a_second_wait(self):
        q1 = BadBackend(silent(), name="q1")
        q2 = BadBackend(silent(), name="q2")
        eu = BadBackend(respond(ok(b"eu"), then="keep"), name="eu")
        try:
            with Sidestep(config([q1, q2], eu=eu)) as s:
                for i, method in enumerate(("GET", "PUT", "DELETE")):
                    r, took = timed(s.port, method, "/w?i=%d" % i,
                                    body=b"v" if method == "PUT" else None)
                    self.assertEqual(r.status, 307, method)
                    self.assertEqual(r.header("Location"), "http://eu-west.example/w?i=%d" % i)
                    self.assertGreaterEqual(took, TRY - 0.02)
                # each request reached one silent backend, never a second one after it
                self.assertEqual(len(traffic(q1)) + len(traffic(q2)), 3)
                self.assertEqual(metric(s, "sidestep_retries_total"), 0)
                self.assertEqual(metric(s, "sidestep_upstream_failures_total",
                                        kind="try_timeout"), 3)
        finally:
            for b in (q1, q2, eu):
                b.stop()

    def test_without_try_timeout_the_response_timeout_applies(self):
        """The key is what makes the difference: without it the GET waits, then 504."""
        q = BadBackend(silent())
        eu = BadBackend(respond(ok(b"eu"), then="keep"))
        try:
            cfg = config([q], eu=eu, timeouts={"upstream_response": "700ms"})
            del cfg["routes"][0]["try_timeout"]
            with Sidestep(cfg) as s:
                r, took = timed(s.port, "GET", "/slow")
                self.assertEqual(r.status, 504)
                self.assertGreaterEqual(took, 0.7)
        finally:
            q.stop()
            eu.stop()

    def test_full_accept_queue_connect_given_up_at_try_timeout(self):
        """SYNs dropped: the connect is given up at try_timeout, not timeouts.connect (2 s),
        for a POST too (nothing was sent), and with no backend showing life, the 307."""
        full1, full2 = FullAcceptQueue(), FullAcceptQueue()
        eu = BadBackend(respond(ok(b"eu"), then="keep"))
        try:
            with Sidestep(config([full1, full2], eu=eu)) as s:
                for method in ("GET", "POST"):
                    r, took = timed(s.port, method, "/c", body=b"x" if method == "POST" else None)
                    self.assertEqual(r.status, 307, method)
                    self.assertGreaterEqual(took, TRY - 0.02)
                    self.assertLess(took, scaled(1.5), method)  # well before timeouts.connect
                self.assertEqual(metric(s, "sidestep_upstream_failures_total",
                                        kind="connect_timeout"), 2)
        finally:
            full1.stop()
            full2.stop()
            eu.stop()


class PassiveEjection(unittest.TestCase):
    def test_silent_region_ejected_under_traffic(self):
        """Each GET is abandoned at try_timeout (a 307), and passive_fall (3) try timeouts per
        backend take both down: the region falls and later requests get the 307 at once."""
        q1 = BadBackend(silent(health=True), name="q1")
        q2 = BadBackend(silent(health=True), name="q2")
        eu = BadBackend(respond(ok(b"eu"), then="keep"))
        try:
            with Sidestep(config([q1, q2], health=HEALTH_PASSIVE, eu=eu)) as s:
                results = in_parallel([lambda i=i: timed(s.port, "GET", "/e%d" % i)
                                       for i in range(6)])
                self.assertEqual([r.status for r, _ in results], [307] * 6)
                for b in (q1, q2):
                    s.wait_stderr("backend us-east/%s up -> down reason=PASSIVE_TIMEOUT" % b.addr,
                                  timeout=scaled(3))
                self.assertIn('timeout by passive check (3 consecutive failures)',
                              s.stderr_text())
                s.wait_stderr("region us-east up -> down", timeout=scaled(2))
                before = len(traffic(q1)) + len(traffic(q2))
                r, took = timed(s.port, "GET", "/after")
                self.assertEqual(r.status, 307)
                self.assertLess(took, TRY)  # routed away: no backend of us-east is tried
                self.assertEqual(len(traffic(q1)) + len(traffic(q2)), before)
                self.assertEqual(metric(s, "sidestep_passive_signals_total", signal="timeout"), 6)
                self.assertEqual(metric(s, "sidestep_upstream_failures_total",
                                        kind="try_timeout"), 6)
                self.assertGreaterEqual(
                    metric(s, "sidestep_health_events_total", reason="PASSIVE_TIMEOUT"), 2)
        finally:
            for b in (q1, q2, eu):
                b.stop()

    def test_posts_without_a_key_eject_too_and_are_never_repeated(self):
        """A POST without a key is never abandoned (504 after upstream_response), but its
        silence is reported at try_timeout, once: POST traffic ejects a silent region long
        before the response timeouts, and the next POST gets the 307."""
        q1 = BadBackend(silent(health=True), name="q1")
        q2 = BadBackend(silent(health=True), name="q2")
        eu = BadBackend(respond(ok(b"eu"), then="keep"))
        try:
            cfg = config([q1, q2], health=HEALTH_PASSIVE, eu=eu,
                         timeouts={"upstream_response": "1500ms"})
            with Sidestep(cfg) as s:
                results = in_parallel([lambda i=i: timed(s.port, "POST", "/p%d" % i, body=b"{}")
                                       for i in range(6)])
                # ejected at try_timeout: before any of the 504s was sent
                s.wait_stderr("region us-east up -> down", timeout=scaled(1))
                self.assertEqual([r.status for r, _ in results], [504] * 6)
                self.assertEqual(sorted(q.target for q in traffic(q1) + traffic(q2)),
                                 sorted("/p%d" % i for i in range(6)))
                r, _ = timed(s.port, "POST", "/next", body=b"{}")
                self.assertEqual(r.status, 307)
                self.assertEqual(metric(s, "sidestep_upstream_try_waits_total"), 6)
                # one signal per request: the response timeout is not a second one
                self.assertEqual(metric(s, "sidestep_passive_signals_total", signal="timeout"), 6)
        finally:
            for b in (q1, q2, eu):
                b.stop()

    def test_cut_responses_eject_the_region(self):
        """A reset mid-response cannot be hidden: each client in flight sees its response cut.
        But every cut counts (PASSIVE_ABORTED), and no OK at the head undoes it, so the region
        goes down after passive_fall cuts per backend and later requests get the 307."""
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        c1 = BadBackend(cut_mid_response(head, b"x" * 50, health=True), name="c1")
        c2 = BadBackend(cut_mid_response(head, b"x" * 50, health=True), name="c2")
        eu = BadBackend(respond(ok(b"eu"), then="keep"))
        try:
            with Sidestep(config([c1, c2], health=HEALTH_PASSIVE, eu=eu)) as s:
                for i in range(6):
                    with sst.Conn(s.port) as c:
                        c.request("GET", "/r%d" % i)
                        r = c.recv_response(head_only=True)
                        self.assertEqual(r.status, 200)
                        rest = c.recv_all(timeout=scaled(3))
                        self.assertLess(len(rest), 100)  # cut, never a complete body
                s.wait_stderr("region us-east up -> down", timeout=scaled(2))
                self.assertIn("reason=PASSIVE_ABORTED", s.stderr_text())
                self.assertIn("response cut short by passive check (3 consecutive failures)",
                              s.stderr_text())
                r = sst.http(s.port, "GET", "/after")
                self.assertEqual(r.status, 307)
                self.assertEqual(metric(s, "sidestep_passive_signals_total", signal="aborted"), 6)
                self.assertEqual(metric(s, "sidestep_passive_signals_total", signal="ok"), 0)
        finally:
            for b in (c1, c2, eu):
                b.stop()

    def test_stalled_body_is_cut_and_counted(self):
        """Head and part of the body, then nothing: cut after timeouts.body, a TIMEOUT."""
        head = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"
        b = BadBackend(stall_mid_response(head, b"y" * 10, health=True))
        try:
            cfg = config([b], health=dict(HEALTH_PASSIVE, passive_fall=1),
                         timeouts={"body": "400ms"})
            with Sidestep(cfg) as s, sst.Conn(s.port) as c:
                c.request("GET", "/stall")
                r = c.recv_response(head_only=True)
                self.assertEqual(r.status, 200)
                self.assertEqual(c.recv_all(timeout=scaled(3)), b"y" * 10)
                self.assertEqual(c.close_kind, "reset")
                s.wait_stderr("backend us-east/%s up -> down reason=PASSIVE_TIMEOUT" % b.addr,
                              timeout=scaled(2))
        finally:
            b.stop()


class IdempotencyKey(unittest.TestCase):
    def run_post(self, script, key, want, count_at_least=1):
        b1 = BadBackend(script, name="b1")
        b2 = BadBackend(script, name="b2")
        eu = BadBackend(respond(ok(b"eu"), then="keep"))
        try:
            cfg = config([b1, b2], eu=eu, timeouts={"upstream_response": "1s"})
            with Sidestep(cfg) as s:
                hdrs = [(KEY, key)] if key is not None else []
                r = sst.http(s.port, "POST", "/pay", headers=hdrs, body=b"charge 10",
                             timeout=scaled(5))
                self.assertEqual(r.status, want, key)
                # the POST reached exactly one backend, once; a reroute sends the client
                # elsewhere, sidestep never sends a second copy
                got = [q for q in b1.requests + b2.requests]
                self.assertEqual(len(got), 1, key)
                self.assertEqual(got[0].body, b"charge 10")
                if key is not None:
                    self.assertEqual(got[0].header(KEY), key.strip())
                return r, s
        finally:
            for b in (b1, b2, eu):
                b.stop()

    def test_keyed_post_rerouted_after_a_try_timeout(self):
        r, _ = self.run_post(silent(), '"8e03978e-40d5-43e8-bc93-6894a57f9324"', 307)
        self.assertEqual(r.header("Location"), "http://eu-west.example/pay")
        self.assertEqual(r.header("Connection"), "close")  # the body was read

    def test_post_without_a_key_waits_for_504_and_is_never_repeated(self):
        self.run_post(silent(), None, 504)

    def test_malformed_keys_count_as_no_key(self):
        for key in ("8e03978e-40d5-43e8-bc93-6894a57f9324",  # unquoted
                    '""', '"a";p=1', '"a\\b"', '"' + "k" * 300 + '"'):
            self.run_post(silent(), key, 504)

    def test_keyed_post_rerouted_after_an_unanswered_send(self):
        def read_then_reset(c):
            if c.read_request() is not None:
                c.reset()
        self.run_post(read_then_reset, '"k-1"', 307)
        self.run_post(read_then_reset, None, 502)


class SlowProbes(unittest.TestCase):
    """health.slow: a probe that succeeds but takes longer counts as a failure (L7SLOW)."""

    SLOW_S = 0.45  # a slow probe; a fast one answers at once, far below health.slow

    def probe_backend(self, delays):
        """A backend whose n-th /healthz answer waits delays(n) seconds; traffic gets 200."""
        count = [0]
        lock = threading.Lock()

        def script(c):
            while True:
                q = c.read_request()
                if q is None:
                    return
                if q.target == "/healthz":
                    with lock:
                        n = count[0]
                        count[0] += 1
                    time.sleep(delays(n))
                    c.send(ok())
                    c.close()
                    return
                c.send(ok(b"us"))
        return BadBackend(script), count

    def config(self, b, eu):
        # thresholds far from both the fast and the slow probe, so that a loaded machine
        # cannot make a fast probe slow (or a slow one time out)
        health = {"enabled": True, "initial": "up", "interval": "600ms",
                  "fast_interval": "600ms", "jitter": "0ms", "timeout": "580ms",
                  "slow": "250ms", "rise": 2, "fall": 2}
        cfg = config([b], health=health, eu=eu)
        cfg["regions"][0]["failback_delay"] = "0ms"
        return cfg

    def test_a_slow_region_is_failed_over_and_comes_back(self):
        mode = {"slow": False}
        b, _ = self.probe_backend(lambda n: self.SLOW_S if mode["slow"] else 0.0)
        eu = BadBackend(respond(ok(b"eu"), then="keep"))
        try:
            with Sidestep(self.config(b, eu)) as s:
                self.assertEqual(sst.http(s.port, "GET", "/").status, 200)
                mode["slow"] = True
                s.wait_stderr("backend us-east/%s up -> down reason=L7SLOW" % b.addr,
                              timeout=scaled(5))
                self.assertRegex(s.stderr_text(), r"probe took \d+ms > slow 250ms")
                self.assertEqual(sst.http(s.port, "GET", "/").status, 307)
                self.assertGreaterEqual(metric(s, "sidestep_probes_total", backend=b.addr,
                                               result="L7SLOW"), 2)
                mode["slow"] = False
                s.wait_stderr("backend us-east/%s down -> up" % b.addr, timeout=scaled(5))
                sst.wait_until(lambda: sst.http(s.port, "GET", "/").status == 200,
                               timeout=scaled(2), what="traffic back on us-east")
        finally:
            b.stop()
            eu.stop()

    def test_alternating_slow_and_fast_probes_never_flap(self):
        b, count = self.probe_backend(lambda n: self.SLOW_S if n % 2 else 0.0)
        eu = BadBackend(respond(ok(b"eu"), then="keep"))
        try:
            with Sidestep(self.config(b, eu)) as s:
                sst.wait_until(lambda: count[0] >= 7, timeout=scaled(8),
                               what="seven probes")
                self.assertNotIn("backend us-east/%s up -> down" % b.addr, s.stderr_text())
                self.assertGreaterEqual(metric(s, "sidestep_probes_total", backend=b.addr,
                                               result="L7SLOW"), 3)
                self.assertGreaterEqual(metric(s, "sidestep_probes_total", backend=b.addr,
                                               result="L7OK"), 3)
                self.assertEqual(sst.http(s.port, "GET", "/").status, 200)
        finally:
            b.stop()
            eu.stop()


if __name__ == "__main__":
    unittest.main()
