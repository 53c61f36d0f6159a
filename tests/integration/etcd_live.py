"""Runs etcd-live (tests/integration/etcd_live.c: the etcd client's cmocka tests against a real
etcd) with a single-node etcd started here, and performs the requests it prints:

    CTL kill      SIGKILL etcd (by PID), as a crash
    CTL restart   start it again on the same ports and data

answering "OK" (or "ERR reason") on its stdin. Everything else it prints is passed through.
Exits with etcd-live's status; a missing etcd or etcd-live fails the test with the reason.
Environment (set by ctest): SST_ETCD_LIVE, SST_SANITIZE, PYTHONPATH=tests/support.
"""

import os
import subprocess
import sys
import threading

from etcd import SLOW, Etcd, EtcdError

#: Bound on the whole run; each wait inside etcd-live has its own watchdog.
RUN_TIMEOUT = 240 * SLOW


def main():
    binary = os.environ.get("SST_ETCD_LIVE", "")
    if not binary or not os.access(binary, os.X_OK):
        print("etcd_live: SST_ETCD_LIVE does not name the etcd-live program (%r); run through "
              "ctest" % binary, file=sys.stderr)
        return 1
    try:
        etcd = Etcd().start()
    except EtcdError as e:
        print("etcd_live: %s" % e, file=sys.stderr)
        return 1
    try:
        env = dict(os.environ, SST_ETCD_URL=etcd.url)
        proc = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                env=env, text=True, bufsize=1)
        timer = threading.Timer(RUN_TIMEOUT, proc.kill)
        timer.start()
        try:
            for line in proc.stdout:
                if not line.startswith("CTL "):
                    sys.stdout.write(line)
                    continue
                cmd = line[4:].strip()
                try:
                    if cmd == "kill":
                        etcd.kill()
                    elif cmd == "restart":
                        etcd.restart()
                    else:
                        raise EtcdError("unknown request %r" % cmd)
                    answer = "OK\n"
                except EtcdError as e:
                    answer = "ERR %s\n" % str(e).replace("\n", " ")
                print("etcd_live: %s -> %s" % (cmd, answer.strip()), flush=True)
                proc.stdin.write(answer)
                proc.stdin.flush()
            status = proc.wait()
        finally:
            timer.cancel()
        if status != 0:
            print("etcd_live: etcd-live exited with status %d; etcd log tail:\n%s"
                  % (status, etcd.log_tail()), file=sys.stderr)
        return status
    finally:
        etcd.close()


if __name__ == "__main__":
    sys.exit(main())
