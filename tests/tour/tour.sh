#!/usr/bin/env bash
# The README's tour, command for command, on a fresh data directory (a fresh HOME, so ~/.sovereign is new), each
# step asserted. Run by TourScriptTests; by hand: tests/tour/tour.sh path/to/sovereign.dll (or an installed
# `sovereign`). Exits non-zero at the first step that does not do what the README says.
set -euo pipefail

SOVEREIGN_DLL=${1:-}
sovereign() {
  if [ -n "$SOVEREIGN_DLL" ]; then dotnet "$SOVEREIGN_DLL" "$@"; else command sovereign "$@"; fi
}

work=$(mktemp -d)
export HOME="$work/home" OMP_WAIT_POLICY=PASSIVE
mkdir -p "$HOME"
cd "$work"
server_pid=""
cleanup() {
  # `sovereign ... &` runs the function in a subshell: $! is that subshell, and the server is its child.
  if [ -n "$server_pid" ]; then
    for status in $(grep -l "^PPid:[[:space:]]*$server_pid\$" /proc/[0-9]*/status 2>/dev/null); do
      kill "$(basename "$(dirname "$status")")" 2>/dev/null || true
    done
    kill "$server_pid" 2>/dev/null || true
    wait "$server_pid" 2>/dev/null || true
  fi
  rm -rf "$work"
}
trap cleanup EXIT

step() { echo "--- $*"; }
fail() { echo "TOUR FAILED: $*" >&2; exit 1; }
contains() { grep -qF -- "$2" <<<"$1" || fail "expected '$2' in: $1"; }

step "sovereign --version"
contains "$(sovereign --version)" "0.1.0"

# The README's server listens on 127.0.0.1:8080; here on a free port, announced in the 'ready on' line.
step "Sovereign__Jurisdiction=TH sovereign serve"
Sovereign__Jurisdiction=TH Sovereign__BuiltInEmbeddings=false sovereign serve --urls http://127.0.0.1:0 --threads 1 >"$work/serve.out" 2>"$work/serve.err" &
server_pid=$!
for _ in $(seq 1 600); do
  grep -q "ready on" "$work/serve.err" 2>/dev/null && break
  kill -0 "$server_pid" 2>/dev/null || fail "serve exited: $(cat "$work/serve.err")"
  sleep 0.2
done
url=$(grep -o 'ready on http://[0-9.:]*' "$work/serve.err" | head -n 1 | sed 's/ready on //')
[ -n "$url" ] || fail "serve never said 'ready on': $(cat "$work/serve.err")"
export SOVEREIGN_URL="$url"
grep -q "declares no jurisdiction" "$work/serve.err" && fail "serve warned about a jurisdiction it was given"
[ -f "$HOME/.sovereign/admin-token" ] || fail "no operator token in ~/.sovereign"

step "sovereign models list"
contains "$(sovereign models list)" "sovereign-test-tiny"

step "sovereign chat --prompt"
out=$(sovereign chat --prompt "Hello" --max-tokens 8)
[ -n "$out" ] || fail "chat printed nothing"

step "sovereign plans set / price"
contains "$(sovereign plans set standard --currency EUR --weight 1)" "Plan standard saved"
contains "$(sovereign plans price standard --model sovereign-test-tiny --input-per-million 0.20 --output-per-million 0.60)" "Price for sovereign-test-tiny added"
contains "$(sovereign plans compute-price standard --pool th-local --per-compute-second 0.0001)" "Compute price for pool th-local added"

step "sovereign tenants create th-hospital --jurisdiction TH --plan standard"
out=$(sovereign tenants create th-hospital --jurisdiction TH --plan standard)
contains "$out" "standard"
contains "$out" "TH"

step "sovereign keys create th-hospital"
SOVEREIGN_API_KEY=$(sovereign keys create th-hospital | tail -n 1)
export SOVEREIGN_API_KEY
contains "$SOVEREIGN_API_KEY" "sk-sov-"

step "sovereign chat / models list with the tenant's key"
out=$(sovereign chat --prompt "Hello" --max-tokens 8)
[ -n "$out" ] || fail "chat printed nothing"
contains "$(sovereign models list)" "sovereign-test-tiny"
if (unset SOVEREIGN_API_KEY; sovereign models list >/dev/null 2>"$work/nokey.err"); then fail "models list without a key succeeded"; fi
contains "$(cat "$work/nokey.err")" "missing key"

step "sovereign nodes add / list"
contains "$(sovereign nodes add sg-vllm --jurisdiction SG --base-url http://10.1.2.3:8000 --model typhoon)" "registered in SG"
contains "$(sovereign nodes list)" "sg-vllm"

step "sovereign limits"
sovereign limits th-hospital --budget month=500 --requests-per-minute 600 >/dev/null
out=$(sovereign limits th-hospital)
contains "$out" "600"
contains "$out" "500"

step "sovereign usage / invoice"
contains "$(sovereign usage --group-by tenant,model,day)" "th-hospital"
contains "$(sovereign usage --group-by tenant,pool,device_class)" "th-local"
out=$(sovereign invoice th-hospital --format csv)
contains "$out" "th-hospital,EUR"
contains "$out" "TOTAL"

step "sovereign audit verify / export / public-key / verify-export"
contains "$(sovereign audit verify)" "The audit log is intact."
contains "$(sovereign audit export --tenant th-hospital -o th.jsonl)" "th.jsonl"
[ -f "$work/th.jsonl" ] || fail "the export is not in the current directory"
sovereign audit public-key > operator.pem
contains "$(sovereign audit verify-export th.jsonl --public-key operator.pem)" "The export is intact and signed by the operator."

step "the console"
code=$(curl -s -o /dev/null -w '%{http_code}' "$url/console")
[ "$code" = "200" ] || fail "/console answered $code"

echo "TOUR OK"
