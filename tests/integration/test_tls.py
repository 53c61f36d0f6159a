"""HTTPS listeners (issue 14) over loopback, with certificates made by tests/support/certs.py
and three kinds of clients: curl (--cacert, --resolve for SNI), Python's ssl, and
`openssl s_client` for protocol versions, ALPN and resumption (-sess_out/-sess_in).

Checked: TLS 1.0 and 1.1 refused, 1.2 and 1.3 served; SNI picks the exact name, the wildcard
one label up, or the default, and RSA or ECDSA on one name by what the client can verify;
ALPN http/1.1, and an h2-only client gets no ALPN and still talks HTTP/1.1; plain HTTP on the
TLS port gets a clear-text 400; tickets resume on any of two workers; HSTS on every answer over
TLS (proxied, 307, preflight, error) and never over plain HTTP; X-Forwarded-Proto https; an
https_redirect listener pointing at sidestep's own TLS port; the handshake deadline; garbage,
a truncated hello and a renegotiation attempt never stall a concurrent client; the metrics
and /status of the certificates.
"""

import os
import re
import shutil
import socket
import ssl
import subprocess
import threading
import time
import unittest

import sst
from sst import Conn, Sidestep, Stub, scaled

CURL = shutil.which("curl")
OPENSSL = shutil.which("openssl")
APP = "https://app.example"
HSTS = "max-age=600; includeSubDomains"


def names(cert_dict):
    """The DNS names of a certificate from ssl.getpeercert()."""
    return sorted(v for k, v in cert_dict.get("subjectAltName", ()) if k == "DNS")


class TlsListener(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = sst.tls_certs()
        f = cls.certs["files"]
        cls.ca = cls.certs["ca"]
        cls.us = Stub(name="us-east")
        # distinct fixed ports: listeners are keyed by their address text
        cls.tls_port, cls.plain_port, cls.redirect_port = (sst.free_port() for _ in range(3))

        def pair(name):
            return {"cert": f[name]["cert"], "key": f[name]["key"]}

        cfg = {
            "workers": 2,
            "listen": [
                {"address": "127.0.0.1:%d" % cls.tls_port,
                 "tls": {"certificates": [pair("www"), pair("api-rsa"), pair("api-ecdsa"),
                                          pair("wild"), pair("selfsigned")]},
                 "hsts": {"max_age": 600, "include_subdomains": True}},
                # plain, with hsts too: it must never show over plain HTTP
                {"address": "127.0.0.1:%d" % cls.plain_port, "hsts": {"max_age": 600}},
                # everyone to HTTPS on sidestep's own TLS port
                {"address": "127.0.0.1:%d" % cls.redirect_port,
                 "https_redirect": {"port": cls.tls_port}},
            ],
            "admin": {"address": "127.0.0.1:0"},
            "timeouts": {"tls_handshake": "%dms" % scaled(600), "linger": "300ms"},
            "regions": [
                {"name": "us-east", "url": "https://us-east.example", "backends": [cls.us.addr],
                 "health": {"enabled": False, "initial": "up"}},
                {"name": "eu-west", "url": "https://eu-west.example",
                 "backends": ["127.0.0.1:%d" % sst.free_port()],
                 "health": {"enabled": False, "initial": "up"}},
                {"name": "down", "url": "https://down.example",
                 "backends": ["127.0.0.1:%d" % sst.free_port()],
                 "health": {"enabled": False, "initial": "down"}},
            ],
            "routes": [
                {"name": "redirected", "match": {"path_prefix": "/moved/"}, "primary": "down",
                 "failover": ["eu-west"], "cors_origins": [APP]},
                {"name": "default", "match": {"path_prefix": "/"}, "primary": "us-east",
                 "failover": ["eu-west"]},
            ],
            "log": {"access": "stderr"},
        }
        cls.sst = Sidestep(cfg)

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.us.stop()

    # -- helpers

    def https(self, method="GET", target="/", sni="www.example.test", **kw):
        return sst.https(self.tls_port, method, target, sni=sni, cafile=self.ca, **kw)

    def peer(self, sni, context=None):
        """The certificate sidestep sends for `sni` (None: no SNI) and the TLS version."""
        ctx = context or sst.tls_context(self.ca)
        ctx.load_verify_locations(self.certs["files"]["selfsigned"]["cert"])
        ctx.check_hostname = False
        with sst.tls_connect(self.tls_port, sni, context=ctx) as s:
            return s.getpeercert(), s.version()

    def s_client(self, *args, stdin=b""):
        p = subprocess.run([OPENSSL, "s_client", "-connect", "127.0.0.1:%d" % self.tls_port,
                            "-CAfile", self.ca] + list(args),
                           input=stdin, capture_output=True, timeout=scaled(20))
        return p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")

    def metrics(self):
        return sst.http(self.sst.admin_port, "GET", "/metrics").text

    def metric(self, text, metric_name, **labels):
        want = ",".join('%s="%s"' % kv for kv in labels.items())
        m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(metric_name), re.escape(want)), text,
                      re.M)
        return float(m.group(1)) if m else None

    def failures(self, reason):
        return self.metric(self.metrics(), "sidestep_tls_handshake_failures_total", reason=reason)

    # -- protocols

    def test_tls_10_and_11_refused_12_and_13_served(self):
        before = self.failures("protocol_version")
        for flag in ("-tls1", "-tls1_1"):
            with self.subTest(version=flag):
                # the client is allowed the old version; the server refuses it with an alert
                out = self.s_client(flag, "-cipher", "DEFAULT:@SECLEVEL=0",
                                    "-servername", "www.example.test")
                self.assertIn("alert protocol version", out)
                self.assertNotIn("BEGIN CERTIFICATE", out)
        self.assertEqual(self.failures("protocol_version"), before + 2)
        for flag, name in (("-tls1_2", "TLSv1.2"), ("-tls1_3", "TLSv1.3")):
            with self.subTest(version=flag):
                out = self.s_client(flag, "-servername", "www.example.test", "-brief")
                self.assertIn("Protocol version: %s" % name, out)
                self.assertIn("Verification: OK", out)
        ctx = sst.tls_context(self.ca, maximum=ssl.TLSVersion.TLSv1_2)
        self.assertEqual(self.peer("www.example.test", ctx)[1], "TLSv1.2")
        self.assertEqual(self.peer("www.example.test")[1], "TLSv1.3")

    def test_sni_picks_the_certificate(self):
        cases = [
            ("www.example.test", ["static.example.test", "www.example.test"]),
            ("STATIC.example.test.", ["static.example.test", "www.example.test"]),
            ("api.example.test", ["api.example.test"]),
            ("a.wild.example.test", ["*.wild.example.test"]),
            ("b.a.wild.example.test", ["static.example.test", "www.example.test"]),  # default
            ("localhost", ["localhost"]),
            ("unknown.example", ["static.example.test", "www.example.test"]),  # default
            (None, ["static.example.test", "www.example.test"]),  # no SNI: the default
        ]
        for sni, want in cases:
            with self.subTest(sni=sni):
                self.assertEqual(names(self.peer(sni)[0]), want)

    def test_rsa_and_ecdsa_on_one_name(self):
        # a TLS 1.2 client that only takes RSA suites gets the RSA certificate, any other the
        # ECDSA one (the same name: OpenSSL picks by what the client can verify)
        rsa = self.s_client("-tls1_2", "-servername", "api.example.test",
                            "-cipher", "ECDHE-RSA-AES128-GCM-SHA256")
        self.assertIn("Server public key is 2048 bit", rsa)
        self.assertIn("Verify return code: 0 (ok)", rsa)
        ec = self.s_client("-tls1_3", "-servername", "api.example.test")
        self.assertIn("Server public key is 256 bit", ec)
        self.assertIn("subject=CN = api.example.test", ec)

    def test_curl_with_cacert_and_resolve(self):
        for name in ("www.example.test", "api.example.test", "x.wild.example.test"):
            with self.subTest(name=name):
                p = subprocess.run(
                    [CURL, "-sS", "-i", "--cacert", self.ca, "--resolve",
                     "%s:%d:127.0.0.1" % (name, self.tls_port),
                     "https://%s:%d/curl" % (name, self.tls_port)],
                    capture_output=True, timeout=scaled(20))
                self.assertEqual(p.returncode, 0, p.stderr)
                out = p.stdout.decode()
                self.assertTrue(out.startswith("HTTP/1.1 200 OK"), out[:200])
                self.assertIn("header X-Forwarded-Proto: https", out)
                self.assertIn("header Host: %s:%d" % (name, self.tls_port), out)

    def test_alpn_http11_and_h2_only_clients(self):
        out = self.s_client("-servername", "www.example.test", "-alpn", "h2,http/1.1")
        self.assertIn("ALPN protocol: http/1.1", out)
        out = self.s_client("-servername", "www.example.test", "-alpn", "h2")
        self.assertIn("No ALPN negotiated", out)
        self.assertIn("Verify return code: 0 (ok)", out)  # the handshake went on
        # an h2-only client gets no protocol, and HTTP/1.1 still works on that connection
        ctx = sst.tls_context(self.ca, alpn=("h2",))
        with sst.tls_connect(self.tls_port, "www.example.test", context=ctx) as s:
            self.assertIsNone(s.selected_alpn_protocol())
            c = Conn.from_socket(s)
            c.request("GET", "/h2-only")
            self.assertEqual(c.recv_response().status, 200)
        # curl offering h2 falls back to HTTP/1.1 the same way
        p = subprocess.run([CURL, "-sS", "-o", "/dev/null", "-w", "%{http_version}",
                            "--http2", "--cacert", self.ca, "--resolve",
                            "www.example.test:%d:127.0.0.1" % self.tls_port,
                            "https://www.example.test:%d/" % self.tls_port],
                           capture_output=True, timeout=scaled(20))
        self.assertEqual((p.returncode, p.stdout), (0, b"1.1"), p.stderr)

    def test_plain_http_on_the_tls_port_gets_400(self):
        before = self.failures("http_on_tls")
        with Conn(self.tls_port) as c:
            c.request("GET", "/plain")
            r = c.recv_response()
            self.assertEqual(r.status, 400)
            self.assertIn("The plain HTTP request was sent to HTTPS port", r.text)
            self.assertEqual(r.header("Connection"), "close")
            self.assertIsNone(r.header("Strict-Transport-Security"))  # not over TLS
            self.assertTrue(c.closed(timeout=3))
        p = subprocess.run([CURL, "-sS", "http://127.0.0.1:%d/curl-plain" % self.tls_port],
                           capture_output=True, timeout=scaled(20))
        self.assertIn(b"The plain HTTP request was sent to HTTPS port", p.stdout)
        self.assertEqual(self.failures("http_on_tls"), before + 2)

    # -- resumption

    def test_resumption_tls12_with_s_client(self):
        sess = os.path.join(self.sst.dir, "tls12.sess")
        out = self.s_client("-tls1_2", "-servername", "www.example.test", "-sess_out", sess)
        self.assertIn("New, TLSv1.2", out)
        for _ in range(4):  # two workers: each resumes what the other issued
            out = self.s_client("-tls1_2", "-servername", "www.example.test", "-sess_in", sess)
            self.assertIn("Reused, TLSv1.2", out)

    def test_resumption_tls13_across_workers(self):
        text = self.metrics()
        resumed0 = self.metric(text, "sidestep_tls_handshakes_total", version="1.3",
                               resumed="true")
        ctx = sst.tls_context(self.ca)
        with sst.tls_connect(self.tls_port, "www.example.test", context=ctx) as s:
            c = Conn.from_socket(s)
            c.request("GET", "/first")
            self.assertEqual(c.recv_response().status, 200)  # the tickets came with it
            session = s.session
        self.assertTrue(session.has_ticket)
        # each TLS 1.3 ticket is used once: the next one comes from the resumed connection;
        # SO_REUSEPORT spreads the connections over both workers
        for i in range(10):
            with sst.tls_connect(self.tls_port, "www.example.test", context=ctx,
                                 session=session) as s:
                self.assertTrue(s.session_reused, "connection %d did not resume" % i)
                c = Conn.from_socket(s)
                c.request("GET", "/again")
                self.assertEqual(c.recv_response().status, 200)
                session = s.session
        resumed = self.metric(self.metrics(), "sidestep_tls_handshakes_total", version="1.3",
                              resumed="true")
        self.assertEqual(resumed - resumed0, 10)

    # -- what sidestep adds over TLS

    def test_hsts_on_every_answer_over_tls_only(self):
        # proxied, and the backend's own header replaced by ours
        r = self.https(target="/p", headers={"X-Stub-Header": "Strict-Transport-Security: "
                                                               "max-age=1"})
        self.assertEqual(r.status, 200)
        self.assertEqual(r.header_all("Strict-Transport-Security"), [HSTS])
        # sidestep's own 307, a CORS preflight, an error
        r = self.https(target="/moved/x")
        self.assertEqual((r.status, r.header("Location")), (307, "https://eu-west.example"
                                                                 "/moved/x"))
        self.assertEqual(r.header("Strict-Transport-Security"), HSTS)
        r = self.https("OPTIONS", "/moved/x", headers={
            "Origin": APP, "Access-Control-Request-Method": "PUT"})
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Strict-Transport-Security"), HSTS)
        with Conn.tls(self.tls_port, "www.example.test", self.ca) as c:
            c.send(b"GET /a b HTTP/1.1\r\nHost: a\r\n\r\n")
            r = c.recv_response()
        self.assertEqual(r.status, 400)
        self.assertEqual(r.header("Strict-Transport-Security"), HSTS)
        # never over plain HTTP, even on a listener with hsts: the backend's own goes through
        r = sst.http(self.plain_port, "GET", "/p", headers={
            "X-Stub-Header": "Strict-Transport-Security: max-age=1"})
        self.assertEqual(r.header_all("Strict-Transport-Security"), ["max-age=1"])
        r = sst.http(self.plain_port, "GET", "/moved/x")
        self.assertEqual(r.status, 307)
        self.assertIsNone(r.header("Strict-Transport-Security"))

    def test_forwarded_proto(self):
        self.assertEqual(self.https(target="/xfp").echo().header("X-Forwarded-Proto"), "https")
        self.assertEqual(sst.http(self.plain_port, "GET", "/xfp").echo().header(
            "X-Forwarded-Proto"), "http")

    def test_https_redirect_to_our_own_tls_port(self):
        r = sst.http(self.redirect_port, "GET", "/go?x=1", headers={"Host": "localhost"})
        self.assertEqual(r.status, 301)
        loc = r.header("Location")
        self.assertEqual(loc, "https://localhost:%d/go?x=1" % self.tls_port)
        # localhost is the self-signed certificate's name: it is its own CA
        localhost_ca = self.certs["files"]["selfsigned"]["cert"]
        p = subprocess.run([CURL, "-sS", "-L", "--cacert", localhost_ca, "-o", "/dev/null", "-w",
                            "%{http_code} %{url_effective}",
                            "http://localhost:%d/go?x=1" % self.redirect_port],
                           capture_output=True, timeout=scaled(20))
        self.assertEqual(p.stdout.decode(), "200 " + loc, p.stderr)

    # -- bad input on the TLS port

    def test_handshake_deadline(self):
        before = self.failures("timeout")
        with socket.create_connection(("127.0.0.1", self.tls_port)) as s:
            # half a ClientHello, then silence: closed at timeouts.tls_handshake
            s.sendall(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03")
            s.settimeout(scaled(5))
            t0 = time.monotonic()
            self.assertEqual(s.recv(100), b"")
            self.assertLess(time.monotonic() - t0, scaled(4))
        sst.wait_until(lambda: self.failures("timeout") >= before + 1, 3,
                       what="the timeout counted")

    def test_bad_input_never_stalls_another_client(self):
        stop = threading.Event()
        errors, served = [], [0]

        def good_client():
            try:
                with Conn.tls(self.tls_port, "www.example.test", self.ca) as c:
                    while not stop.is_set():
                        t0 = time.monotonic()
                        c.request("GET", "/good")
                        if c.recv_response(timeout=2).status != 200:
                            errors.append("status")
                        if time.monotonic() - t0 > scaled(1):
                            errors.append("slow answer: %.2fs" % (time.monotonic() - t0))
                        served[0] += 1
            except Exception as e:  # noqa: BLE001 (reported below)
                errors.append(repr(e))

        th = threading.Thread(target=good_client)
        th.start()
        try:
            # garbage: an alert, then the close
            with socket.create_connection(("127.0.0.1", self.tls_port)) as s:
                s.sendall(b"\x00\x01\x02garbage that is not TLS" * 10)
                s.settimeout(scaled(3))
                self.assertEqual(s.recv(7), b"\x15\x03\x03\x00\x02\x02\x32")
            # a truncated hello, cut by the client: the connection ends, nothing hangs
            with socket.create_connection(("127.0.0.1", self.tls_port)) as s:
                s.sendall(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(20))
                s.shutdown(socket.SHUT_WR)
                s.settimeout(scaled(3))
                while s.recv(100):
                    pass
            # a hello held open mid-way (the deadline ends it), while others go on
            held = socket.create_connection(("127.0.0.1", self.tls_port))
            held.sendall(b"\x16\x03\x01\x02\x00")
            # a renegotiation attempt (TLS 1.2 ClientHello after the handshake)
            before = self.failures("renegotiation")
            out = self.s_client("-tls1_2", "-servername", "www.example.test",
                                stdin=b"R\n")
            self.assertIn("RENEGOTIATING", out)
            self.assertIn("no renegotiation", out)
            self.assertEqual(self.failures("renegotiation"), before + 1)
            time.sleep(scaled(0.3))
            held.close()
        finally:
            stop.set()
            th.join(timeout=scaled(10))
        self.assertEqual(errors, [])
        self.assertGreater(served[0], 5)

    # -- metrics and status

    def test_certificates_in_metrics_and_status(self):
        f = self.certs["files"]
        text = self.metrics()
        listener = "127.0.0.1:%d" % self.tls_port
        for name, cert in (("www.example.test", "www"), ("static.example.test", "www"),
                           ("api.example.test", "api-rsa"), ("api.example.test", "api-ecdsa"),
                           ("*.wild.example.test", "wild"), ("localhost", "selfsigned")):
            with self.subTest(name=name, cert=cert):
                v = self.metric(text, "sidestep_tls_cert_expiry_seconds", listener=listener,
                                name=name, cert=f[cert]["cert"])
                # certs.py sets the others' dates exactly; `openssl req -x509 -days` counts the
                # self-signed one's from its own clock, a second off the manifest at most
                slack = 2 if cert == "selfsigned" else 0
                self.assertLessEqual(abs(v - f[cert]["not_after"]), slack)
        self.assertEqual(len(re.findall(r"^sidestep_tls_cert_expiry_seconds\{", text, re.M)), 6)
        st = sst.http(self.sst.admin_port, "GET", "/status").json()["tls"]
        self.assertEqual(len(st["listeners"]), 1)
        lst = st["listeners"][0]
        self.assertEqual(lst["address"], listener)
        got = [(c["index"], c["names"], c["key_type"]) for c in lst["certificates"]]
        self.assertEqual(got, [
            (0, ["www.example.test", "static.example.test"], "ECDSA P-256"),
            (1, ["api.example.test"], "RSA 2048"),
            (2, ["api.example.test"], "ECDSA P-256"),
            (3, ["*.wild.example.test"], "ECDSA P-256"),
            (4, ["localhost"], "ECDSA P-256"),
        ])
        www = lst["certificates"][0]
        self.assertEqual(www["file"], f["www"]["cert"])
        self.assertRegex(www["not_after"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z$")
        left = f["www"]["not_after"] - time.time()
        self.assertLess(abs(www["expires_in_s"] - left), 60)
        self.assertGreaterEqual(st["ticket_keys"], 1)
        self.assertIsNotNone(self.metric(text, "sidestep_tls_handshakes_total", version="1.3",
                                         resumed="false"))


if __name__ == "__main__":
    unittest.main(verbosity=2)
