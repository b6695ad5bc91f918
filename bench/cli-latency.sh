#!/usr/bin/env bash
# CLI latency: wall time of each `sovereign` command against a running server, next to two baselines measured in
# the same run: `dotnet bin/sovereign.dll --version` (the floor of starting the .NET runtime) and the README's old
# alias `dotnet run --project src/Sovereign.Cli -- --version` (an up-to-date build, no compile).
# Usage: bench/cli-latency.sh [RUNS]   (builds Release first; prints a markdown table)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
export OMP_WAIT_POLICY=PASSIVE DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
dotnet build -c Release src/Sovereign.Cli -v q -nologo >/dev/null
dll=src/Sovereign.Cli/bin/Release/net10.0/sovereign.dll
work=$(mktemp -d)
export Sovereign__DataDirectory="$work/data"   # the server's and the CLI's data directory (fresh)
Sovereign__Jurisdiction=TH Sovereign__BuiltInEmbeddings=false dotnet "$dll" serve --urls http://127.0.0.1:0 --threads 1 >"$work/out" 2>"$work/err" &
pid=$!
trap 'kill $pid 2>/dev/null; wait $pid 2>/dev/null; rm -rf "$work"' EXIT
until grep -q "ready on" "$work/err"; do sleep 0.2; done
export SOVEREIGN_URL=$(grep -o 'ready on http://[0-9.:]*' "$work/err" | sed 's/ready on //')
dotnet "$dll" tenants create bench --jurisdiction TH >/dev/null
export SOVEREIGN_API_KEY=$(dotnet "$dll" keys create bench | tail -n 1)

median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
measure() { # prints the median wall seconds of RUNS runs of "$@"
  for _ in $(seq "$runs"); do
    s=$(date +%s.%N); "$@" >/dev/null 2>&1 || true; e=$(date +%s.%N)
    echo "$e - $s" | bc -l
  done | median
}
floor=$(measure dotnet "$dll" --version)
alias_run=$(measure dotnet run --project src/Sovereign.Cli -c Release --no-launch-profile -- --version)
echo "| command | median s | / runtime floor | / dotnet run alias |"
echo "|---|---|---|---|"
row() { local t; t=$(measure dotnet "$dll" "$@"); printf '| `sovereign %s` | %.3f | %.2f | %.3f |\n' "$*" "$t" "$(echo "$t / $floor" | bc -l)" "$(echo "$t / $alias_run" | bc -l)"; }
printf '| `dotnet run ... -- --version` (old alias) | %.3f | %.2f | 1 |\n' "$alias_run" "$(echo "$alias_run / $floor" | bc -l)"
printf '| `sovereign --version` (runtime floor) | %.3f | 1 | %.3f |\n' "$floor" "$(echo "$floor / $alias_run" | bc -l)"
row models list
row tenants list
row limits bench
row usage
row invoice bench
row chat --prompt Hello --max-tokens 8
row audit verify
