"""A single-node etcd for tests (Python 3 standard library only).

`Etcd` runs Debian's etcd (package `etcd-server`; `scripts/install-deps.sh test` installs it) on
127.0.0.1 with client and peer ports that were free a moment ago, in a fresh temporary data
directory, and stops it by PID. Every wait is bounded. Typical use:

    with Etcd() as etcd:
        etcd.put("/k", "v")
        etcd.kill()          # SIGKILL, as a crash
        etcd.restart()       # same ports, same data
        assert etcd.get("/k") == "v"

Environment: SST_ETCD overrides the etcd binary; SST_SANITIZE ("1") triples the waits, as in
sst.py. A missing etcd raises EtcdError with the package to install, so a test fails instead of
silently passing.
"""

import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

SLOW = 3.0 if os.environ.get("SST_SANITIZE", "0").lower() in ("1", "on", "true", "yes") else 1.0


class EtcdError(Exception):
    """etcd is missing, did not start, or did not answer in time."""


def find_etcd():
    """Path of the etcd binary, or raises EtcdError naming the Debian package."""
    path = os.environ.get("SST_ETCD") or shutil.which("etcd") or "/usr/bin/etcd"
    if not os.access(path, os.X_OK):
        raise EtcdError("etcd not found (%s): install the Debian package 'etcd-server' "
                        "(scripts/install-deps.sh test installs it)" % path)
    return path


def free_port():
    """A TCP port on 127.0.0.1 that was free when this returned."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _b64(text):
    data = text.encode() if isinstance(text, str) else text
    return base64.b64encode(data).decode()


class Etcd:
    """One etcd member on loopback. Ports and data directory are chosen at the first start and
    kept across restart(), so a restarted member has its data and its URL back."""

    def __init__(self, name="sst", progress_notify_interval="500ms", start_timeout=20.0):
        self.bin = find_etcd()
        self.name = name
        self.progress_notify_interval = progress_notify_interval
        self.start_timeout = start_timeout * SLOW
        self.dir = tempfile.mkdtemp(prefix="sst-etcd-")
        self.data_dir = os.path.join(self.dir, "data")
        self.log_path = os.path.join(self.dir, "etcd.log")
        self.client_port = free_port()
        self.peer_port = free_port()
        self.proc = None
        self._log = None

    @property
    def url(self):
        """The client URL, e.g. http://127.0.0.1:40123."""
        return "http://127.0.0.1:%d" % self.client_port

    @property
    def pid(self):
        return self.proc.pid if self.proc is not None else None

    def running(self):
        return self.proc is not None and self.proc.poll() is None

    def _args(self):
        peer = "http://127.0.0.1:%d" % self.peer_port
        args = [
            self.bin,
            "--name", self.name,
            "--data-dir", self.data_dir,
            "--listen-client-urls", self.url,
            "--advertise-client-urls", self.url,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", "%s=%s" % (self.name, peer),
            "--initial-cluster-state", "new",
            "--logger", "zap",
            "--log-outputs", "stderr",
        ]
        if self.progress_notify_interval:
            args += ["--experimental-watch-progress-notify-interval",
                     self.progress_notify_interval]
        return args

    def start(self):
        """Starts etcd and waits until it answers /health. Raises EtcdError with the log tail
        when it exits or does not answer within start_timeout."""
        if self.running():
            raise EtcdError("etcd is already running (pid %d)" % self.proc.pid)
        self._log = open(self.log_path, "ab")
        self.proc = subprocess.Popen(self._args(), stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT)
        deadline = time.monotonic() + self.start_timeout
        while True:
            if self.proc.poll() is not None:
                raise EtcdError("etcd exited with status %d at start:\n%s"
                                % (self.proc.returncode, self.log_tail()))
            if self._healthy():
                return self
            if time.monotonic() >= deadline:
                self.kill()
                raise EtcdError("etcd did not answer within %.0fs:\n%s"
                                % (self.start_timeout, self.log_tail()))
            time.sleep(0.05)

    def _healthy(self):
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as r:
                return json.loads(r.read().decode()).get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def _wait(self, timeout):
        try:
            self.proc.wait(timeout=timeout * SLOW)
            return True
        except subprocess.TimeoutExpired:
            return False

    def _reap(self):
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def kill(self):
        """SIGKILL, as a crash: no clean shutdown. Waits for the process to go."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self._wait(10)
        self._reap()

    def stop(self):
        """SIGTERM, then SIGKILL after 10 s."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            if not self._wait(10):
                os.kill(self.proc.pid, signal.SIGKILL)
                self._wait(10)
        self._reap()

    def restart(self):
        """Stops etcd if it runs, then starts it again on the same ports and data."""
        self.stop()
        return self.start()

    def close(self):
        """Stops etcd and removes its directory."""
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def log_tail(self, lines=30):
        try:
            with open(self.log_path, "rb") as f:
                return b"".join(f.readlines()[-lines:]).decode(errors="replace")
        except OSError:
            return "(no log)"

    # --- a few gateway calls, for tests that need to read or write behind sidestep's back ---

    def call(self, path, body, timeout=5.0):
        """POSTs JSON to the v3 gateway (path like "/v3/kv/put"); returns the decoded answer."""
        req = urllib.request.Request(self.url + path, data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout * SLOW) as r:
            return json.loads(r.read().decode())

    def put(self, key, value, lease=0):
        """Writes key=value; returns the store revision of the write."""
        body = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        return int(self.call("/v3/kv/put", body)["header"]["revision"])

    def get(self, key):
        """The value of key as text, or None."""
        kvs = self.call("/v3/kv/range", {"key": _b64(key)}).get("kvs", [])
        return base64.b64decode(kvs[0].get("value", "")).decode() if kvs else None

    def revision(self):
        """The current store revision."""
        return int(self.call("/v3/kv/range", {"key": _b64("\0")})["header"]["revision"])
