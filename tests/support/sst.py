"""Harness shared by every sidestep integration test (Python 3 standard library only).

It starts the scripted origin (`Stub`, the sidestep-stub program) and the proxy (`Sidestep`),
and talks raw HTTP/1.1 over sockets so tests can assert exact bytes (`raw`, `Conn`, `http`).
Every wait is bounded; under ASan (SST_SANITIZE=1) the bounds are tripled.

Environment (set by ctest): SST_BIN (sidestep), SST_STUB (sidestep-stub), SST_SOURCE_DIR,
SST_SANITIZE ("1" under ASan+UBSan).

The stub answers every request with an echo listing, one item per line:
    origin NAME PORT / method M / target T / http 1.1 / header Name: value (received order) /
    trailer Name: value / body-bytes N / body-sha256 HEX
and is scripted per request by headers (X-Stub-Status, -Size, -Chunked, -Delay, -No-Length,
-Header, -Fail, -Echo-Body) or by its command line (--status, --size, --fail, ...). /healthz
answers "ok"; /__stub/stats answers {"requests": N, ...}; /__stub/health/N sets the /healthz
status. See src/origin.c and include/sidestep/origin.h.
"""

import atexit
import errno
import hashlib
import json
import os
import re
import select
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import threading
import time

SST_BIN = os.environ.get("SST_BIN", "")
SST_STUB = os.environ.get("SST_STUB", "")
SST_SOURCE_DIR = os.environ.get("SST_SOURCE_DIR", "")
SANITIZE = os.environ.get("SST_SANITIZE", "0").lower() in ("1", "on", "true", "yes")

#: sidestep's exit status when a stop left a libuv handle open (src/main.c).
EXIT_UNCLEAN = 3

#: Multiplier applied to every default timeout (sanitizer builds run several times slower).
SLOW = 3.0 if SANITIZE else 1.0
LOOPBACK = "127.0.0.1"

# The stub's deterministic body pattern (X-Stub-Size / --size).
PATTERN = b"0123456789abcdef"


def scaled(seconds):
    """A timeout stretched for sanitizer builds."""
    return seconds * SLOW


class ProtocolError(Exception):
    """The peer sent bytes that are not a valid HTTP/1.1 response (or closed mid-message)."""


# --- small helpers -----------------------------------------------------------------------------


def sha256(data):
    """Lowercase hex SHA-256 of bytes."""
    return hashlib.sha256(data).hexdigest()


def pattern(n, offset=0):
    """The first n bytes the stub sends for X-Stub-Size (starting at `offset`)."""
    start = offset % len(PATTERN)
    reps = (start + n) // len(PATTERN) + 1
    return (PATTERN * reps)[start:start + n]


def wait_until(predicate, timeout=5.0, interval=0.01, what="condition"):
    """Calls predicate until it returns a truthy value, which is returned. Raises TimeoutError
    after `timeout` (scaled) seconds."""
    deadline = time.monotonic() + scaled(timeout)
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1fs waiting for %s" % (scaled(timeout), what))
        time.sleep(interval)


def free_port(host=LOOPBACK):
    """A port nothing listens on right now (bound, then released): for "refused" cases."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def port_open(port, host=LOOPBACK, timeout=0.5):
    """True when a TCP connect to host:port succeeds."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


_live = []  # processes started here, killed at exit if a test forgot them


def _forget(proc):
    if proc in _live:
        _live.remove(proc)


@atexit.register
def _kill_leftovers():
    for proc in list(_live):
        if proc.poll() is None:
            proc.kill()
            try:
                proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


class _Drain(threading.Thread):
    """Collects everything a pipe delivers, so a chatty child never blocks on a full pipe."""

    def __init__(self, pipe):
        super().__init__(daemon=True)
        self._pipe = pipe
        self._chunks = []
        self._lock = threading.Lock()
        self.start()

    def run(self):
        while True:
            try:
                chunk = os.read(self._pipe.fileno(), 65536)
            except OSError:
                break
            if not chunk:
                break
            with self._lock:
                self._chunks.append(chunk)

    def data(self):
        with self._lock:
            return b"".join(self._chunks)

    def text(self):
        return self.data().decode("utf-8", "replace")


def _read_line(pipe, timeout):
    """One line from a pipe within `timeout` seconds; b"" on EOF or timeout."""
    fd = pipe.fileno()
    deadline = time.monotonic() + timeout
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            return b""
        ready, _, _ = select.select([fd], [], [], left)
        if not ready:
            return b""
        ch = os.read(fd, 1)
        if not ch:
            return b""
        line += ch
    return line


def _close_pipes(proc, drains):
    for d in drains:
        if d is not None:
            d.join(timeout=2)
    for pipe in (proc.stdin, proc.stdout, proc.stderr):
        if pipe is not None:
            pipe.close()


def _stop_process(proc, drains, timeout, sig=signal.SIGTERM):
    """Signals proc and waits; kills it (and raises) when it does not exit in time. Then joins
    the pipe readers and closes the pipes."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout=scaled(timeout))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)
        raise TimeoutError("pid %d ignored signal %d for %.1fs" % (proc.pid, sig, scaled(timeout)))
    finally:
        _forget(proc)
        _close_pipes(proc, drains)


# --- the stub origin ---------------------------------------------------------------------------


class Stub:
    """A sidestep-stub process. `args` are extra command-line options (e.g. ["--status", "503"]).

    with Stub(name="us-east") as s:
        http(s.port, "GET", "/")
    """

    def __init__(self, name="stub", args=(), port=0, host=LOOPBACK, binary=None, start=True):
        self.name = name
        self.args = list(args)
        self.host = host
        self.port = port
        self.binary = binary or SST_STUB
        self.proc = None
        self._stderr = None
        if not self.binary:
            raise RuntimeError("SST_STUB is not set (run through ctest)")
        if start:
            self.start()

    @property
    def addr(self):
        return "%s:%d" % (self.host, self.port)

    def url(self, path="/"):
        return "http://%s%s" % (self.addr, path)

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def start(self, timeout=10.0):
        """Starts the process on self.port (0: ephemeral) and reads the port it bound."""
        if self.running():
            raise RuntimeError("stub %s already running" % self.name)
        argv = [self.binary, "--listen", "%s:%d" % (self.host, self.port), "--name", self.name]
        argv += self.args
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        _live.append(self.proc)
        self._stderr = _Drain(self.proc.stderr)
        line = _read_line(self.proc.stdout, scaled(timeout))
        if not line.strip().isdigit():
            code = self.proc.poll()
            if code is None:
                self.proc.kill()
                self.proc.wait(timeout=5)
            _forget(self.proc)
            _close_pipes(self.proc, [self._stderr])
            raise RuntimeError("stub %s did not report its port (exit %s): %s"
                               % (self.name, code, self._stderr.text().strip()))
        self.port = int(line)
        return self

    def stop(self, timeout=10.0):
        """SIGTERM, wait; returns the exit code (0 means every handle closed cleanly)."""
        if self.proc is None:
            return None
        return _stop_process(self.proc, [self._stderr], timeout)

    def kill(self):
        """SIGKILL, wait."""
        if self.proc is None:
            return None
        return _stop_process(self.proc, [self._stderr], 10.0, signal.SIGKILL)

    def restart(self, timeout=10.0):
        """Stops the process if it runs, then starts it again on the same port."""
        if self.running():
            self.stop()
        deadline = time.monotonic() + scaled(timeout)
        while True:
            try:
                return self.start()
            except RuntimeError as e:
                # SO_REUSEADDR makes this immediate; a retry only covers a slow kernel.
                if "address already in use" not in str(e) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def stderr_text(self):
        return self._stderr.text() if self._stderr else ""

    def stats(self):
        """The /__stub/stats counters: requests, health, connections, active."""
        return http(self.port, "GET", "/__stub/stats", host=self.host).json()

    def set_health(self, status):
        """Makes /healthz answer `status` from now on."""
        resp = http(self.port, "GET", "/__stub/health/%d" % status, host=self.host)
        if resp.status != 200:
            raise RuntimeError("set_health(%d): %d %r" % (status, resp.status, resp.body))

    def wait_requests(self, n, timeout=5.0):
        """Waits until the stub has read at least n request heads (health checks excluded)."""
        return wait_until(lambda: self.stats()["requests"] >= n, timeout,
                          what="%d requests at stub %s" % (n, self.name))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.running():
            try:
                self.stop()
            except TimeoutError:
                pass
        return False


# --- the proxy ---------------------------------------------------------------------------------

_YAML_PLAIN_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-/]*\Z")
_YAML_WORDS = {"true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"}


def _yaml_key(key):
    key = str(key)
    if _YAML_PLAIN_KEY.match(key) and key.lower() not in _YAML_WORDS:
        return key
    return json.dumps(key)


def _yaml_scalar(value):
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise ValueError("YAML: non-finite float %r" % value)
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # a JSON string is a valid YAML double-quoted scalar
    if isinstance(value, dict):
        return "{}"
    if isinstance(value, (list, tuple)):
        return "[]"
    raise TypeError("YAML: cannot emit %s" % type(value).__name__)


def _yaml_lines(obj, indent):
    pad = " " * indent
    if isinstance(obj, dict):
        if not obj:
            return [pad + "{}"]
        lines = []
        for key, value in obj.items():
            if isinstance(value, (dict, list, tuple)) and value:
                lines.append("%s%s:" % (pad, _yaml_key(key)))
                lines.extend(_yaml_lines(value, indent + 2))
            else:
                lines.append("%s%s: %s" % (pad, _yaml_key(key), _yaml_scalar(value)))
        return lines
    if isinstance(obj, (list, tuple)):
        if not obj:
            return [pad + "[]"]
        lines = []
        for item in obj:
            if isinstance(item, (dict, list, tuple)) and item:
                sub = _yaml_lines(item, indent + 2)
                lines.append(pad + "- " + sub[0][indent + 2:])
                lines.extend(sub[1:])
            else:
                lines.append("%s- %s" % (pad, _yaml_scalar(item)))
        return lines
    return [pad + _yaml_scalar(obj)]


def to_yaml(obj):
    """Block-style YAML for dicts, lists, str, int, float, bool and None. Strings are always
    double-quoted, so "on", "1s" or "08" stay strings."""
    return "\n".join(_yaml_lines(obj, 0)) + "\n"


def _port_of(addr):
    return int(addr.rsplit(":", 1)[1])


class Sidestep:
    """A sidestep process on a config written to a temporary directory.

    `config` is YAML text or a dict (emitted by to_yaml). Starts `SST_BIN -c FILE --ready-file
    PATH [extra_args]` and waits for the ready file, JSON written atomically once every listener
    is bound: {"pid": N, "listen": ["127.0.0.1:PORT", ...], "admin": "127.0.0.1:PORT" or null}.
    `binary` may be a path or an argv prefix list (tests of this harness use a fake).
    """

    def __init__(self, config, extra_args=(), binary=None, ready_timeout=10.0, start=True):
        self.binary = binary or SST_BIN
        if not self.binary:
            raise RuntimeError("SST_BIN is not set (run through ctest)")
        self.extra_args = list(extra_args)
        self.ready_timeout = ready_timeout
        self.dir = tempfile.mkdtemp(prefix="sidestep-test-")
        self.config_path = os.path.join(self.dir, "sidestep.yaml")
        self.ready_path = os.path.join(self.dir, "ready.json")
        self.proc = None
        self.ready = None
        self._stderr = None
        self._stdout = None
        self.write_config(config)
        if start:
            self.start()

    def write_config(self, config):
        """Replaces the config file (follow with reload() to apply it)."""
        text = config if isinstance(config, str) else to_yaml(config)
        tmp = self.config_path + ".tmp"
        with open(tmp, "w") as f:
            f.write(text)
        os.replace(tmp, self.config_path)
        self.config_text = text

    def start(self):
        if self.proc is not None and self.proc.poll() is None:
            raise RuntimeError("sidestep already running")
        if os.path.exists(self.ready_path):
            os.unlink(self.ready_path)
        prefix = list(self.binary) if isinstance(self.binary, (list, tuple)) else [self.binary]
        argv = prefix + ["-c", self.config_path, "--ready-file", self.ready_path]
        argv += self.extra_args
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        _live.append(self.proc)
        self._stdout = _Drain(self.proc.stdout)
        self._stderr = _Drain(self.proc.stderr)
        self.ready = self._wait_ready()
        return self

    def _wait_ready(self):
        deadline = time.monotonic() + scaled(self.ready_timeout)
        while True:
            code = self.proc.poll()
            if code is not None:
                _forget(self.proc)
                _close_pipes(self.proc, [self._stderr, self._stdout])
                raise RuntimeError("sidestep exited with %d before it was ready:\n%s"
                                   % (code, self.stderr_text()))
            try:
                with open(self.ready_path) as f:
                    return json.load(f)
            except FileNotFoundError:
                pass
            except ValueError:
                pass  # written atomically, so only a broken writer gets here: keep polling
            if time.monotonic() >= deadline:
                self.proc.kill()
                self.proc.wait(timeout=5)
                _forget(self.proc)
                _close_pipes(self.proc, [self._stderr, self._stdout])
                raise TimeoutError("sidestep not ready after %.1fs:\n%s"
                                   % (scaled(self.ready_timeout), self.stderr_text()))
            time.sleep(0.01)

    @property
    def pid(self):
        return self.proc.pid

    @property
    def ports(self):
        return [_port_of(a) for a in self.ready["listen"]]

    @property
    def port(self):
        return self.ports[0]

    @property
    def admin_port(self):
        admin = self.ready.get("admin")
        return _port_of(admin) if admin else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def stderr_text(self):
        return self._stderr.text() if self._stderr else ""

    def stdout_text(self):
        return self._stdout.text() if self._stdout else ""

    def wait_stderr(self, needle, timeout=5.0):
        """Waits until stderr contains `needle` (str or compiled regex); returns the text."""
        def found():
            text = self.stderr_text()
            hit = needle.search(text) if hasattr(needle, "search") else needle in text
            return text if hit else None
        return wait_until(found, timeout, what="%r on sidestep's stderr" % (needle,))

    def reload(self):
        """SIGHUP: sidestep re-reads its config file."""
        self.proc.send_signal(signal.SIGHUP)

    def stop(self, timeout=10.0, check=True):
        """SIGTERM, wait; returns the exit code. With `check`, a non-zero exit (an unclean
        shutdown: 3 when an event-loop handle was left open, or a sanitizer report at exit)
        raises AssertionError with the stderr."""
        if self.proc is None:
            return None
        code = _stop_process(self.proc, [self._stderr, self._stdout], timeout)
        if check and code != 0:
            raise AssertionError(self._exit_message(code))
        return code

    def _exit_message(self, code):
        why = " (an event-loop handle was left open)" if code == EXIT_UNCLEAN else ""
        return "sidestep exited with %r%s:\n%s" % (code, why, self.stderr_text())

    def kill(self):
        if self.proc is None:
            return None
        return _stop_process(self.proc, [self._stderr, self._stdout], 10.0, signal.SIGKILL)

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        try:
            if self.running():
                try:
                    code = self.stop(check=False)
                except TimeoutError:
                    code = None
                if exc_type is None and code != 0:
                    raise AssertionError(self._exit_message(code))
            if exc_type is not None and self._stderr is not None:
                print("---- sidestep stderr ----\n%s---- end ----" % self.stderr_text())
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)
        return False


# --- raw HTTP ----------------------------------------------------------------------------------

_STATUS_LINE = re.compile(rb"HTTP/(\d)\.(\d) (\d{3}) ([^\r\n]*)\Z")
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
_CHUNK_SIZE = re.compile(rb"([0-9A-Fa-f]+)[ \t]*(;[^\r\n]*)?\Z")


class HeaderLookup:
    """Case-insensitive lookup over self.headers, an ordered list of (name, value) pairs."""

    def header(self, name, default=None):
        """The first value of header `name` (case-insensitive), or default."""
        name = name.lower()
        for k, v in self.headers:
            if k.lower() == name:
                return v
        return default

    def header_all(self, name):
        name = name.lower()
        return [v for k, v in self.headers if k.lower() == name]


class Response(HeaderLookup):
    """A parsed response. headers is the ordered list of (name, value) str pairs as received;
    interim holds the 1xx responses that came first; raw is this response's bytes."""

    def __init__(self, version, status, reason, headers, body=b"", raw=b""):
        self.version = version
        self.status = status
        self.reason = reason
        self.headers = headers
        self.body = body
        self.raw = raw
        self.trailers = []
        self.interim = []
        self.framing = None  # "length", "chunked", "close" or "none"

    def has_header(self, name):
        return self.header(name) is not None

    @property
    def text(self):
        return self.body.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.body)

    def echo(self):
        """The stub's echo listing of the body as an Echo."""
        return Echo(self.body)

    def __repr__(self):
        return "<Response %d %s, %d body bytes>" % (self.status, self.reason, len(self.body))


class Echo(HeaderLookup):
    """The stub's echo listing: what the origin received (e.g. what a proxy forwarded)."""

    def __init__(self, body):
        if isinstance(body, bytes):
            body = body.decode("latin-1")
        self.lines = body.splitlines()
        self.headers = []
        self.trailers = []
        self.origin = self.port = self.method = self.target = self.http = None
        self.body_bytes = None
        self.body_sha256 = None
        for line in self.lines:
            key, _, rest = line.partition(" ")
            if key == "origin":
                self.origin, _, port = rest.rpartition(" ")
                self.port = int(port)
            elif key == "method":
                self.method = rest
            elif key == "target":
                self.target = rest
            elif key == "http":
                self.http = rest
            elif key in ("header", "trailer"):
                name, _, value = rest.partition(": ")
                (self.headers if key == "header" else self.trailers).append((name, value))
            elif key == "body-bytes":
                self.body_bytes = int(rest)
            elif key == "body-sha256":
                self.body_sha256 = rest
            else:
                raise ProtocolError("not a stub echo line: %r" % line)



def _header_list(headers):
    if headers is None:
        return []
    if isinstance(headers, dict):
        return list(headers.items())
    return list(headers)


def request_bytes(method="GET", target="/", headers=None, body=None, host=None,
                  version="HTTP/1.1"):
    """Serialises a request. Adds Host (when `host` is given and no Host header is) and
    Content-Length (when body is not None and neither Content-Length nor Transfer-Encoding is
    given). Header values and body may be str or bytes."""
    hdrs = _header_list(headers)
    names = {str(k).lower() for k, _ in hdrs}
    if host is not None and "host" not in names:
        hdrs.insert(0, ("Host", host))
    if isinstance(body, str):
        body = body.encode()
    if body is not None and "content-length" not in names and "transfer-encoding" not in names:
        hdrs.append(("Content-Length", str(len(body))))
    out = bytearray(("%s %s %s\r\n" % (method, target, version)).encode("latin-1"))
    for k, v in hdrs:
        k = k if isinstance(k, bytes) else str(k).encode("latin-1")
        v = v if isinstance(v, bytes) else str(v).encode("latin-1")
        out += k + b": " + v + b"\r\n"
    out += b"\r\n"
    if body:
        out += body
    return bytes(out)


def chunked(pieces, trailers=None):
    """Encodes byte pieces as a chunked body (empty pieces are skipped)."""
    out = bytearray()
    for p in pieces:
        if p:
            out += b"%x\r\n" % len(p) + p + b"\r\n"
    out += b"0\r\n"
    for k, v in trailers or []:
        out += ("%s: %s\r\n" % (k, v)).encode("latin-1")
    out += b"\r\n"
    return bytes(out)


class Conn:
    """One client connection with strict response parsing. Unread bytes stay buffered between
    calls, so pipelined responses are read one by one. close_kind is None while open, then "fin"
    or "reset" once the peer closed. `preamble` is sent right after the connect (a PROXY
    protocol header, as a balancer sends it); `source` binds the client's own address first
    (another loopback address, such as "127.0.0.2")."""

    def __init__(self, port, host=LOOPBACK, timeout=5.0, sock=None, preamble=b"", source=None,
                 host_header=None):
        self.timeout = scaled(timeout)
        self.host_header = host_header or ("%s:%d" % (host, port) if sock is None
                                           else "localhost")
        if sock is None:
            src = (source, 0) if source is not None else None
            sock = socket.create_connection((host, port), timeout=self.timeout,
                                            source_address=src)
        self.sock = sock
        self.buf = bytearray()
        self.close_kind = None
        if preamble:
            self.sock.sendall(preamble)

    @classmethod
    def from_socket(cls, sock, timeout=5.0):
        return cls(0, timeout=timeout, sock=sock)

    @classmethod
    def tls(cls, port, sni="localhost", cafile=None, host=LOOPBACK, timeout=5.0, context=None,
            session=None):
        """A connection over TLS (tls_connect): the same strict parsing of what comes back."""
        sock = tls_connect(port, sni, cafile, host, timeout, context, session)
        return cls(port, host, timeout, sock=sock, host_header="%s:%d" % (sni or host, port))

    # -- sending

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("latin-1")
        self.sock.sendall(data)

    def request(self, method="GET", target="/", headers=None, body=None, version="HTTP/1.1"):
        """Sends a request (Host added unless given)."""
        self.send(request_bytes(method, target, headers, body, self.host_header, version))

    def shutdown_write(self):
        self.sock.shutdown(socket.SHUT_WR)

    # -- receiving

    def _fill(self, deadline):
        """Reads more bytes into buf; False once the peer closed. TimeoutError at deadline."""
        if self.close_kind is not None:
            return False
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no data from peer in time")
        self.sock.settimeout(left)
        try:
            chunk = self.sock.recv(262144)
        except socket.timeout:
            raise TimeoutError("no data from peer in time") from None
        except ConnectionResetError:
            self.close_kind = "reset"
            return False
        except ssl.SSLError as e:
            # a TLS peer that ends with an alert, or cuts a record: the connection is over
            self.close_kind = "tls: %s" % e.reason
            return False
        if not chunk:
            self.close_kind = "fin"
            return False
        self.buf += chunk
        return True

    def _deadline(self, timeout):
        return time.monotonic() + (scaled(timeout) if timeout is not None else self.timeout)

    def _take(self, n):
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    def _read_line(self, deadline, limit):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                line = self._take(i + 2)
                return line[:-2]
            if len(self.buf) > limit:
                raise ProtocolError("line longer than %d bytes" % limit)
            if not self._fill(deadline):
                raise ProtocolError("connection closed (%s) inside a line" % self.close_kind)

    def _read_exact(self, n, deadline):
        while len(self.buf) < n:
            if not self._fill(deadline):
                raise ProtocolError("connection closed (%s) after %d of %d body bytes"
                                    % (self.close_kind, len(self.buf), n))
        return self._take(n)

    def recv_head(self, timeout=None, max_head=1 << 20):
        """Reads one response head (1xx included); returns a Response without body."""
        return self._recv_head(self._deadline(timeout), max_head)[0]

    def _recv_head(self, deadline, max_head):
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > max_head:
                raise ProtocolError("response head longer than %d bytes" % max_head)
            if not self._fill(deadline):
                if not self.buf:
                    raise ProtocolError("connection closed (%s) before a response"
                                        % self.close_kind)
                raise ProtocolError("connection closed (%s) inside a response head: %r"
                                    % (self.close_kind, bytes(self.buf[:200])))
        raw = self._take(end + 4)
        lines = raw[:-4].split(b"\r\n")
        m = _STATUS_LINE.match(lines[0])
        if not m:
            raise ProtocolError("bad status line %r" % lines[0][:200])
        if b"\n" in raw[:-4].replace(b"\r\n", b""):
            raise ProtocolError("bare LF in response head")
        headers = []
        for line in lines[1:]:
            if line[:1] in (b" ", b"\t"):
                raise ProtocolError("obsolete line folding: %r" % line[:200])
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.match(name):
                raise ProtocolError("bad header line %r" % line[:200])
            headers.append((name.decode("latin-1"), value.strip(b" \t").decode("latin-1")))
        version = "%s.%s" % (m.group(1).decode(), m.group(2).decode())
        resp = Response(version, int(m.group(3)), m.group(4).decode("latin-1"), headers, raw=raw)
        return resp, raw

    def _framing(self, resp, method):
        status = resp.status
        if method == "HEAD" or status < 200 or status in (204, 304):
            return "none", None
        te = [v for k, v in resp.headers if k.lower() == "transfer-encoding"]
        cl = [v for k, v in resp.headers if k.lower() == "content-length"]
        if te and cl:
            raise ProtocolError("both Transfer-Encoding and Content-Length")
        if te:
            codings = [c.strip().lower() for c in ",".join(te).split(",") if c.strip()]
            if codings and codings[-1] == "chunked":
                if codings.count("chunked") != 1:
                    raise ProtocolError("chunked applied twice: %r" % te)
                return "chunked", None
            return "close", None
        if cl:
            values = {v.strip() for c in cl for v in c.split(",")}
            if len(values) != 1:
                raise ProtocolError("conflicting Content-Length: %r" % cl)
            value = values.pop()
            if not value.isdigit() or len(value) > 19:
                raise ProtocolError("bad Content-Length %r" % value)
            return "length", int(value)
        return "close", None

    def _read_chunked(self, resp, deadline):
        body = bytearray()
        raw = bytearray()
        while True:
            line = self._read_line(deadline, 4096)
            raw += line + b"\r\n"
            m = _CHUNK_SIZE.match(line)
            if not m:
                raise ProtocolError("bad chunk size line %r" % line[:100])
            size = int(m.group(1), 16)
            if size == 0:
                break
            data = self._read_exact(size + 2, deadline)
            if data[-2:] != b"\r\n":
                raise ProtocolError("chunk data not followed by CRLF")
            body += data[:-2]
            raw += data
        while True:
            line = self._read_line(deadline, 65536)
            raw += line + b"\r\n"
            if not line:
                break
            name, sep, value = line.partition(b":")
            if not sep or not _TOKEN.match(name):
                raise ProtocolError("bad trailer line %r" % line[:200])
            resp.trailers.append((name.decode("latin-1"),
                                  value.strip(b" \t").decode("latin-1")))
        return bytes(body), bytes(raw)

    def recv_response(self, head_only=False, method="GET", skip_interim=True, timeout=None,
                      max_head=1 << 20):
        """Reads one response strictly: Content-Length, chunked or close-delimited body.

        head_only returns after the head (the body stays unread). With skip_interim, 1xx
        responses are collected in .interim and the final one is returned; otherwise a 1xx is
        returned on its own. Raises ProtocolError on malformed or truncated input and
        TimeoutError when the peer goes quiet."""
        deadline = self._deadline(timeout)
        interim = []
        while True:
            resp, raw = self._recv_head(deadline, max_head)
            if 100 <= resp.status < 200 and resp.status != 101 and skip_interim:
                interim.append(resp)
                continue
            break
        resp.interim = interim
        if head_only:
            return resp
        framing, length = self._framing(resp, method)
        resp.framing = framing
        if framing == "length":
            resp.body = self._read_exact(length, deadline)
            resp.raw = raw + resp.body
        elif framing == "chunked":
            resp.body, body_raw = self._read_chunked(resp, deadline)
            resp.raw = raw + body_raw
        elif framing == "close":
            while self._fill(deadline):
                pass
            if self.close_kind == "reset":
                raise ProtocolError("close-delimited body ended by a reset")
            resp.body = self._take(len(self.buf))
            resp.raw = raw + resp.body
        return resp

    def recv_body(self, n, timeout=None):
        """Exactly n more bytes (after recv_response(head_only=True))."""
        return self._read_exact(n, self._deadline(timeout))

    def recv_all(self, timeout=None):
        """Everything until the peer closes (buffered bytes included)."""
        deadline = self._deadline(timeout)
        while self._fill(deadline):
            pass
        return self._take(len(self.buf))

    def recv_some(self, timeout=0.5):
        """Whatever arrives within `timeout` (scaled) seconds; b"" if nothing did."""
        deadline = self._deadline(timeout)
        try:
            while self._fill(deadline):
                pass
        except TimeoutError:
            pass
        return self._take(len(self.buf))

    def closed(self, timeout=2.0):
        """True when the peer closes (FIN or RST) within `timeout` (scaled) seconds and sent
        nothing more; False when the connection is still open then. Unexpected data raises."""
        deadline = self._deadline(timeout)
        try:
            while self._fill(deadline):
                pass
        except TimeoutError:
            if self.buf:
                raise ProtocolError("unexpected bytes: %r" % bytes(self.buf[:200]))
            return False
        if self.buf:
            raise ProtocolError("unexpected bytes before close: %r" % bytes(self.buf[:200]))
        return True

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def raw(port, data, timeout=2.0, host=LOOPBACK, half_close=False, preamble=b""):
    """Sends bytes, returns everything received until the peer closes or `timeout` (scaled)
    seconds pass. A reset ends the read like a close."""
    with Conn(port, host, timeout, preamble=preamble) as c:
        c.send(data)
        if half_close:
            c.shutdown_write()
        return c.recv_some(timeout)


# --- TLS ---------------------------------------------------------------------------------------

_certs = None


def tls_certs():
    """The test certificates of tests/support/certs.py (the manifest: {"ca", "files": {NAME:
    {"cert", "key", ...}}, ...}), made once per process into a temporary directory that is
    removed at exit."""
    global _certs
    if _certs is None:
        import certs  # tests/support/certs.py, beside this file
        d = tempfile.mkdtemp(prefix="sst-certs-")
        atexit.register(shutil.rmtree, d, True)
        _certs = certs.make(d)
    return _certs


def tls_context(cafile=None, alpn=("http/1.1",), minimum=None, maximum=None):
    """A client context: verification against `cafile` (the test CA by default), TLS 1.2+."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile or tls_certs()["ca"])
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    return ctx


def tls_connect(port, sni="localhost", cafile=None, host=LOOPBACK, timeout=5.0, context=None,
                session=None):
    """A TLS socket to host:port with SNI `sni` (None: no SNI, and no name check), its
    handshake done. Raises ssl.SSLError when the handshake fails."""
    ctx = context or tls_context(cafile)
    if sni is None:
        ctx.check_hostname = False
    raw_sock = socket.create_connection((host, port), timeout=scaled(timeout))
    try:
        return ctx.wrap_socket(raw_sock, server_hostname=sni, session=session)
    except BaseException:
        raw_sock.close()
        raise


def https(port, method="GET", target="/", headers=None, body=None, sni="localhost",
          cafile=None, host=LOOPBACK, timeout=5.0, version="HTTP/1.1"):
    """One request over TLS on a fresh connection; returns the Response."""
    with Conn.tls(port, sni, cafile, host, timeout) as c:
        c.request(method, target, headers, body, version)
        return c.recv_response(method=method)


def http(port, method="GET", target="/", headers=None, body=None, host=LOOPBACK, timeout=5.0,
         version="HTTP/1.1", preamble=b""):
    """One request on a fresh connection; returns the Response (connection then closed)."""
    with Conn(port, host, timeout, preamble=preamble) as c:
        c.request(method, target, headers, body, version)
        return c.recv_response(method=method)


# --- two regions, as the admin and reload tests run them ----------------------------------

def two_region_config(us, eu, token=None, failback="300ms", extra_routes=()):
    """Two regions on loopback: us-east (local, primary) and eu-west (failover)."""
    cfg = {
        "listen": ["127.0.0.1:0"],
        "admin": {"address": "127.0.0.1:0"},
        "workers": 2,
        "local_region": "us-east",
        # generous enough that a loaded sanitizer build never fails a probe by accident
        "health": {"path": "/healthz", "interval": "%dms" % scaled(250),
                   "timeout": "%dms" % scaled(200), "rise": 1, "fall": 3},
        "regions": [
            {"name": "us-east", "url": "http://127.0.0.1:8080", "backends": [us.addr],
             "failback_delay": failback},
            {"name": "eu-west", "url": "http://%s" % eu.addr, "backends": [eu.addr],
             "failback_delay": failback},
        ],
        "routes": list(extra_routes) + [
            {"name": "default", "match": {"host": "*", "path_prefix": "/"},
             "primary": "us-east", "failover": ["eu-west"]},
        ],
        "log": {"access": "off"},
    }
    if token is not None:
        cfg["admin"]["token"] = token
    return cfg


def wait_routable(proxy, token=None):
    """Waits until both regions take traffic (eu-west starts DOWN until its first probe)."""
    hdrs = [("Authorization", "Bearer " + token)] if token else []

    def ready():
        st = http(proxy.admin_port, "GET", "/status", hdrs).json()
        return all(r["routable"] for r in st["regions"])
    wait_until(ready, 5.0, what="both regions routable")


def connect_refused(port, host=LOOPBACK):
    """True when connecting to host:port is refused."""
    try:
        with socket.create_connection((host, port), timeout=scaled(2.0)):
            return False
    except ConnectionRefusedError:
        return True
    except OSError as e:
        return e.errno == errno.ECONNREFUSED
