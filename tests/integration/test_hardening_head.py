"""Hardening: request line and head over real sockets. Exact answers at the default limits
(request-line 8 KiB -> 414; one field 8 KiB, the whole head 32 KiB, 100 fields -> 431, each
checked one byte under and one byte over), malformed bytes and names, Host, CONNECT and bad
targets, versions, an HTTP/2 preface and a TLS ClientHello on the plain port, llhttp 8.1's
known gaps (bare CR in values, version-less request lines, bare LF after the version, obs-fold),
what is forwarded for absolute-form and encoded CR LF targets, hop-by-hop fields, and
forwarding fields (Via included) with and without trusted_proxies. The same limits set low in
the config (ConfiguredLimits) give the same answers. The whole catalogue runs once more through
a listener with proxy_protocol (the Proxied* classes, issue 16): every connection opens with a
PROXY v2 header declaring another client, and every answer must be the same, the forwarding
fields naming the declared client. A representative subset (the limits, malformed heads,
forwarding fields) runs again over TLS (the *OverTls classes, issue 14): the catalogue that
holds on plain listeners holds over TLS, with X-Forwarded-Proto https there.
"""

import unittest

import proxy_header
import sst
from badbackend import BadBackend, ok, respond
from sst import Conn, Sidestep

#: The client a PROXY header declares in the Proxied* classes (TEST-NET-3, never the peer).
PROXY_CLIENT = "203.0.113.7"

REASONS = {400: "Bad Request", 405: "Method Not Allowed", 414: "URI Too Long",
           431: "Request Header Fields Too Large", 501: "Not Implemented",
           505: "HTTP Version Not Supported"}


def config(backend, trusted=None, limits=None, proxy=False, tls=False):
    listener = {"address": "127.0.0.1:0"}
    if proxy:
        listener.update(proxy_protocol=True, proxy_protocol_from=["127.0.0.1"])
    if tls:
        leaf = sst.tls_certs()["files"]["selfsigned"]
        listener["tls"] = {"certificates": [{"cert": leaf["cert"], "key": leaf["key"]}]}
    cfg = {
        "workers": 1,
        "listen": [listener],
        "regions": [{"name": "us-east", "url": "http://us-east.example",
                     "backends": [backend.addr],
                     "health": {"enabled": False, "initial": "up"}}],
        "timeouts": {"linger": "500ms"},
        "log": {"access": "stderr"},
    }
    if trusted is not None:
        cfg["trusted_proxies"] = trusted
    if limits is not None:
        cfg["limits"] = limits
    return cfg


class HeadBase(unittest.TestCase):
    trusted = None
    limits = None
    proxy = False          # every connection opens with a PROXY header (issue 16)
    client = "127.0.0.1"   # the client sidestep sees: the peer, or the declared one
    tls = False  # the same tests over an HTTPS listener
    proto = "http"  # the X-Forwarded-Proto sidestep sends

    @classmethod
    def setUpClass(cls):
        cls.backend = BadBackend(respond(ok(), then="keep"))
        cls.sst = Sidestep(config(cls.backend, cls.trusted, cls.limits, cls.proxy, cls.tls))
        cls.preamble = (proxy_header.v2(PROXY_CLIENT, "127.0.0.1", 40000, cls.sst.port)
                        if cls.proxy else b"")
        cls.n = 0

    def conn(self):
        if self.tls:
            return Conn.tls(self.sst.port, cafile=sst.tls_certs()["files"]["selfsigned"]["cert"])
        return Conn(self.sst.port, preamble=self.preamble)

    def get(self, target):
        with self.conn() as c:
            c.request("GET", target)
            return c.recv_response()

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.backend.stop()
        if cls.backend.errors:
            raise AssertionError("backend script errors: %r" % cls.backend.errors)

    def forwarded_by(self, data):
        """Sends `data` (one request) and returns (response, the request the backend got)."""
        before = len(self.backend.requests)
        with self.conn() as c:
            c.send(data)
            r = c.recv_response()
        self.assertEqual(r.status, 200, data[:200])
        reqs = self.backend.requests[before:]
        self.assertEqual(len(reqs), 1)
        return r, reqs[0]

    def reject(self, data, status):
        """The exact answer (status, reason phrase, Connection: close, then the close) and
        nothing forwarded: a valid request sent afterwards is the only one the backend sees."""
        before = len(self.backend.requests)
        with self.conn() as c:
            c.send(data)
            r = c.recv_response()
            self.assertEqual((r.status, r.reason), (status, REASONS[status]), data[:200])
            self.assertEqual(r.header("Connection"), "close")
            self.assertEqual(int(r.header("Content-Length")), len(r.body))
            self.assertTrue(c.closed(timeout=3), "connection left open after %d" % status)
        type(self).n += 1
        target = "/barrier/%d" % self.n
        self.assertEqual(self.get(target).status, 200)
        seen = [q.target for q in self.backend.requests[before:]]
        self.assertEqual(seen, [target], "forwarded: %r" % seen)
        return r

    def check_table(self, cases):
        for data, status in cases:
            with self.subTest(data=data[:80]):
                if status == 200:
                    self.forwarded_by(data)
                else:
                    self.reject(data, status)


def get(headers=b"Host: a\r\n", target=b"/", version=b"HTTP/1.1", method=b"GET"):
    return method + b" " + target + b" " + version + b"\r\n" + headers + b"\r\n"


class Limits(HeadBase):
    """Defaults: request_line 8k, header_field 8k, header_bytes 32k, headers 100. A request
    line counts its bytes without CRLF; a field counts its whole line (name, colon, spaces,
    value) without CRLF; the head counts every byte up to and including the empty line."""

    def test_request_line_limit_414(self):
        base = len(b"GET / HTTP/1.1")
        at = get(target=b"/" + b"a" * (8192 - base))
        self.assertEqual(at.index(b"\r\n"), 8192)
        self.forwarded_by(at)
        self.reject(get(target=b"/" + b"a" * (8193 - base)), 414)
        self.reject(get(target=b"/" + b"a" * 100000), 414)

    def test_field_limit_431(self):
        at = b"X: " + b"v" * (8192 - 3)
        r, q = self.forwarded_by(get(b"Host: a\r\n" + at + b"\r\n"))
        self.assertEqual(len(q.header("X")), 8189)
        self.reject(get(b"Host: a\r\nX: " + b"v" * (8193 - 3) + b"\r\n"), 431)
        self.reject(get(b"Host: a\r\n" + b"N" * 8193 + b": v\r\n"), 431)  # a long name

    def test_head_limit_431(self):
        def head_of(total):
            fixed = get(b"Host: a\r\n")
            fields, left = [], total - len(fixed)
            i = 0
            while left > 0:
                line_len = min(left, 8000)
                name = b"X-%04d: " % i
                value_len = line_len - len(name) - 2
                self.assertGreater(value_len, 0)
                fields.append(name + b"v" * value_len + b"\r\n")
                left -= line_len
                i += 1
            data = get(b"Host: a\r\n" + b"".join(fields))
            self.assertEqual(len(data), total)
            return data
        self.forwarded_by(head_of(32768))
        self.reject(head_of(32769), 431)

    def test_field_count_431(self):
        hundred = b"Host: a\r\n" + b"".join(b"X-%d: v\r\n" % i for i in range(99))
        r, q = self.forwarded_by(get(hundred))
        self.assertEqual(q.header("X-98"), "v")
        self.reject(get(hundred + b"X-99: v\r\n"), 431)


class ConfiguredLimits(HeadBase):
    """The limits keys of the config, set low, give the same answers."""
    limits = {"request_line": "1k", "header_field": "1k", "header_bytes": "4k", "headers": 20}

    def expect(self, data, status):
        with self.conn() as c:
            c.send(data)
            out = c.recv_some(2.0)
        self.assertTrue(out.startswith(b"HTTP/1.1 %d " % status), out[:200])
        self.assertIn(b"Connection: close", out)
        return out

    def test_request_line_414(self):
        self.expect(b"GET /" + b"a" * 2000 + b" HTTP/1.1\r\nHost: a\r\n\r\n", 414)

    def test_header_field_431(self):
        self.expect(b"GET / HTTP/1.1\r\nHost: a\r\nX: " + b"a" * 2000 + b"\r\n\r\n", 431)

    def test_head_431(self):
        fields = b"".join(b"X-%d: %s\r\n" % (i, b"v" * 500) for i in range(10))
        self.expect(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", 431)

    def test_field_count_431(self):
        fields = b"".join(b"X-%d: v\r\n" % i for i in range(30))
        self.expect(b"GET / HTTP/1.1\r\nHost: a\r\n" + fields + b"\r\n", 431)


class MalformedHead(HeadBase):
    def test_llhttp_known_gaps_stay_closed(self):
        """What Debian's llhttp 8.1 lets through and the prescan rejects."""
        self.check_table([
            (b"GET / HTTP/1.1\r\nHost: a\r\nX-Abc: \rxTransfer-Encoding: chunked\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\rb\r\n\r\n", 400),           # bare CR in a value
            (b"GET /\nHost: a\r\n\r\n", 400),                                   # HTTP/0.9-ish
            (b"GET /\r\nHost: a\r\n\r\n", 400),                                 # no version
            (b"GET / HTTP/1.1\nHost: a\r\n\r\n", 400),                          # bare LF after it
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n", 400),          # obs-fold SP
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n\tb\r\n\r\n", 400),         # obs-fold HTAB
            (b"GET / HTTP/1.1\r\nHost: a\nX: b\r\n\r\n", 400),                  # bare LF in head
            (b"GET / HTTP/1.1\r\nHost: a\r\n\n", 400),                          # bare LF at end
            (b"GET / HTTP/1.1\r\nHost: a\r\n\r\r\n", 400),                      # bare CR at end
        ])

    def test_bytes_and_names(self):
        self.check_table([
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\x00: b\r\n\r\n", 400),            # NUL in a name
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: b\x00c\r\n\r\n", 400),           # NUL in a value
            (b"GET /a\x00b HTTP/1.1\r\nHost: a\r\n\r\n", 400),                  # NUL in target
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: b\x01\r\n\r\n", 400),            # control chars
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: b\x1b[0m\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: b\x7f\r\n\r\n", 400),            # DEL
            (b"GET / HTTP/1.1\r\nHost: a\r\nX : y\r\n\r\n", 400),               # SP before colon
            (b"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\t: y\r\n\r\n", 400),              # HTAB before it
            (b"GET / HTTP/1.1\r\nHost: a\r\n: y\r\n\r\n", 400),                 # empty name
            (b"GET / HTTP/1.1\r\nHost: a\r\nX@: y\r\n\r\n", 400),               # non-token names
            (b"GET / HTTP/1.1\r\nHost: a\r\nX(y): z\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX\x80: y\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: a\tb\r\n\r\n", 200),             # HTAB is fine
            (b"GET / HTTP/1.1\r\nHost: a\r\nX: caf\xc3\xa9\r\n\r\n", 200),      # obs-text too
        ])

    def test_host(self):
        self.check_table([
            (b"GET / HTTP/1.1\r\nX: y\r\n\r\n", 400),                           # missing
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400),             # repeated
            (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a, b\r\n\r\n", 400),                     # a list
            (b"GET / HTTP/1.1\r\nHost: a,b\r\n\r\n", 400),                      # folded
            (b"GET / HTTP/1.1\r\nHost: a;b=c\r\n\r\n", 400),                    # sub-delims
            (b"GET / HTTP/1.1\r\nHost:\r\n\r\n", 400),                          # empty
            (b"GET / HTTP/1.1\r\nHost: a b\r\n\r\n", 400),                      # malformed
            (b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: u@a\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a:8x\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a:+80\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: [::1\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: [zz]\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: a\x80b\r\n\r\n", 400),
            (b"GET / HTTP/1.1\r\nHost: " + b"a" * 300 + b"\r\n\r\n", 400),      # over 255
            (b"GET / HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n", 200),
            (b"GET / HTTP/1.0\r\n\r\n", 200),                                   # 1.0: optional
        ])
        r, q = self.forwarded_by(b"GET / HTTP/1.1\r\nHost: shop.example:8080 \t\r\n\r\n")
        self.assertEqual(q.header_all("Host"), ["shop.example:8080"])          # OWS trimmed
        # an HTTP/1.0 request without Host goes out as HTTP/1.1: it needs a non-empty Host,
        # and gets the backend's address (found by test_hardening_diff: nginx answered 400)
        r, q = self.forwarded_by(b"GET / HTTP/1.0\r\n\r\n")
        self.assertEqual(q.version, "HTTP/1.1")
        self.assertEqual(q.header_all("Host"), [self.backend.addr])
        self.assertIsNone(q.header("X-Forwarded-Host"))

    def test_methods_targets_and_versions(self):
        clienthello = (b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32)) +
                       b"\x00\x00\x02\x13\x01\x01\x00")
        self.check_table([
            (b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n", 405),
            (b"CONNECT / HTTP/1.1\r\nHost: a\r\n\r\n", 405),
            (get(target=b"a/b"), 400),                                          # bad targets
            (get(target=b"ftp://b/"), 400),
            (get(target=b"http://u@b/"), 400),
            (get(target=b"http://"), 400),
            (get(target=b"http:/b"), 400),
            (get(target=b"/a#frag"), 400),
            (get(target=b"/caf\xc3\xa9"), 400),
            (get(target=b"/a\x7f"), 400),
            (get(target=b"*"), 400),
            (b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n", 400),                      # spacing
            (b"GET / HTTP/1.1 \r\nHost: a\r\n\r\n", 400),
            (b" GET / HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET\t/ HTTP/1.1\r\nHost: a\r\n\r\n", 400),
            (b"GET / HTTP/1.1 x\r\nHost: a\r\n\r\n", 400),
            (get(version=b"HTTP/1.2"), 505),                                    # versions
            (get(version=b"HTTP/2.0"), 505),
            (get(version=b"HTTP/3.1"), 505),
            # llhttp reports a malformed version number as an invalid version: 505 too
            (get(version=b"HTTP/1.10"), 505),
            (get(version=b"HTTP/01.1"), 505),
            (get(version=b"HTTP/1"), 505),
            (get(version=b"HTTP/0.9"), 400),
            (get(version=b"http/1.1"), 400),
            (get(version=b"HTTPS/1.1"), 400),
            (b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),                          # h2 preface
            (clienthello, 400),                                                  # TLS on :80
            (get(method=b"FOO"), 501),                                           # unknown token
            (get(method=b"get"), 501),
            (get(method=b"G@T"), 400),                                           # not a token
            (get(method=b"GET\x00"), 400),
        ])

    def test_connect_answer_lists_allowed_methods(self):
        with self.conn() as c:
            c.send(b"CONNECT a.example:443 HTTP/1.1\r\nHost: a.example:443\r\n\r\n")
            r = c.recv_response()
        self.assertEqual(r.status, 405)
        self.assertIn("GET", r.header("Allow"))
        self.assertNotIn("CONNECT", r.header("Allow"))


class Forwarding(HeadBase):
    def test_absolute_form_is_forwarded_in_origin_form(self):
        r, q = self.forwarded_by(b"GET http://api.example:8080/a/b?c=1 HTTP/1.1\r\n"
                                 b"Host: ignored.example\r\n\r\n")
        self.assertEqual(q.target, "/a/b?c=1")
        self.assertEqual(q.header_all("Host"), ["api.example:8080"])
        self.assertEqual(q.header("X-Forwarded-Host"), "api.example:8080")
        r, q = self.forwarded_by(b"GET HTTPS://API.example HTTP/1.1\r\nHost: x\r\n\r\n")
        self.assertEqual(q.target, "/")
        self.assertEqual(q.header("Host"), "API.example")

    def test_percent_encoded_crlf_stays_encoded(self):
        for target in (b"/a%0D%0AX-Injected:%20yes", b"/a?b=%0d%0aSet-Cookie:%20x",
                       b"/%00%0A%0D", b"http://h.example/p%0D%0A"):
            with self.subTest(target=target):
                r, q = self.forwarded_by(get(target=target))
                want = target.split(b"h.example")[-1].decode()
                self.assertEqual(q.target, want)
                self.assertIsNone(q.header("X-Injected"))
                self.assertNotIn(b"\r\nSet-Cookie", q.raw)

    def test_hop_by_hop_and_framing_fields_are_rebuilt(self):
        r, q = self.forwarded_by(
            b"POST / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive, X-Secret\r\nX-Secret: s\r\n"
            b"Keep-Alive: 1\r\nProxy-Connection: x\r\nTE: trailers\r\nUpgrade: h2c\r\n"
            b"Trailer: X-T\r\nX-Public: ok\r\nContent-Length: 3\r\n\r\nabc")
        for name in ("Connection", "X-Secret", "Keep-Alive", "Proxy-Connection", "TE",
                     "Upgrade", "Trailer"):
            self.assertIsNone(q.header(name), name)
        self.assertEqual(q.header("X-Public"), "ok")
        self.assertEqual(q.header_all("Content-Length"), ["3"])
        self.assertEqual(q.body, b"abc")


XFF_REQUEST = (b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6, 7.7.7.7\r\n"
               b"Forwarded: for=6.6.6.6;proto=https\r\nX-Forwarded-Proto: https\r\n"
               b"X-Forwarded-Host: evil.example\r\nVia: 1.0 other\r\n\r\n")


class UntrustedByDefault(HeadBase):
    def test_client_forwarding_fields_are_replaced(self):
        r, q = self.forwarded_by(XFF_REQUEST)
        self.assertEqual(q.header_all("X-Forwarded-For"), [self.client])
        self.assertEqual(q.header_all("X-Forwarded-Proto"), [self.proto])
        self.assertEqual(q.header_all("X-Forwarded-Host"), ["a"])
        self.assertIsNone(q.header("Forwarded"))
        self.assertEqual(q.header("Via"), "1.0 other, 1.1 sidestep")


class UntrustedOtherNetwork(UntrustedByDefault):
    trusted = ["10.0.0.0/8", "::1"]  # the client (127.0.0.1, or PROXY_CLIENT) is in neither


class TrustedProxy(HeadBase):
    trusted = ["127.0.0.0/8"]

    def test_trusted_peer_fields_are_kept_and_extended(self):
        r, q = self.forwarded_by(XFF_REQUEST)
        self.assertEqual(q.header_all("X-Forwarded-For"), ["6.6.6.6, 7.7.7.7, " + self.client])
        self.assertEqual(q.header_all("X-Forwarded-Proto"), ["https"])
        self.assertEqual(q.header_all("X-Forwarded-Host"), ["evil.example"])
        self.assertEqual(q.header_all("Forwarded"), ["for=6.6.6.6;proto=https"])

    def test_trusted_peer_without_fields_gets_ours(self):
        r, q = self.forwarded_by(get())
        self.assertEqual(q.header_all("X-Forwarded-For"), [self.client])
        self.assertEqual(q.header_all("X-Forwarded-Proto"), [self.proto])


# --- the same over TLS (issue 14) ------------------------------------------------------------


class LimitsOverTls(Limits):
    tls, proto = True, "https"


class MalformedHeadOverTls(MalformedHead):
    tls, proto = True, "https"


class ForwardingOverTls(Forwarding):
    tls, proto = True, "https"


class UntrustedByDefaultOverTls(UntrustedByDefault):
    tls, proto = True, "https"


class TrustedProxyOverTls(TrustedProxy):
    tls, proto = True, "https"


def _through_a_proxy_listener(cls, name=None, **attrs):
    """`cls` once more, every connection opening with a PROXY v2 header that declares
    PROXY_CLIENT: a subclass, so the cases are the same code."""
    attrs.update(proxy=True, client=PROXY_CLIENT,
                 __doc__="%s, through a listener with proxy_protocol." % cls.__name__)
    return type(name or "Proxied" + cls.__name__, (cls,), attrs)


ProxiedLimits = _through_a_proxy_listener(Limits)
ProxiedConfiguredLimits = _through_a_proxy_listener(ConfiguredLimits)
ProxiedMalformedHead = _through_a_proxy_listener(MalformedHead)
ProxiedForwarding = _through_a_proxy_listener(Forwarding)
ProxiedUntrustedByDefault = _through_a_proxy_listener(UntrustedByDefault)
# 127.0.0.0/8 (the TCP peer, the balancer) is trusted here but is not the client: the fields go
ProxiedUntrustedPeerNetwork = _through_a_proxy_listener(
    UntrustedByDefault, "ProxiedUntrustedPeerNetwork", trusted=["127.0.0.0/8"])
ProxiedUntrustedOtherNetwork = _through_a_proxy_listener(UntrustedOtherNetwork)
# the declared client is the one trusted_proxies must list for its fields to be kept
ProxiedTrustedProxy = _through_a_proxy_listener(TrustedProxy, trusted=["203.0.113.0/24"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
