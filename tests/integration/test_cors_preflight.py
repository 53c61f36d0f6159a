"""Issue 11, item 4: CORS preflights while a route fails over, over raw sockets.

A browser sends an OPTIONS preflight before any cross-origin request with a JSON body or a
custom header, and the Fetch standard fails the whole call when a preflight is redirected. So
while a route redirects, sidestep answers a preflight (OPTIONS, an Origin in cors_origins, an
Access-Control-Request-Method) itself with 204 and the CORS fields; the actual request then
gets the 307 with the same Access-Control-Allow-Origin (and -Credentials with
cors_credentials). While the route proxies, preflights are proxied as before. The real-browser
counterpart is test_cors_browser.py.
"""

import re
import unittest

import sst
from sst import Conn, Sidestep, Stub, http

APP = "https://app.example"
HEALTH = {"interval": "200ms", "timeout": "150ms", "rise": 1, "fall": 1, "jitter": "0ms"}


class Closed:
    """A backend address where nothing listens."""

    def __init__(self):
        self.port = sst.free_port()
        self.addr = "127.0.0.1:%d" % self.port


def preflight(target, origin=APP, method="POST", headers="content-type", extra=None,
              version="HTTP/1.1"):
    h = {"Origin": origin} if origin is not None else {}
    if method is not None:
        h["Access-Control-Request-Method"] = method
    if headers is not None:
        h["Access-Control-Request-Headers"] = headers
    h.update(extra or {})
    return sst.request_bytes("OPTIONS", target, h, None, "sidestep.test", version)


class Preflights(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dead = Closed()
        cls.eu = Stub("eu-west")
        eu_url = "http://%s" % cls.eu.addr
        cfg = {
            "workers": 1,
            "local_region": "us-east",
            "listen": [{"address": "127.0.0.1:0"}],
            "regions": [
                {"name": "us-east", "url": "http://us-east.example",
                 "backends": [cls.dead.addr], "health": dict(HEALTH)},
                # always UP by its (unchecked) initial state, never reachable: every request
                # there fails at connect and takes the in-flight failover
                {"name": "us-west", "url": "http://us-west.example",
                 "backends": [Closed().addr], "health": {"enabled": False, "initial": "up"}},
                {"name": "eu-west", "url": eu_url, "backends": [cls.eu.addr],
                 "health": dict(HEALTH)},
            ],
            "routes": [
                {"name": "api", "match": {"path_prefix": "/api/"}, "primary": "us-east",
                 "failover": ["eu-west"], "cors_origins": [APP, "http://localhost:3000"]},
                {"name": "cred", "match": {"path_prefix": "/cred/"}, "primary": "us-east",
                 "failover": ["eu-west"], "cors_origins": [APP], "cors_credentials": True},
                {"name": "star", "match": {"path_prefix": "/star/"}, "primary": "us-east",
                 "failover": ["eu-west"], "cors_origins": ["*"]},
                {"name": "inflight", "match": {"path_prefix": "/inflight/"},
                 "primary": "us-west", "failover": ["eu-west"], "cors_origins": [APP]},
                {"name": "proxied", "match": {"path_prefix": "/"}, "primary": "eu-west",
                 "failover": ["us-east"], "cors_origins": [APP]},
            ],
            "log": {"access": "stderr"},
        }
        cls.sst = Sidestep(cfg)
        # eu-west is the proxied route's primary, so it starts UP (initial: auto)
        cls.sst.wait_stderr("region us-east up -> down", timeout=5)
        cls.eu_url = eu_url

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.eu.stop()

    def exchange(self, data, method="OPTIONS"):
        with Conn(self.sst.port) as c:
            c.send(data)
            return c.recv_response(method=method)

    def test_preflight_is_answered_204_with_exact_headers(self):
        with Conn(self.sst.port) as c:
            c.send(preflight("/api/orders?id=7", headers="content-type,x-request-id"))
            r = c.recv_response(method="OPTIONS")
            self.assertEqual(r.raw, (
                b"HTTP/1.1 204 No Content\r\n"
                b"Access-Control-Allow-Origin: https://app.example\r\n"
                b"Vary: Origin\r\n"
                b"Access-Control-Allow-Methods: POST\r\n"
                b"Access-Control-Allow-Headers: content-type,x-request-id\r\n"
                b"Access-Control-Max-Age: 5\r\n"
                b"X-Sidestep-Region: eu-west\r\n"
                b"\r\n"))
            # keep-alive as for any local answer: the actual request follows on the same
            # connection and gets the 307 with the same CORS fields
            c.request("POST", "/api/orders?id=7", headers={
                "Origin": APP, "Content-Type": "application/json"}, body=b'{"a": 1}')
            r = c.recv_response()
            self.assertEqual(r.status, 307)
            self.assertEqual(r.header("Location"), self.eu_url + "/api/orders?id=7")
            self.assertEqual(r.header("Access-Control-Allow-Origin"), APP)
            self.assertEqual(r.header("Vary"), "Origin")
            self.assertIsNone(r.header("Access-Control-Allow-Credentials"))
        self.sst.wait_stderr("cors preflight for a redirect", timeout=2)

    def test_other_methods_and_origins(self):
        r = self.exchange(preflight("/api/x", origin="http://localhost:3000", method="DELETE",
                                    headers=None))
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "http://localhost:3000")
        self.assertEqual(r.header("Access-Control-Allow-Methods"), "DELETE")
        self.assertIsNone(r.header("Access-Control-Allow-Headers"))
        self.assertIsNone(r.header("Content-Length"))  # RFC 9110 §8.6: never on a 204
        self.assertEqual(r.body, b"")
        # "*" echoes whatever (header-safe) origin asked
        r = self.exchange(preflight("/star/x", origin="http://other.example:8080"))
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), "http://other.example:8080")

    def test_invalid_request_headers_are_left_out(self):
        for bad in ("content-type, x y", "a;b", "a:b", '"quoted"', "x" * 1100, ",,, ,"):
            r = self.exchange(preflight("/api/x", headers=bad))
            self.assertEqual(r.status, 204, bad)
            self.assertEqual(r.header("Access-Control-Allow-Methods"), "POST")
            self.assertIsNone(r.header("Access-Control-Allow-Headers"), bad)
            self.assertEqual([n for n, _ in r.headers].count("Access-Control-Allow-Origin"), 1)
        # at the cap: echoed whole
        ok = ",".join(["x-h%04d" % i for i in range(128)])[:1024].rstrip(",")
        r = self.exchange(preflight("/api/x", headers=ok))
        self.assertEqual(r.header("Access-Control-Allow-Headers"), ok)
        # whitespace around the list is not echoed
        r = self.exchange(preflight("/api/x", headers="\tContent-Type , X-A"))
        self.assertEqual(r.header("Access-Control-Allow-Headers"), "Content-Type , X-A")

    def test_what_is_not_a_preflight_gets_the_redirect(self):
        cases = [
            ("no Access-Control-Request-Method", preflight("/api/x", method=None), APP),
            ("a method that is not a token", preflight("/api/x", method="PO(ST"), APP),
            ("a method past 64 bytes", preflight("/api/x", method="M" * 65), APP),
            ("origin not listed", preflight("/api/x", origin="https://evil.example"), None),
            ("no Origin", preflight("/api/x", origin=None), None),
            ("a repeated Access-Control-Request-Method",
             preflight("/api/x").replace(b"\r\n\r\n",
                                         b"\r\nAccess-Control-Request-Method: PUT\r\n\r\n"),
             APP),
        ]
        for name, data, acao in cases:
            r = self.exchange(data)
            self.assertEqual(r.status, 307, name)
            self.assertEqual(r.header("Location"), self.eu_url + "/api/x", name)
            self.assertEqual(r.header("Access-Control-Allow-Origin"), acao, name)
            self.assertIsNone(r.header("Access-Control-Allow-Methods"), name)

    def test_credentials(self):
        r = self.exchange(preflight("/cred/x", headers="content-type"))
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true")
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP)
        r = http(self.sst.port, "PUT", "/cred/x", body=b"{}",
                 headers={"Origin": APP, "Cookie": "s=1"})
        self.assertEqual(r.status, 307)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP)
        self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true")
        # not for an origin the route does not list, and not on routes without the key
        r = http(self.sst.port, "PUT", "/cred/x", body=b"{}",
                 headers={"Origin": "https://evil.example"})
        self.assertIsNone(r.header("Access-Control-Allow-Credentials"))
        r = self.exchange(preflight("/star/x"))
        self.assertIsNone(r.header("Access-Control-Allow-Credentials"))

    def test_preflight_is_proxied_while_the_route_proxies(self):
        r = self.exchange(preflight("/p/x", headers="content-type"))
        self.assertEqual(r.status, 200)  # the stub's echo: the backend answers CORS itself
        e = r.echo()
        self.assertEqual(e.origin, "eu-west")
        self.assertEqual(e.method, "OPTIONS")
        self.assertEqual(e.header("Access-Control-Request-Method"), "POST")
        self.assertIsNone(r.header("Access-Control-Allow-Methods"))

    def test_in_flight_failover_of_a_preflight_is_answered(self):
        r = self.exchange(preflight("/inflight/x"))
        self.assertEqual(r.status, 204)
        self.assertEqual(r.header("Access-Control-Allow-Origin"), APP)
        self.assertEqual(r.header("X-Sidestep-Region"), "eu-west")
        self.sst.wait_stderr(re.compile(
            r'"OPTIONS /inflight/x HTTP/1\.1" 204 .*region=eu-west .*reason="in-flight failover"'),
            timeout=2)

    def test_connection_rules_as_for_other_local_answers(self):
        # HTTP/1.0 without keep-alive: answered, then closed
        with Conn(self.sst.port) as c:
            c.send(preflight("/api/x", version="HTTP/1.0"))
            r = c.recv_response(method="OPTIONS")
            self.assertEqual(r.status, 204)
            self.assertEqual(r.header("Connection"), "close")
            self.assertTrue(c.closed(timeout=2))
        # HTTP/1.0 keep-alive is honoured
        with Conn(self.sst.port) as c:
            c.send(preflight("/api/x", version="HTTP/1.0", extra={"Connection": "keep-alive"}))
            r = c.recv_response(method="OPTIONS")
            self.assertEqual(r.header("Connection"), "keep-alive")
            c.request("GET", "/api/y")
            self.assertEqual(c.recv_response().status, 307)
        # Connection: close from the client
        with Conn(self.sst.port) as c:
            c.send(preflight("/api/x", extra={"Connection": "close"}))
            self.assertEqual(c.recv_response(method="OPTIONS").header("Connection"), "close")
            self.assertTrue(c.closed(timeout=2))
        # a preflight with a small body: read and dropped, the connection stays usable
        with Conn(self.sst.port) as c:
            c.send(preflight("/api/x", extra={"Content-Length": "5"}) + b"hello")
            self.assertEqual(c.recv_response(method="OPTIONS").status, 204)
            c.send(preflight("/api/z"))
            self.assertEqual(c.recv_response(method="OPTIONS").status, 204)
        # pipelined: each answer in order
        with Conn(self.sst.port) as c:
            c.send(preflight("/api/1") + sst.request_bytes("GET", "/api/2", host="x")
                   + preflight("/cred/3"))
            self.assertEqual(c.recv_response(method="OPTIONS").status, 204)
            self.assertEqual(c.recv_response().header("Location"), self.eu_url + "/api/2")
            r = c.recv_response(method="OPTIONS")
            self.assertEqual(r.header("Access-Control-Allow-Credentials"), "true")


if __name__ == "__main__":
    unittest.main()
