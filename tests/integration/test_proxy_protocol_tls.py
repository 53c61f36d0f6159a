"""PROXY protocol and TLS together (issues 14 and 16): a balancer in TCP mode sends its PROXY
header and then relays the client's TLS, so on a listener with both `tls` and
`proxy_protocol` the header comes before the ClientHello; towards a backend with both `tls`
and `send_proxy_protocol` the header goes before sidestep's own ClientHello.

Listener side: raw v1 and v2 headers followed by a TLS handshake on the same socket (the
declared client in X-Forwarded-For and the access log, the header and the ClientHello in one
segment), curl --haproxy-protocol over https, Debian's HAProxy with send-proxy-v2 relaying a
client's TLS, and the refusals (a bare ClientHello, a bad header, EOF inside the header) closed
without an answer and counted as PROXY refusals, never as TLS failures. Backend side: a TLS
backend that reads the header before its handshake (tests/support/tlsfront.py) sees the
client, and probes open with LOCAL.
"""

import os
import shutil
import socket
import subprocess
import threading
import unittest

import haproxy_front
import proxy_header as pp
import sst
from badbackend import BadBackend, ok, respond
from haproxy_front import HAProxyFront
from sst import Conn, Sidestep, Stub, scaled, wait_until
from test_proxy_protocol import (ListenerBase, accepted, closed_without_answer, config, get,
                                 listener, metrics, rejected)
from tlsfront import TlsFront


def tls_metric(m, name):
    """The sum of a TLS counter over its labels (0 when absent)."""
    return sum(v for k, v in m.items() if k == name or k.startswith(name + "{"))


class ProxyOverTlsListener(ListenerBase):
    """One listener with tls and proxy_protocol, trusting headers from 127.0.0.1; the backend,
    the teardown and the lookups (forwarded, client_of) are test_proxy_protocol's."""

    @classmethod
    def setUpClass(cls):
        cls.certs = sst.tls_certs()
        f = cls.certs["files"]
        cls.backend = BadBackend(respond(ok(), then="keep"))
        cls.port = sst.free_port()
        tls = {"certificates": [{"cert": f["selfsigned"]["cert"], "key": f["selfsigned"]["key"]}]}
        cls.sst = Sidestep(config(
            cls.backend, [dict(listener(), address="127.0.0.1:%d" % cls.port, tls=tls)],
            timeouts={"request_head": "%dms" % scaled(1000),
                      "tls_handshake": "%dms" % scaled(1000), "linger": "300ms"}))
        cls.ctx = sst.tls_context(cafile=f["selfsigned"]["cert"])

    def tls_after(self, header, name, hello_with_header=False):
        """Sends `header`, then does TLS on the same socket and asks for /name. With
        hello_with_header the header waits in the kernel until the ClientHello joins it (one
        segment on loopback, as a relay that coalesces writes sends them)."""
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=scaled(5))
        if hello_with_header:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
            # wrap_socket writes the ClientHello and waits for the answer: uncork once it is
            # queued behind the header, through a second descriptor of the same socket
            other = socket.socket(fileno=os.dup(raw.fileno()))
            timer = threading.Timer(0.05, lambda: (
                other.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 0), other.close()))
            timer.start()
        raw.sendall(header)
        tls = self.ctx.wrap_socket(raw, server_hostname="localhost")
        with Conn(self.port, sock=tls, host_header="localhost") as c:
            c.request("GET", "/" + name)
            r = c.recv_response()
        self.assertEqual(r.status, 200)
        return self.forwarded(name)

    def test_v2_header_then_tls_declares_the_client(self):
        m0 = metrics(self.sst)
        q = self.tls_after(pp.v2("203.0.113.21", "192.0.2.1", 4000, 443), "v2tls")
        self.assertEqual(q.header_all("X-Forwarded-For"), ["203.0.113.21"])
        self.assertEqual(self.client_of("v2tls"), "203.0.113.21")
        m1 = metrics(self.sst)
        self.assertEqual(accepted(m1, 2, "proxy") - accepted(m0, 2, "proxy"), 1)
        self.assertEqual(tls_metric(m1, "sidestep_tls_handshakes_total")
                         - tls_metric(m0, "sidestep_tls_handshakes_total"), 1)

    def test_v1_header_then_tls(self):
        q = self.tls_after(pp.v1("203.0.113.22", "192.0.2.1", 4001, 443), "v1tls")
        self.assertEqual(q.header_all("X-Forwarded-For"), ["203.0.113.22"])

    def test_header_and_client_hello_in_one_segment(self):
        q = self.tls_after(pp.v2("203.0.113.23", "192.0.2.1", 4002, 443), "onesegment",
                           hello_with_header=True)
        self.assertEqual(q.header_all("X-Forwarded-For"), ["203.0.113.23"])

    def test_local_keeps_the_peer(self):
        q = self.tls_after(pp.v2_local(), "localtls")
        self.assertEqual(q.header_all("X-Forwarded-For"), ["127.0.0.1"])

    def test_curl_haproxy_protocol_over_https(self):
        curl = shutil.which("curl")
        if curl is None:
            raise unittest.SkipTest("curl is not installed")
        out = subprocess.run(
            [curl, "-sS", "--max-time", "10", "--haproxy-protocol",
             "--cacert", self.certs["files"]["selfsigned"]["cert"],
             "-o", "/dev/null", "-w", "%{http_code}",
             "https://localhost:%d/curltls" % self.port],
            capture_output=True, text=True, timeout=20)
        self.assertEqual(out.stdout, "200", out.stderr)
        # curl's v1 header names its own address: the loopback peer
        self.assertEqual(self.forwarded("curltls").header_all("X-Forwarded-For"),
                         ["127.0.0.1"])

    def test_refusals_are_proxy_refusals_not_tls_failures(self):
        hello = b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03" + bytes(range(32))
        m0 = metrics(self.sst)
        self.assertTrue(closed_without_answer(self.port, hello))  # no header: a bare TLS hello
        self.assertTrue(closed_without_answer(self.port, b"PROXY TCP9 x\r\n" + hello))
        self.assertTrue(closed_without_answer(self.port, b"PROXY TCP4 203.", True))  # EOF
        self.assertTrue(closed_without_answer(self.port, pp.SIG_V2[:5]))  # silence: timeout
        m1 = metrics(self.sst)
        for reason, n in (("bad_signature", 1), ("v1_bad_protocol", 1), ("eof", 1),
                          ("timeout", 1)):
            self.assertEqual(rejected(m1, reason) - rejected(m0, reason), n, reason)
        self.assertEqual(tls_metric(m1, "sidestep_tls_handshake_failures_total"),
                         tls_metric(m0, "sidestep_tls_handshake_failures_total"))
        # and the listener still serves
        self.tls_after(pp.v2("203.0.113.24", "192.0.2.1", 4003, 443), "after")


HAPROXY_CFG = """\
global
    maxconn 100
defaults
    mode tcp
    timeout connect 5s
    timeout client 10s
    timeout server 10s
frontend fe
    bind 127.0.0.1:{front}
    default_backend be
backend be
    server sidestep 127.0.0.1:{port} send-proxy-v2
"""


class TlsBehindHAProxy(ProxyOverTlsListener):
    """Debian's HAProxy in TCP mode with send-proxy-v2 relays the client's TLS to sidestep,
    which terminates it. The client binds 127.0.0.2: the address HAProxy declares."""

    @classmethod
    def setUpClass(cls):
        haproxy_front.find()  # skip before starting anything when HAProxy is absent
        super().setUpClass()
        try:
            cls.ha = HAProxyFront(HAPROXY_CFG, cls.port)
        except BaseException:
            super().tearDownClass()
            raise
        cls.front = cls.ha.front

    @classmethod
    def tearDownClass(cls):
        cls.ha.stop()
        super().tearDownClass()

    def test_client_tls_through_haproxy(self):
        raw = socket.create_connection(("127.0.0.1", self.front), timeout=scaled(5),
                                       source_address=("127.0.0.2", 0))
        tls = self.ctx.wrap_socket(raw, server_hostname="localhost")
        with Conn(self.front, sock=tls, host_header="localhost") as c:
            for name in ("hatls", "hatls2"):  # keep-alive: the same client twice
                c.request("GET", "/" + name)
                self.assertEqual(c.recv_response().status, 200)
        for name in ("hatls", "hatls2"):
            self.assertEqual(self.forwarded(name).header_all("X-Forwarded-For"), ["127.0.0.2"])
            self.assertEqual(self.client_of(name), "127.0.0.2")

    # the inherited raw-socket tests run against sidestep directly, as in the parent class


class SendProxyToTlsBackend(unittest.TestCase):
    """send_proxy_protocol v2 on a region with tls: the backend reads the header, then does
    its handshake; requests carry the client, probes open with LOCAL."""

    @classmethod
    def setUpClass(cls):
        cls.certs = sst.tls_certs()
        f = cls.certs["files"]
        cls.stub = Stub(name="origin")
        cls.front = TlsFront(cls.stub.port, f["api-ecdsa"]["cert"], f["api-ecdsa"]["key"],
                             proxy_protocol=True)
        cls.sst = Sidestep({
            "workers": 1,
            "listen": ["127.0.0.1:0"],
            "admin": {"address": "127.0.0.1:0"},
            "regions": [{"name": "us-east", "url": "https://us-east.example",
                         "backends": [cls.front.addr], "send_proxy_protocol": "v2",
                         "tls": {"ca": cls.certs["ca"], "server_name": "api.example.test"},
                         "health": {"path": "/healthz", "interval": "%dms" % scaled(300),
                                    "timeout": "%dms" % scaled(250), "initial": "up",
                                    "rise": 1, "fall": 100}}],
        })

    @classmethod
    def tearDownClass(cls):
        cls.sst.stop()
        cls.front.stop()
        cls.stub.stop()

    def test_backend_reads_the_header_before_its_handshake(self):
        with Conn(self.sst.port, source="127.0.0.2") as c:
            c.request("GET", "/pptls")
            r = c.recv_response()
            sport = c.sock.getsockname()[1]
        self.assertEqual(r.status, 200)
        self.assertEqual(self.front.errors, [])

        def mine():
            return [h for h in list(self.front.proxies)
                    if h.command == "PROXY" and h.src == "127.0.0.2" and h.sport == sport]
        h = wait_until(mine, what="the request's PROXY header at the TLS backend")[0]
        self.assertEqual((h.version, h.dst, h.dport), (2, "127.0.0.1", self.sst.port))

    def test_probes_open_with_local(self):
        found = wait_until(lambda: [h for h in list(self.front.proxies) if h.command == "LOCAL"],
                           10.0, what="a probe's LOCAL header at the TLS backend")
        self.assertEqual(found[0].version, 2)
        self.assertEqual(self.front.errors, [])


if __name__ == "__main__":
    unittest.main(verbosity=2)
