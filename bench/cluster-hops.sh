#!/bin/bash
# Where a relayed request's first-token time goes between the cluster-streaming benchmark's processes, from syscall
# tracepoints (perf): each process's socket reads and writes, named by connection, per request.
# usage (from the repository root, Release build done): bench/cluster-hops.sh OUT_DIR [WAIT_SECONDS (75)] [REQUESTS (400)]
# Starts `cluster-streaming --requests REQUESTS`, waits WAIT_SECONDS (into the measured phase or late warm-up), records
# 4 s, lets the benchmark finish, and prints bench/cluster-hops.py's medians. Environment variables pass through to
# the members (Sovereign__Audit__MemberChains=true, ...). Needs root or perf_event_paranoid <= 1 and tracefs.
set -eu
OUT=$1; WAIT=${2:-75}; REQ=${3:-400}
mkdir -p "$OUT"
dotnet bench/Sovereign.Benchmarks/bin/Release/net10.0/Sovereign.Benchmarks.dll cluster-streaming --requests "$REQ" > "$OUT/bench.log" 2>&1 &
BENCH=$!
sleep "$WAIT"
GW=$(pgrep -P $BENCH -f "role gateway" | head -1); NODE=$(pgrep -P $BENCH -f "role node" | head -1)
GWPORT=$(tr '\0' ' ' < /proc/$GW/cmdline | grep -o 'http://127.0.0.1:[0-9]*' | head -1 | cut -d: -f3)
NODEPORT=$(tr '\0' ' ' < /proc/$NODE/cmdline | grep -o 'https://127.0.0.1:[0-9]*' | head -1 | cut -d: -f3)
python3 bench/cluster-hops.py map $BENCH $GW $NODE $GWPORT $NODEPORT > "$OUT/connections.json"
cut -d' ' -f1-3 /proc/loadavg > "$OUT/load"
EVENTS=""
for call in recvfrom recvmsg read sendto sendmsg write writev; do EVENTS="$EVENTS,syscalls:sys_enter_$call,syscalls:sys_exit_$call"; done
# Not fatal: perf can exit non-zero (a thread of a member ending under it) after writing a usable record; the benchmark
# is left to finish either way, and a record that cannot be read says so below.
perf record -q -o "$OUT/perf.data" -e "${EVENTS#,}" -p $BENCH,$GW,$NODE -- sleep 4 2>"$OUT/perf-record.err" || echo "perf record exited $?: $(tail -1 "$OUT/perf-record.err")"
wait $BENCH || true
perf script -i "$OUT/perf.data" -F pid,tid,time,event,trace > "$OUT/perf.txt" 2>"$OUT/perf-script.err" || { echo "perf script failed (record unreadable: rerun): $(tail -1 "$OUT/perf-script.err")"; exit 1; }
echo "load at the recording: $(cat "$OUT/load")"
python3 bench/cluster-hops.py report "$OUT/perf.txt" "$OUT/connections.json" 3
grep -E "time to first token|CPU per|Voluntary" "$OUT/bench.log" || true
