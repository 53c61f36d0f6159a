"""PROXY protocol over real sockets (issue 16).

Listeners with proxy_protocol: curl --haproxy-protocol (v1) and Debian's HAProxy in TCP mode
with send-proxy-v2 in front of sidestep; raw v1 and v2 headers that declare another client
(TEST-NET addresses, never the peer), which then shows in the access log and X-Forwarded-For;
v2 LOCAL and v1 UNKNOWN keeping the peer; PP2_TYPE_AUTHORITY in the access log, escaped; a
header byte by byte, a header sharing its segment with the request, pipelined requests after
it; and what is closed without an answer and counted by reason: a peer outside
proxy_protocol_from, no header, hostile headers, silence, EOF. Then send_proxy_protocol v2 and
v1 towards a scripted backend that reads the header: the client and the address it reached,
declared or not, probes with LOCAL / UNKNOWN, and pooled reuse only for the same client
connection.
"""

import shutil
import socket
import struct
import subprocess
import time
import unittest

import haproxy_front
import proxy_header as pp
import sst
from badbackend import BadBackend, ok, respond
from haproxy_front import HAProxyFront
from sst import Conn, Sidestep, scaled, wait_until


def get(name, extra=b""):
    return b"GET /" + name.encode() + b" HTTP/1.1\r\nHost: a\r\n" + extra + b"\r\n"


def metrics(proxy):
    """The /metrics samples as {"name{labels}": value}."""
    out = {}
    for line in sst.http(proxy.admin_port, "GET", "/metrics").body.decode().splitlines():
        if line and not line.startswith("#"):
            key, value = line.rsplit(" ", 1)
            out[key] = float(value)
    return out


def accepted(m, version, command):
    return m['sidestep_proxy_protocol_accepted_total{version="%d",command="%s"}'
             % (version, command)]


def rejected(m, reason):
    return m['sidestep_proxy_protocol_rejected_total{reason="%s"}' % reason]


def listener(allowed=("127.0.0.1",)):
    return {"address": "127.0.0.1:0", "proxy_protocol": True,
            "proxy_protocol_from": list(allowed)}


def config(backend, listen, **extra):
    cfg = {
        "workers": 1,
        "listen": listen,
        "admin": {"address": "127.0.0.1:0"},
        "regions": [{"name": "us-east", "url": "http://us-east.example",
                     "backends": [backend.addr],
                     "health": {"enabled": False, "initial": "up"}}],
        "timeouts": {"request_head": "%dms" % scaled(1000), "linger": "300ms"},
        "log": {"access": "stderr"},
    }
    cfg.update(extra)
    return cfg


def closed_without_answer(port, data, half_close=False):
    """Sends `data` on a new connection; True when sidestep closes it without a byte."""
    with Conn(port, timeout=3.0) as c:
        if data:
            c.send(data)
        if half_close:
            c.shutdown_write()
        return c.closed(timeout=3.0) and c.close_kind in ("fin", "reset")


class ListenerBase(unittest.TestCase):
    allowed = ("127.0.0.1",)

    @classmethod
    def setUpClass(cls):
        cls.backend = BadBackend(respond(ok(), then="keep"))
        cls.sst = Sidestep(config(cls.backend, [listener(cls.allowed)]))

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.backend.stop()
        if cls.backend.errors:
            raise AssertionError("backend script errors: %r" % cls.backend.errors)

    def forwarded(self, name):
        """The request /name as the backend read it."""
        def find():
            return [q for q in self.backend.requests if q.target == "/" + name]
        return wait_until(find, what="/%s at the backend" % name)[0]

    def access_line(self, name):
        """The access line of GET /name."""
        text = self.sst.wait_stderr('"GET /%s HTTP/1.1"' % name)
        return [ln for ln in text.splitlines() if '"GET /%s HTTP/1.1"' % name in ln][0]

    def client_of(self, name):
        """The client field of /name's access line (text format: TIME CLIENT "...")."""
        return self.access_line(name).split(" ")[1]


class ProxyListener(ListenerBase):

    def exchange(self, data, name, preamble=b""):
        """Sends data (the header and the request /name) in one write; returns the response
        and the client X-Forwarded-For named."""
        with Conn(self.sst.port, preamble=preamble) as c:
            c.send(data)
            r = c.recv_response()
        self.assertEqual(r.status, 200)
        return self.forwarded(name).header_all("X-Forwarded-For")

    def test_curl_haproxy_protocol(self):
        curl = shutil.which("curl")
        if curl is None:
            self.skipTest("curl is not installed")
        before = accepted(metrics(self.sst), 1, "proxy")
        out = subprocess.run([curl, "-s", "-o", "/dev/null", "-w", "%{http_code}",
                              "--haproxy-protocol", "http://127.0.0.1:%d/curl" % self.sst.port],
                             capture_output=True, timeout=scaled(10))
        self.assertEqual(out.stdout, b"200", out.stderr)
        # curl's v1 header carries its real address: the one the access log and XFF show
        self.assertEqual(self.forwarded("curl").header_all("X-Forwarded-For"), ["127.0.0.1"])
        self.assertEqual(self.client_of("curl"), "127.0.0.1")
        self.assertEqual(accepted(metrics(self.sst), 1, "proxy"), before + 1)

    def test_v1_header_declares_the_client(self):
        xff = self.exchange(pp.v1("203.0.113.7", "198.51.100.1", 5555, 80) + get("v1"), "v1")
        self.assertEqual(xff, ["203.0.113.7"])
        self.assertEqual(self.client_of("v1"), "203.0.113.7")
        self.assertNotIn("proxy_authority", self.access_line("v1"))

    def test_v2_header_declares_the_client_and_its_authority(self):
        tlvs = [(pp.NOOP, b"\x00" * 3), (pp.AUTHORITY, b"shop.example"),
                (0xE0, b"vendor-specific"), (0xEE, b"")]  # the rest is skipped safely
        xff = self.exchange(pp.v2("198.51.100.9", "192.0.2.1", 4444, 443, tlvs) + get("v2"),
                            "v2")
        self.assertEqual(xff, ["198.51.100.9"])
        line = self.access_line("v2")
        self.assertEqual(line.split(" ")[1], "198.51.100.9")
        self.assertTrue(line.endswith(' proxy_authority="shop.example"'), line)

    def test_authority_is_escaped_in_the_log(self):
        tlvs = [(pp.AUTHORITY, b'a"b\\c\xff')]
        self.exchange(pp.v2("198.51.100.10", "192.0.2.1", 4444, 443, tlvs) + get("esc"), "esc")
        self.assertIn(r' proxy_authority="a\"b\\c\u00ff"', self.access_line("esc"))

    def test_ipv6_and_v4_mapped_clients(self):
        xff = self.exchange(pp.v2("2001:db8::7", "2001:db8::1", 4444, 443) + get("v6"), "v6")
        self.assertEqual(xff, ["2001:db8::7"])
        self.assertEqual(self.client_of("v6"), "2001:db8::7")
        # a dual-stack balancer's view of an IPv4 client is logged as the IPv4 address
        xff = self.exchange(pp.v2("::ffff:203.0.113.8", "::ffff:192.0.2.1", 4444, 443) +
                            get("mapped"), "mapped")
        self.assertEqual(xff, ["203.0.113.8"])
        self.assertEqual(self.client_of("mapped"), "203.0.113.8")
        xff = self.exchange(pp.v1("::ffff:203.0.113.9", "::1", 4444, 443) + get("mapped1"),
                            "mapped1")
        self.assertEqual(xff, ["203.0.113.9"])

    def test_local_and_unknown_keep_the_peer(self):
        m0 = metrics(self.sst)
        self.assertEqual(self.exchange(pp.v2_local() + get("local"), "local"), ["127.0.0.1"])
        # LOCAL with an address block: skipped unread, the peer stays
        local_with_addrs = pp.v2("203.0.113.7", "192.0.2.1", 1, 2, command=0)
        self.assertEqual(self.exchange(local_with_addrs + get("local2"), "local2"),
                         ["127.0.0.1"])
        self.assertEqual(self.exchange(pp.v1_unknown() + get("unknown"), "unknown"),
                         ["127.0.0.1"])
        m1 = metrics(self.sst)
        self.assertEqual(accepted(m1, 2, "local"), accepted(m0, 2, "local") + 2)
        self.assertEqual(accepted(m1, 1, "unknown"), accepted(m0, 1, "unknown") + 1)

    def test_header_byte_by_byte(self):
        for n, header in enumerate([pp.v1("203.0.113.11", "192.0.2.1", 1111, 80),
                                    pp.v2("203.0.113.12", "192.0.2.1", 1111, 80,
                                          [(pp.AUTHORITY, b"split.example")])]):
            name = "split%d" % n
            with Conn(self.sst.port) as c:
                c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                for i in range(len(header)):
                    c.send(header[i:i + 1])
                    time.sleep(0.002)
                c.send(get(name))
                self.assertEqual(c.recv_response().status, 200)
            self.assertEqual(self.forwarded(name).header_all("X-Forwarded-For"),
                             ["203.0.113.1%d" % (n + 1)])
        self.assertIn('proxy_authority="split.example"', self.access_line("split1"))

    def test_header_and_request_in_one_segment(self):
        # whole, and the header's second half with the request after it
        header = pp.v2("203.0.113.13", "192.0.2.1", 1111, 80)
        self.assertEqual(self.exchange(header + get("seg"), "seg"), ["203.0.113.13"])
        with Conn(self.sst.port) as c:
            c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            c.send(header[:10])
            time.sleep(0.05)
            c.send(header[10:] + get("seg2"))
            self.assertEqual(c.recv_response().status, 200)
        self.assertEqual(self.forwarded("seg2").header_all("X-Forwarded-For"), ["203.0.113.13"])

    def test_header_then_pipelined_requests(self):
        data = pp.v1("203.0.113.14", "192.0.2.1", 1111, 80) + b"".join(
            get("pipe%d" % i) for i in range(3))
        with Conn(self.sst.port) as c:
            c.send(data)
            for i in range(3):
                self.assertEqual(c.recv_response().status, 200)
        for i in range(3):
            self.assertEqual(self.forwarded("pipe%d" % i).header_all("X-Forwarded-For"),
                             ["203.0.113.14"])
            self.assertEqual(self.client_of("pipe%d" % i), "203.0.113.14")

    def test_a_second_header_is_just_bad_http(self):
        """The balancer's header comes first; one the client sends after it is request bytes,
        which the HTTP parser refuses: no client can choose its address."""
        first = pp.v1("203.0.113.15", "192.0.2.1", 1111, 80)
        with Conn(self.sst.port) as c:
            c.send(first + pp.v1("10.9.9.9", "192.0.2.1", 1, 80) + get("spoof"))
            self.assertEqual(c.recv_response().status, 400)
        time.sleep(0.1)
        self.assertEqual([q for q in self.backend.requests if q.target == "/spoof"], [])

    def test_no_header_is_closed_without_an_answer(self):
        before = rejected(metrics(self.sst), "bad_signature")
        self.assertTrue(closed_without_answer(self.sst.port, get("plain")))
        hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32))
        self.assertTrue(closed_without_answer(self.sst.port, hello))
        self.assertEqual(rejected(metrics(self.sst), "bad_signature"), before + 2)

    def test_hostile_headers_are_closed_and_counted(self):
        sig = pp.SIG_V2
        tcp4 = socket.inet_aton("203.0.113.7") + socket.inet_aton("192.0.2.1") + b"\x00\x01\x00\x02"

        def v2raw(ver_cmd, fam, body):
            return sig + bytes([ver_cmd, fam]) + struct.pack("!H", len(body)) + body

        cases = [
            (b"PROXY TCP5 203.0.113.7 192.0.2.1 1 2\r\n", "v1_bad_protocol"),
            (b"PROXY TCP4 203.0.113.007 192.0.2.1 1 2\r\n", "v1_bad_address"),
            (b"PROXY TCP4 2001:db8::1 192.0.2.1 1 2\r\n", "v1_bad_address"),
            (b"PROXY TCP4 203.0.113.7 192.0.2.1 01 2\r\n", "v1_bad_port"),
            (b"PROXY TCP4 203.0.113.7 192.0.2.1 1 65536\r\n", "v1_bad_port"),
            (b"PROXY TCP4 203.0.113.7 192.0.2.1 1 2\n", "v1_bad_crlf"),
            (b"PROXY UNKNOWN " + b"x" * 100, "v1_too_long"),
            (v2raw(0x11, 0x11, tcp4), "v2_bad_version"),
            (v2raw(0x2F, 0x11, tcp4), "v2_bad_command"),
            (v2raw(0x21, 0x12, tcp4), "v2_bad_transport"),
            (v2raw(0x21, 0x41, tcp4), "v2_bad_family"),
            (sig + b"\x21\x11\x13\x88" + tcp4, "v2_too_long"),  # 5000 bytes announced
            (v2raw(0x21, 0x11, tcp4[:4]), "v2_length"),
            (v2raw(0x21, 0x11, tcp4 + b"\x02\x00\x09abc"), "v2_tlv"),  # overruns the header
            (v2raw(0x21, 0x11, tcp4 + pp.tlv(pp.AUTHORITY, b"a\x01b")), "v2_tlv"),
            (v2raw(0x21, 0x11, tcp4 + pp.tlv(pp.CRC32C, b"\x00\x00\x00\x00")), "v2_crc32c"),
        ]
        m0 = metrics(self.sst)
        for data, reason in cases:
            with self.subTest(reason=reason, data=data[:40]):
                self.assertTrue(closed_without_answer(self.sst.port, data + get("hostile")))
        m1 = metrics(self.sst)
        for reason in {r for _, r in cases}:
            self.assertEqual(rejected(m1, reason) - rejected(m0, reason),
                             sum(1 for _, r in cases if r == reason), reason)
        self.assertEqual([q for q in self.backend.requests if q.target == "/hostile"], [])

    def test_silence_and_a_partial_header_time_out(self):
        before = rejected(metrics(self.sst), "timeout")
        start = time.monotonic()
        self.assertTrue(closed_without_answer(self.sst.port, b""))
        self.assertGreaterEqual(time.monotonic() - start, 0.9)  # timeouts.request_head: 1s
        self.assertTrue(closed_without_answer(self.sst.port, b"PROXY TCP4 203.0.113."))
        self.assertTrue(closed_without_answer(self.sst.port, pp.SIG_V2[:7]))
        self.assertEqual(rejected(metrics(self.sst), "timeout"), before + 3)

    def test_eof_inside_the_header(self):
        before = rejected(metrics(self.sst), "eof")
        self.assertTrue(closed_without_answer(self.sst.port, b"PROXY TCP4 203.", True))
        self.assertTrue(closed_without_answer(self.sst.port, b"", True))
        self.assertEqual(rejected(metrics(self.sst), "eof"), before + 2)

    def test_status_counts_headers(self):
        before = sst.http(self.sst.admin_port, "GET", "/status").json()["counters"]
        self.exchange(pp.v1("203.0.113.16", "192.0.2.1", 1, 80) + get("status"), "status")
        self.assertTrue(closed_without_answer(self.sst.port, get("nope")))
        after = sst.http(self.sst.admin_port, "GET", "/status").json()["counters"]
        self.assertEqual(after["proxy_protocol_accepted"], before["proxy_protocol_accepted"] + 1)
        self.assertEqual(after["proxy_protocol_rejected"], before["proxy_protocol_rejected"] + 1)


class PeerNotAllowed(ListenerBase):
    allowed = ("10.0.0.0/8", "fd00::/8")

    def test_valid_header_from_elsewhere_is_closed_unread(self):
        before = rejected(metrics(self.sst), "not_allowed")
        data = pp.v2("203.0.113.7", "192.0.2.1", 1, 80) + get("denied")
        self.assertTrue(closed_without_answer(self.sst.port, data))
        self.assertTrue(closed_without_answer(self.sst.port, b""))  # before a byte is read
        self.assertEqual(rejected(metrics(self.sst), "not_allowed"), before + 2)
        self.assertEqual(self.backend.requests, [])


HAPROXY_CFG = """global
    maxconn 100
defaults
    mode tcp
    timeout connect 2s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{front}
    default_backend be
backend be
    option httpchk GET /hacheck
    server sidestep 127.0.0.1:{port} send-proxy-v2 check inter 200ms check-send-proxy
"""


class BehindHAProxy(ListenerBase):
    """Debian's HAProxy in TCP mode with send-proxy-v2 in front of sidestep. The client binds
    127.0.0.2, so the address HAProxy's header carries is not the TCP peer sidestep sees
    (HAProxy, 127.0.0.1)."""

    @classmethod
    def setUpClass(cls):
        haproxy_front.find()  # skip before starting anything when HAProxy is absent
        super().setUpClass()
        try:
            cls.ha = HAProxyFront(HAPROXY_CFG, cls.sst.port)
        except BaseException:
            super().tearDownClass()
            raise
        cls.front = cls.ha.front

    @classmethod
    def tearDownClass(cls):
        cls.ha.stop()
        super().tearDownClass()

    def test_client_address_through_haproxy(self):
        with Conn(self.front, source="127.0.0.2") as c:
            c.request("GET", "/ha")
            self.assertEqual(c.recv_response().status, 200)
            c.request("GET", "/ha2")  # the same connection: the same client
            self.assertEqual(c.recv_response().status, 200)
        for name in ("ha", "ha2"):
            self.assertEqual(self.forwarded(name).header_all("X-Forwarded-For"), ["127.0.0.2"])
            self.assertEqual(self.client_of(name), "127.0.0.2")
        self.assertGreaterEqual(accepted(metrics(self.sst), 2, "proxy"), 1)

    def test_haproxy_checks_are_local(self):
        """HAProxy's own health checks (check-send-proxy, here an HTTP check) open with a v2
        LOCAL header, as they relay no client: sidestep keeps the peer's address for them."""
        check = wait_until(lambda: [q for q in self.backend.requests if q.target == "/hacheck"],
                           10.0, what="HAProxy's check at the backend")[0]
        self.assertEqual(check.header_all("X-Forwarded-For"), ["127.0.0.1"])
        self.assertGreaterEqual(accepted(metrics(self.sst), 2, "local"), 1)
        m = metrics(self.sst)
        refused = {k: v for k, v in m.items()
                   if k.startswith("sidestep_proxy_protocol_rejected_total") and v}
        self.assertEqual(refused, {})


class SendProxyV2(unittest.TestCase):
    """send_proxy_protocol: v2 towards a backend that reads the header on every connection;
    one plain listener and one with proxy_protocol in front."""
    mode = "v2"
    version = 2
    probe_command = "LOCAL"

    @classmethod
    def setUpClass(cls):
        cls.backend = BadBackend(respond(ok(), then="keep"), proxy_protocol=True)
        # two addresses: two listeners on "127.0.0.1:0" would share one key in the worker
        proxied = dict(listener(), address="127.0.0.5:0")
        cfg = config(cls.backend, [{"address": "127.0.0.1:0"}, proxied])
        cfg["regions"][0].update(
            send_proxy_protocol=cls.mode,
            health={"interval": "%dms" % scaled(200), "timeout": "%dms" % scaled(200),
                    "initial": "up", "rise": 1, "fall": 100})
        cls.sst = Sidestep(cfg)

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.backend.stop()
        if cls.backend.errors:
            raise AssertionError("backend errors: %r" % cls.backend.errors)

    def conn_of(self, name):
        """The backend connection that carried /name."""
        def find():
            return [c for c in list(self.backend.conns)
                    if any(q.target == "/" + name for q in c.requests)]
        return wait_until(find, what="/%s at the backend" % name)[0]

    def ask(self, c, name):
        c.request("GET", "/" + name)
        self.assertEqual(c.recv_response().status, 200)
        return self.conn_of(name)

    def test_backend_reads_the_client_and_the_listener(self):
        with Conn(self.sst.ports[0], source="127.0.0.2") as c:
            b = self.ask(c, "plain")
            sport = c.sock.getsockname()[1]
        h = b.proxy
        self.assertEqual((h.version, h.command), (self.version, "PROXY"))
        self.assertEqual((h.src, h.sport, h.dst, h.dport),
                         ("127.0.0.2", sport, "127.0.0.1", self.sst.ports[0]))

    def test_declared_addresses_go_on_to_the_backend(self):
        declared = pp.v2("203.0.113.7", "198.51.100.1", 5555, 443)
        with Conn(self.sst.ports[1], host="127.0.0.5", preamble=declared) as c:
            b = self.ask(c, "declared")
        h = b.proxy
        self.assertEqual((h.command, h.src, h.sport, h.dst, h.dport),
                         ("PROXY", "203.0.113.7", 5555, "198.51.100.1", 443))
        self.assertEqual(b.requests[0].header("X-Forwarded-For"), "203.0.113.7")
        # a LOCAL header keeps the peer: the backend gets the balancer's own connection
        with Conn(self.sst.ports[1], host="127.0.0.5", preamble=pp.v2_local()) as c:
            me = c.sock.getsockname()
            b = self.ask(c, "declared-local")
        self.assertEqual((b.proxy.src, b.proxy.sport, b.proxy.dst, b.proxy.dport),
                         (me[0], me[1], "127.0.0.5", self.sst.ports[1]))

    def test_probes_send_local(self):
        def probes():
            return [c for c in list(self.backend.conns)
                    if any(q.target == "/healthz" for q in c.requests)]
        found = wait_until(probes, 10.0, what="a probe at the backend")
        for c in found:
            self.assertEqual((c.proxy.version, c.proxy.command),
                             (self.version, self.probe_command))

    def test_pooled_reuse_only_for_the_same_client_connection(self):
        with Conn(self.sst.ports[0], source="127.0.0.3") as a, \
                Conn(self.sst.ports[0], source="127.0.0.3") as b:
            a1 = self.ask(a, "a1")
            self.assertIs(self.ask(a, "a2"), a1)  # keep-alive: a's own connection again
            b1 = self.ask(b, "b1")  # same address, another connection (port): not a's
            self.assertIsNot(b1, a1)
            self.assertEqual(b1.proxy.sport, b.sock.getsockname()[1])
            self.assertIs(self.ask(a, "a3"), a1)
            self.assertIs(self.ask(b, "b2"), b1)
            self.assertEqual(a1.proxy.sport, a.sock.getsockname()[1])


class SendProxyV1(SendProxyV2):
    mode = "v1"
    version = 1
    probe_command = "UNKNOWN"


if __name__ == "__main__":
    unittest.main(verbosity=2)
