#!/bin/sh
# System calls or user-space instructions per request of a one-worker sidestep under wrk
# keep-alive (16 connections), for A/B comparisons of two binaries (docs/benchmarks.md):
#
#   bench/per_request.sh strace    SIDESTEP STUB get307|proxy-get   strace -c -f, per request
#   bench/per_request.sh callgrind SIDESTEP STUB get307|proxy-get   callgrind Ir, per request
#
# strace counts every call the server makes while wrk runs 3 s (the server pinned to core 1,
# wrk and the stub to core 0). callgrind counts the instructions the server executes for the
# requests of a 4 s wrk run after a 2 s warm-up: unlike CPU time on a shared machine, that
# figure barely moves between runs. Ports 24100-24102 on 127.0.0.1. Every process started
# here is stopped by PID.
set -eu
MODE=$1
SST=$2
STUB=$3
WORK=$4
D=$(mktemp -d)
PORT=24100
BPORT=24101
B2=24102
STUBPID=""
SPID=""
cleanup() {
    [ -n "$SPID" ] && kill "$SPID" 2>/dev/null && wait "$SPID" 2>/dev/null || true
    [ -n "$STUBPID" ] && kill "$STUBPID" 2>/dev/null && wait "$STUBPID" 2>/dev/null || true
    rm -rf "$D"
}
trap cleanup EXIT INT TERM

case "$WORK" in
get307) INITIAL="    health: {enabled: false, initial: down}" ;;
proxy-get)
    INITIAL=""
    taskset -c 0 "$STUB" --listen 127.0.0.1:$BPORT --name us-east --size 256 --no-hash \
        >"$D/stub.log" 2>&1 &
    STUBPID=$!
    ;;
*)
    echo "workload: get307 or proxy-get" >&2
    exit 2
    ;;
esac
cat >"$D/s.yaml" <<EOF
workers: 1
listen: ["127.0.0.1:$PORT"]
regions:
  - name: us-east
    backends: ["127.0.0.1:$BPORT"]
$INITIAL
  - name: eu-west
    url: http://eu-west.example
    backends: ["127.0.0.1:$B2"]
    health: {enabled: false, initial: up}
routes:
  - name: default
    primary: us-east
    failover: [eu-west]
    redirect_status: 307
log: {access: off}
EOF
URL=http://127.0.0.1:$PORT/bench/get?id=12345

case "$MODE" in
strace)
    taskset -c 1 "$SST" -c "$D/s.yaml" --workers 1 >"$D/sst.log" 2>&1 &
    SPID=$!
    sleep 1
    strace -c -f -p "$SPID" -o "$D/strace" 2>/dev/null &
    TPID=$!
    sleep 1
    taskset -c 0 wrk -t1 -c16 -d3s "$URL" >"$D/wrk"
    kill -INT "$TPID"
    wait "$TPID" || true
    REQ=$(awk '/requests in/{print $1}' "$D/wrk")
    echo "$WORK: $REQ requests"
    # strace -c: "% time, seconds, usecs/call, calls, [errors], syscall"; calls is field 4
    awk -v r="$REQ" '$4 ~ /^[0-9]+$/ && $NF != "syscall" {
        printf "  %-12s %9d  %6.3f per request\n", $NF, $4, $4 / r }' "$D/strace"
    ;;
callgrind)
    valgrind --tool=callgrind --callgrind-out-file="$D/cg.%p" "$SST" -c "$D/s.yaml" --workers 1 \
        >"$D/sst.log" 2>&1 &
    SPID=$!
    sleep 4
    wrk -t1 -c16 -d2s "$URL" >/dev/null
    callgrind_control -z "$SPID" >/dev/null 2>&1
    wrk -t1 -c16 -d4s "$URL" >"$D/wrk"
    callgrind_control -d "$SPID" >/dev/null 2>&1
    REQ=$(awk '/requests in/{print $1}' "$D/wrk")
    IR=$(awk '/^summary:/{print $2}' "$D/cg.$SPID.1")
    echo "$WORK: $REQ requests, $IR instructions, $((IR / REQ)) per request"
    ;;
*)
    echo "mode: strace or callgrind" >&2
    exit 2
    ;;
esac
