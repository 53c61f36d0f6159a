"""PROXY protocol v1/v2 headers for the integration tests (Python 3 standard library only):
builds the header a balancer sends to sidestep, and reads the one sidestep sends to a backend.
Written from HAProxy's doc/proxy-protocol.txt, independently of sidestep's parser.

    v1("203.0.113.7", "127.0.0.1", 5555, 80)      b"PROXY TCP4 203.0.113.7 127.0.0.1 5555 80\\r\\n"
    v2("203.0.113.7", "127.0.0.1", 5555, 80, tlvs=[(AUTHORITY, b"example.com")])
    h, used = parse(data)                           None, 0 while more bytes are needed
"""

import ipaddress
import struct

SIG_V2 = b"\r\n\r\n\x00\r\nQUIT\n"
ALPN, AUTHORITY, CRC32C, NOOP, UNIQUE_ID = 0x01, 0x02, 0x03, 0x04, 0x05
V1_MAX = 107


class Header:
    """A parsed header: version 1 or 2, command "PROXY", "LOCAL" or "UNKNOWN", and for PROXY
    the addresses (text, an IPv6 one as Python writes it) and ports."""

    def __init__(self, version, command, src=None, dst=None, sport=None, dport=None, raw=b""):
        self.version = version
        self.command = command
        self.src, self.dst, self.sport, self.dport = src, dst, sport, dport
        self.raw = raw

    def __repr__(self):
        if self.command != "PROXY":
            return "<PROXY v%d %s>" % (self.version, self.command)
        return "<PROXY v%d %s:%s -> %s:%s>" % (self.version, self.src, self.sport, self.dst,
                                                self.dport)


def _family(addr):
    return ipaddress.ip_address(addr).version


def v1(src, dst, sport, dport):
    """A v1 line; TCP6 when the source address is IPv6."""
    proto = "TCP6" if _family(src) == 6 else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (proto, src, dst, sport, dport)).encode()


def v1_unknown():
    return b"PROXY UNKNOWN\r\n"


def tlv(kind, value):
    return struct.pack("!BH", kind, len(value)) + value


def v2(src, dst, sport, dport, tlvs=(), command=1):
    """A v2 PROXY (command 1) or LOCAL (command 0, addresses still sent) header over TCP."""
    a, b = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    fam = 0x11 if a.version == 4 else 0x21
    body = a.packed + b.packed + struct.pack("!HH", sport, dport)
    body += b"".join(tlv(k, v) for k, v in tlvs)
    return SIG_V2 + bytes([0x20 | command, fam]) + struct.pack("!H", len(body)) + body


def v2_local():
    """What a balancer's own health check sends: LOCAL, family UNSPEC, no address block."""
    return SIG_V2 + b"\x20\x00\x00\x00"


def parse(data):
    """Reads one header from the start of `data`. Returns (Header, bytes used), (None, 0) when
    it is not whole yet; raises ValueError when the bytes are not a valid header."""
    if data[:1] == b"P":
        n = min(len(data), 6)
        if data[:n] != b"PROXY "[:n]:
            raise ValueError("not a PROXY header: %r" % data[:16])
        end = data.find(b"\r\n")
        if end < 0:
            if len(data) >= V1_MAX:
                raise ValueError("v1 line without CRLF")
            return None, 0
        line = data[:end].decode("ascii")
        parts = line.split(" ")
        if parts[1] == "UNKNOWN":
            return Header(1, "UNKNOWN", raw=data[:end + 2]), end + 2
        if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
            raise ValueError("bad v1 line %r" % line)
        want = 4 if parts[1] == "TCP4" else 6
        if _family(parts[2]) != want or _family(parts[3]) != want:
            raise ValueError("v1 addresses not of %s: %r" % (parts[1], line))
        return (Header(1, "PROXY", parts[2], parts[3], int(parts[4]), int(parts[5]),
                       data[:end + 2]), end + 2)
    if len(data) < 16:
        if SIG_V2[:len(data)] != data[:12]:
            raise ValueError("not a PROXY header: %r" % data[:16])
        return None, 0
    if data[:12] != SIG_V2 or data[12] >> 4 != 2:
        raise ValueError("not a v2 header: %r" % data[:16])
    total = 16 + struct.unpack("!H", data[14:16])[0]
    if len(data) < total:
        return None, 0
    cmd, fam = data[12] & 0x0F, data[13]
    raw = bytes(data[:total])
    if cmd == 0:
        return Header(2, "LOCAL", raw=raw), total
    if fam == 0x11:
        src, dst = (str(ipaddress.IPv4Address(bytes(data[i:i + 4]))) for i in (16, 20))
        sport, dport = struct.unpack("!HH", data[24:28])
    elif fam == 0x21:
        src, dst = (str(ipaddress.IPv6Address(bytes(data[i:i + 16]))) for i in (16, 32))
        sport, dport = struct.unpack("!HH", data[48:52])
    else:
        return Header(2, "UNKNOWN", raw=raw), total
    return Header(2, "PROXY", src, dst, sport, dport, raw), total
