"""Runs fleet-live (tests/integration/fleet_live.c: several fleet runtimes on one loop against a
real etcd) with a single-node etcd and a relay to it started here, and performs the requests it
prints:

    CTL kill            SIGKILL etcd (by PID), as a crash
    CTL restart         start it again on the same ports and data
    CTL relay-cut       reset every connection through the relay, and new ones at once
    CTL relay-freeze    stop moving bytes through the relay (connections stay open)
    CTL relay-thaw      move them again
    CTL relay-restore   forward again
    CTL relay-hold      forward the next new connection, hold the ones after it
    CTL relay-release   forward the held connections
    CTL reset           etcd running and the relay passing, connections through it reset

answering "OK" (or "ERR reason") on its stdin. Everything else it prints is passed through.
Exits with fleet-live's status; a missing etcd or fleet-live fails the test with the reason.
Environment (set by ctest): SST_FLEET_LIVE, SST_SANITIZE, PYTHONPATH=tests/support.
"""

import os
import subprocess
import sys
import threading

from etcd import SLOW, Etcd, EtcdError
from relay import Relay

#: Bound on the whole run; each wait inside fleet-live has its own watchdog.
RUN_TIMEOUT = 280 * SLOW


def perform(cmd, etcd, relay):
    if cmd == "kill":
        etcd.kill()
    elif cmd == "restart":
        if not etcd.running():
            etcd.start()
    elif cmd == "relay-cut":
        relay.cut()
    elif cmd == "relay-freeze":
        relay.freeze()
    elif cmd == "relay-thaw":
        relay.thaw()
    elif cmd == "relay-restore":
        relay.restore()
    elif cmd == "relay-hold":
        relay.restore(hold_after=1)
    elif cmd == "relay-release":
        relay.release()
    elif cmd == "reset":
        if not etcd.running():
            etcd.start()
        relay.cut()
        relay.restore()
    else:
        raise EtcdError("unknown request %r" % cmd)


def main():
    binary = os.environ.get("SST_FLEET_LIVE", "")
    if not binary or not os.access(binary, os.X_OK):
        print("fleet_live: SST_FLEET_LIVE does not name the fleet-live program (%r); run through "
              "ctest" % binary, file=sys.stderr)
        return 1
    try:
        etcd = Etcd().start()
    except EtcdError as e:
        print("fleet_live: %s" % e, file=sys.stderr)
        return 1
    relay = Relay(etcd.client_port)
    try:
        env = dict(os.environ, SST_ETCD_URL=etcd.url, SST_RELAY_URL=relay.url)
        args = [binary] + sys.argv[1:]  # optional cmocka test filter
        proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env,
                                text=True, bufsize=1)
        timer = threading.Timer(RUN_TIMEOUT, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                if not line.startswith("CTL "):
                    sys.stdout.write(line)
                    sys.stdout.flush()
                    continue
                cmd = line[4:].strip()
                try:
                    perform(cmd, etcd, relay)
                    answer = "OK\n"
                except EtcdError as e:
                    answer = "ERR %s\n" % str(e).replace("\n", " ")
                print("fleet_live: %s -> %s" % (cmd, answer.strip()), flush=True)
                proc.stdin.write(answer)
                proc.stdin.flush()
            status = proc.wait()
        finally:
            timer.cancel()
        if status != 0:
            print("fleet_live: fleet-live exited with status %d; etcd log tail:\n%s"
                  % (status, etcd.log_tail()), file=sys.stderr)
        return status
    finally:
        relay.close()
        etcd.close()


if __name__ == "__main__":
    sys.exit(main())
