"""Certificate reload on HTTPS listeners (issue 14): a swap under load (wrk over https, a reload
in the middle) fails no handshake and no request, and established connections carry on with
the context they started with while new handshakes get the new certificate; a bad certificate
at reload (SIGHUP or POST /reload) keeps the old config serving and names the file, line and
key; session tickets issued before a reload resume after it.
"""

import re
import shutil
import signal
import ssl
import subprocess
import time
import unittest

import sst
from sst import Conn, Sidestep, Stub, scaled

WRK = shutil.which("wrk")
WRK_CONNECTIONS = 16


def names(cert_dict):
    return sorted(v for k, v in cert_dict.get("subjectAltName", ()) if k == "DNS")


class TlsReload(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.certs = sst.tls_certs()
        cls.stub = Stub(name="us-east", args=["--no-hash"])

    @classmethod
    def tearDownClass(cls):
        cls.stub.stop()

    def setUp(self):
        self.sst = Sidestep(self.config("www"), extra_args=["--workers", "2"])
        self.port = self.sst.port

    def tearDown(self):
        self.sst.stop()

    def config(self, leaf, key=None):
        f = self.certs["files"]
        return {
            "listen": [{"address": "127.0.0.1:0",
                        "tls": {"certificates": [{"cert": f[leaf]["cert"],
                                                  "key": f[key or leaf]["key"]}]}}],
            "admin": {"address": "127.0.0.1:0"},
            "regions": [{"name": "us-east", "url": "https://us-east.example",
                         "backends": [self.stub.addr],
                         "health": {"enabled": False, "initial": "up"}}],
            "log": {"access": "off"},
        }

    def served(self):
        """The DNS names of the certificate a new handshake gets (no SNI: the default)."""
        ctx = sst.tls_context(self.certs["ca"])
        ctx.check_hostname = False
        with sst.tls_connect(self.port, None, context=ctx) as s:
            # a request too: once answered, the server has counted the handshake (the client's
            # side of it ends before the server has read its Finished)
            c = Conn.from_socket(s)
            c.request("GET", "/served")
            self.assertEqual(c.recv_response().status, 200)
            return names(s.getpeercert())

    def metrics(self):
        return sst.http(self.sst.admin_port, "GET", "/metrics").text

    def counter(self, text, name, **labels):
        want = ",".join('%s="%s"' % kv for kv in labels.items())
        m = re.search(r"^%s\{%s\} (\S+)$" % (re.escape(name), re.escape(want)), text, re.M)
        return int(float(m.group(1))) if m else 0

    def handshakes(self, text):
        return sum(self.counter(text, "sidestep_tls_handshakes_total", version=v, resumed=r)
                   for v in ("1.2", "1.3") for r in ("false", "true"))

    def failures(self, text):
        out = {}
        for m in re.finditer(r'^sidestep_tls_handshake_failures_total\{reason="(\w+)"\} (\S+)$',
                             text, re.M):
            out[m.group(1)] = int(float(m.group(2)))
        return out

    def reload_signal(self):
        before = self.sst.stderr_text().count("reloaded ")
        self.sst.reload()
        sst.wait_until(lambda: self.sst.stderr_text().count("reloaded ") > before, 5,
                       what="the reload")

    def test_swap_under_load(self):
        self.assertEqual(self.served(), ["static.example.test", "www.example.test"])
        before = self.metrics()
        wrk = subprocess.Popen([WRK, "-t2", "-c%d" % WRK_CONNECTIONS, "-d5s",
                                "https://127.0.0.1:%d/load" % self.port],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            time.sleep(2.5)
            self.sst.write_config(self.config("wild"))
            self.reload_signal()
            # new handshakes get the new certificate at once, under load
            self.assertEqual(self.served(), ["*.wild.example.test"])
            out, err = wrk.communicate(timeout=scaled(30))
        finally:
            if wrk.poll() is None:
                wrk.kill()
                wrk.wait()
        after = self.metrics()
        text = out.decode()
        self.assertEqual(wrk.returncode, 0, err)
        m = re.search(r"(\d+) requests in", text)
        self.assertIsNotNone(m, text)
        self.assertGreater(int(m.group(1)), 1000, text)
        # wrk reports failed requests this way: none may show
        self.assertNotIn("Socket errors", text)
        self.assertNotIn("Non-2xx", text)
        # no handshake failed (wrk tests the address with one bare TCP connect first: an
        # `eof` at most per thread), and the keep-alive connections carried on through the
        # reload: wrk never had to connect again
        fb, fa = self.failures(before), self.failures(after)
        grown = {k: fa[k] - fb.get(k, 0) for k in fa if fa[k] != fb.get(k, 0)}
        self.assertLessEqual(grown.pop("eof", 0), 2, grown)
        self.assertEqual(grown, {})
        # the served() check above made one handshake of its own
        self.assertEqual(self.handshakes(after) - self.handshakes(before), WRK_CONNECTIONS + 1)

    def test_bad_certificates_at_reload_keep_the_old_one(self):
        old = ["static.example.test", "www.example.test"]
        ctx = sst.tls_context(self.certs["ca"])
        keep = Conn.tls(self.port, "www.example.test", context=ctx)
        keep.request("GET", "/before")
        self.assertEqual(keep.recv_response().status, 200)
        session = keep.sock.session
        # SIGHUP with an expired certificate
        self.sst.write_config(self.config("expired"))
        self.sst.reload()
        text = self.sst.wait_stderr("reload rejected", timeout=5)
        self.assertRegex(text, r"%s:\d+:\d+: listen\[0\]\.tls\.certificates\[0\]\.cert: .*"
                               r"expired on" % re.escape(self.sst.config_path))
        self.assertEqual(self.served(), old)
        # POST /reload with a key that does not match
        self.sst.write_config(self.config("www", key="unmatched"))
        r = sst.http(self.sst.admin_port, "POST", "/reload")
        self.assertEqual(r.status, 400)
        self.assertRegex(r.text, r"%s:\d+:\d+: listen\[0\]\.tls\.certificates\[0\]\.key: .*"
                                 r"does not match" % re.escape(self.sst.config_path))
        self.assertEqual(self.served(), old)
        # unreadable, and the wrong format
        for leaf, key, why in (("garbage", "garbage", "listen\\[0\\]\\.tls\\.certificates"
                                                      "\\[0\\]\\.cert: "),):
            self.sst.write_config(self.config(leaf, key))
            r = sst.http(self.sst.admin_port, "POST", "/reload")
            self.assertEqual(r.status, 400)
            self.assertRegex(r.text, why)
        self.assertEqual(self.served(), old)
        self.assertEqual(self.counter(self.metrics(), "sidestep_reloads_total",
                                      result="failed"), 3)
        # a good certificate: new handshakes get it, the connection made before carries on
        self.sst.write_config(self.config("api-ecdsa"))
        r = sst.http(self.sst.admin_port, "POST", "/reload")
        self.assertEqual(r.status, 200, r.text)
        self.assertEqual(self.served(), ["api.example.test"])
        keep.request("GET", "/after")
        self.assertEqual(keep.recv_response().status, 200)
        self.assertEqual(names(keep.sock.getpeercert()), old)
        keep.close()
        # the ticket keys survived the reloads: the session from before resumes
        with sst.tls_connect(self.port, "www.example.test", context=ctx, session=session) as s:
            self.assertTrue(s.session_reused)


if __name__ == "__main__":
    unittest.main(verbosity=2)
