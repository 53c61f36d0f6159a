"""TLS to backends (issue 14): regions with `tls` connect over TLS (tests/support/tlsfront.py
terminates it in front of a stub, so the stub's echo shows what arrived). Checked: requests
proxied over TLS with SNI = server_name, kept-alive TLS connections reused from the pool,
sessions resumed (probes and requests share the session cache), probes over TLS; a backend
whose certificate does not verify is refused (a connect failure: the in-flight failover
answers 307 and the request never reaches it), by reason in the metrics, and the probe says
L6TLS with the reason; verify: false accepts it; server_name defaults to the backend's host;
a backend that accepts TCP and never answers the ClientHello is cut at timeouts.tls_handshake
(a connect timeout: the in-flight failover applies).
"""

import os
import re
import shutil
import tempfile
import time
import unittest

import sst
from badbackend import BadBackend
from sst import Sidestep, Stub, scaled
from tlsfront import TlsFront

HANDSHAKE_MS = 400
TRY_MS = 100  # a route's try_timeout, well below the handshake deadline


class TlsBackends(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = sst.tls_certs()
        f = cls.certs["files"]
        cls.stub = Stub(name="origin")
        cls.eu = Stub(name="eu-west")
        cls.good = TlsFront(cls.stub.port, f["api-ecdsa"]["cert"], f["api-ecdsa"]["key"])
        # three fronts with the same certificate, checked against another CA (two of them)
        # or not at all: one backend address serves one region
        cls.bad, cls.noverify, cls.probed = (
            TlsFront(cls.stub.port, f["api-ecdsa"]["cert"], f["api-ecdsa"]["key"])
            for _ in range(3))
        cls.local = TlsFront(cls.stub.port, f["selfsigned"]["cert"], f["selfsigned"]["key"])
        cls.silent = BadBackend(lambda c: c.stall(scaled(10)), name="silent")
        health_off = {"enabled": False, "initial": "up"}
        probes = {"path": "/healthz", "interval": "%dms" % scaled(300),
                  "timeout": "%dms" % scaled(250), "rise": 1, "fall": 1}
        api = {"ca": cls.certs["ca"], "server_name": "api.example.test"}
        wrong_ca = {"ca": cls.certs["other_ca"], "server_name": "api.example.test"}

        def region(name, backend, tls, health):
            return {"name": name, "url": "https://%s.example" % name, "backends": [backend],
                    "tls": tls, "health": health}

        cfg = {
            "workers": 1,
            "listen": ["127.0.0.1:0"],
            "admin": {"address": "127.0.0.1:0"},
            "regions": [
                region("us-east", cls.good.addr, api, probes),
                region("bad", cls.bad.addr, wrong_ca, health_off),
                region("noverify", cls.noverify.addr, {"verify": False}, health_off),
                region("probed", cls.probed.addr, wrong_ca, dict(probes, initial="up")),
                region("local", "localhost:%d" % cls.local.port,
                       {"ca": f["selfsigned"]["cert"]}, health_off),
                region("silent", cls.silent.addr, api, health_off),
                {"name": "eu-west", "url": "https://eu-west.example", "backends": [cls.eu.addr],
                 "health": health_off},
            ],
            "routes": [
                {"name": "bad", "match": {"path_prefix": "/bad/"}, "primary": "bad",
                 "failover": ["eu-west"]},
                {"name": "noverify", "match": {"path_prefix": "/noverify/"},
                 "primary": "noverify", "failover": ["eu-west"]},
                {"name": "local", "match": {"path_prefix": "/local/"}, "primary": "local",
                 "failover": ["eu-west"]},
                {"name": "silent", "match": {"path_prefix": "/silent/"}, "primary": "silent",
                 "failover": ["eu-west"]},
                {"name": "silent-try", "match": {"path_prefix": "/silenttry/"},
                 "primary": "silent", "failover": ["eu-west"],
                 "try_timeout": "%dms" % scaled(TRY_MS)},
                {"name": "default", "match": {"path_prefix": "/"}, "primary": "us-east",
                 "failover": ["eu-west"]},
            ],
            "timeouts": {"tls_handshake": "%dms" % scaled(HANDSHAKE_MS)},
            "log": {"access": "stderr"},
        }
        cls.sst = Sidestep(cfg)

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        for front in (cls.good, cls.bad, cls.noverify, cls.probed, cls.local):
            front.stop()
        cls.silent.stop()
        cls.stub.stop()
        cls.eu.stop()

    def status(self):
        return sst.http(self.sst.admin_port, "GET", "/status").json()

    def backend(self, region):
        for r in self.status()["regions"]:
            if r["name"] == region:
                return r["backends"][0]
        raise KeyError(region)

    def metric(self, name, **labels):
        text = sst.http(self.sst.admin_port, "GET", "/metrics").text
        want = ",".join('%s="%s"' % kv for kv in labels.items())
        m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(want)), text, re.M)
        return int(float(m.group(1))) if m else 0

    def test_proxied_over_tls_pooled_and_resumed(self):
        # the probes (over TLS too) bring us-east up
        sst.wait_until(lambda: self.backend("us-east")["probe"]["last_result"] == "L7OK", 5,
                       what="a TLS probe")
        handshakes = self.good.handshakes
        for i in range(5):
            r = sst.http(self.sst.port, "GET", "/api/%d" % i)
            self.assertEqual(r.status, 200)
            echo = r.echo()
            self.assertEqual(echo.target, "/api/%d" % i)
            self.assertEqual(echo.header("X-Forwarded-Proto"), "http")
        # one new TLS connection at most for the five (kept alive, reused from the pool)
        self.assertLessEqual(self.good.handshakes - handshakes, 1 + 2)  # + probes meanwhile
        self.assertGreaterEqual(self.metric("sidestep_upstream_reuses_total",
                                            backend=self.good.addr), 4)
        self.assertEqual(set(self.good.sni), {"api.example.test"})
        # every probe is a new connection: they resume the sessions the earlier ones left
        sst.wait_until(lambda: self.good.resumed >= 2, 5, what="resumed TLS handshakes")
        self.assertEqual(self.good.failed, 0)
        ok = self.metric("sidestep_upstream_tls_handshakes_total", backend=self.good.addr,
                         resumed="false")
        ok += self.metric("sidestep_upstream_tls_handshakes_total", backend=self.good.addr,
                          resumed="true")
        self.assertGreaterEqual(ok, 1)

    def test_bad_certificate_is_refused_and_fails_over(self):
        seen = self.stub.stats()["requests"]
        failed = self.bad.failed
        for method, body in (("GET", None), ("POST", b"the body stays with the client")):
            with self.subTest(method=method):
                r = sst.http(self.sst.port, method, "/bad/x", body=body)
                self.assertEqual(r.status, 307)
                self.assertEqual(r.header("Location"), "https://eu-west.example/bad/x")
        # never reached the backend; the TLS front saw the handshakes fail (our alert)
        self.assertEqual(self.stub.stats()["requests"], seen)
        sst.wait_until(lambda: self.bad.failed >= failed + 2, 3, what="failed handshakes")
        self.assertGreaterEqual(self.metric("sidestep_upstream_tls_handshake_failures_total",
                                            backend=self.bad.addr, reason="unknown_ca"), 2)
        self.assertGreaterEqual(self.metric("sidestep_inflight_failovers_total", region="bad"), 2)
        self.sst.wait_stderr(re.compile(r"backend %s tls .*: TLS handshake failed: unknown_ca"
                                        % re.escape(self.bad.addr)), timeout=2)

    def test_verify_false_accepts_the_same_backend(self):
        r = sst.http(self.sst.port, "GET", "/noverify/x")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.echo().target, "/noverify/x")

    def test_probe_names_the_tls_failure(self):
        def probed():
            b = self.backend("probed")
            return b if b["probe"]["last_result"] == "L6TLS" else None
        b = sst.wait_until(probed, 5, what="an L6TLS probe")
        self.assertEqual(b["state"], "down")
        self.assertEqual(b["reason"]["code"], "L6TLS")
        self.assertIn("unknown_ca", b["reason"]["text"])
        self.assertGreaterEqual(self.metric("sidestep_probes_total", backend=self.probed.addr,
                                            result="L6TLS"), 1)

    def test_server_name_defaults_to_the_backend_host(self):
        r = sst.http(self.sst.port, "GET", "/local/x")
        self.assertEqual(r.status, 200)
        self.assertEqual(r.echo().target, "/local/x")
        self.assertIn("localhost", self.local.sni)


    def test_try_timeout_cuts_a_silent_handshake(self):
        """A route's try_timeout (issue 15) bounds the whole attempt, TLS handshake included:
        the silent backend is given up at try_timeout, not at timeouts.tls_handshake, as a
        connect try timeout (nothing was sent), and it is not counted as a TLS failure."""
        fails = self.metric("sidestep_upstream_failures_total", backend=self.silent.addr,
                            kind="connect_timeout")
        tls_fails = self.metric("sidestep_upstream_tls_handshake_failures_total",
                                backend=self.silent.addr, reason="timeout")
        t0 = time.monotonic()
        r = sst.http(self.sst.port, "GET", "/silenttry/x", timeout=10)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 307)
        self.assertEqual(r.header("Location"), "https://eu-west.example/silenttry/x")
        self.assertGreaterEqual(took, scaled(TRY_MS) / 1000 * 0.9)
        self.assertLess(took, scaled(HANDSHAKE_MS) / 1000 * 0.9)
        self.assertEqual(self.metric("sidestep_upstream_failures_total",
                                     backend=self.silent.addr, kind="connect_timeout"), fails + 1)
        self.assertEqual(self.metric("sidestep_upstream_tls_handshake_failures_total",
                                     backend=self.silent.addr, reason="timeout"), tls_fails)

    def test_handshake_deadline_is_a_connect_timeout(self):
        t0 = time.monotonic()
        r = sst.http(self.sst.port, "GET", "/silent/x", timeout=10)
        took = time.monotonic() - t0
        self.assertEqual(r.status, 307)
        self.assertEqual(r.header("Location"), "https://eu-west.example/silent/x")
        self.assertGreaterEqual(took, HANDSHAKE_MS / 1000 * 0.9)
        self.assertLess(took, scaled(HANDSHAKE_MS / 1000 + 2))
        self.assertEqual(self.metric("sidestep_upstream_tls_handshake_failures_total",
                                     backend=self.silent.addr, reason="timeout"), 1)
        self.assertGreaterEqual(self.metric("sidestep_upstream_failures_total",
                                            backend=self.silent.addr, kind="connect_timeout"), 1)
        # the backend saw the ClientHello, then our close
        self.assertEqual(self.silent.conns[0].wait_peer_closed(scaled(2)), "fin")
        self.assertTrue(self.silent.conns[0].received.startswith(b"\x16\x03"))


class TlsBackendTrustAtReload(unittest.TestCase):
    """A pooled TLS connection is reused across a reload that leaves the trust as it was, and
    never after a reload that changed the CA file's contents under the same path: it was
    checked against the old trust (the pool's identity carries a digest of the file)."""

    @classmethod
    def setUpClass(cls):
        cls.certs = sst.tls_certs()
        f = cls.certs["files"]
        cls.dir = tempfile.mkdtemp(prefix="sst-trust-")
        cls.ca = os.path.join(cls.dir, "ca.pem")
        shutil.copyfile(cls.certs["ca"], cls.ca)
        cls.stub = Stub(name="origin")
        cls.front = TlsFront(cls.stub.port, f["api-ecdsa"]["cert"], f["api-ecdsa"]["key"])
        cls.sst = Sidestep({
            "workers": 1,
            "listen": ["127.0.0.1:0"],
            "admin": {"address": "127.0.0.1:0"},
            "regions": [{"name": "us-east", "url": "https://us-east.example",
                         "backends": [cls.front.addr],
                         "tls": {"ca": cls.ca, "server_name": "api.example.test"},
                         "health": {"enabled": False, "initial": "up"}}],
        })

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.front.stop()
        cls.stub.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def get(self, name):
        r = sst.http(self.sst.port, "GET", "/" + name)
        self.assertEqual(r.status, 200)

    def reload(self):
        r = sst.http(self.sst.admin_port, "POST", "/reload")
        self.assertEqual(r.status, 200, r.body)

    def test_trust_change_renews_pooled_connections(self):
        self.get("warm")
        conns = self.front.accepted
        self.get("reused")
        self.assertEqual(self.front.accepted, conns)  # kept alive and reused

        self.reload()  # the same file: the pool and its connection stay
        for i in range(5):
            self.get("same-trust-%d" % i)
            time.sleep(0.05)
        self.assertEqual(self.front.accepted, conns)

        # the same path, other contents (one more trusted CA): a new pool, a new connection
        with open(self.ca, "a") as out, open(self.certs["other_ca"]) as extra:
            out.write(extra.read())
        self.reload()

        def renewed():
            self.get("new-trust")
            return self.front.accepted > conns
        sst.wait_until(renewed, 5, what="a new TLS connection after the CA file changed")
        self.assertEqual(self.front.failed, 0)


if __name__ == "__main__":
    unittest.main(verbosity=2)
