#!/usr/bin/env bash
# Runs the whole test suite: installs what the tests need that the machine may lack (PostgreSQL's and Redis's
# binaries, for the tests that start their own throwaway servers; chromium, for the console's browser tests; Node.js,
# for the official JavaScript SDK's checks), runs
# `dotnet test`, and ends with "N passed, N failed". Browser screenshots are kept under TestResults/console/.
set -uo pipefail
cd "$(dirname "$0")"

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
# llama.cpp's OpenMP threads spin by default; on a 2-core runner that starves the other test processes.
export OMP_WAIT_POLICY=PASSIVE

if ! command -v dotnet >/dev/null 2>&1; then
  echo "dotnet SDK not found; install the .NET 10 SDK." >&2
  echo "0 passed, 1 failed"
  exit 1
fi

if [ ! -f ../shared/models/stories260K.gguf ]; then
  echo "../shared/models/ (the test GGUF models) is missing beside the repository." >&2
  echo "0 passed, 1 failed"
  exit 1
fi

if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    echo "Installing PostgreSQL (Debian package) for the schema tests..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends postgresql >/dev/null
  else
    echo "PostgreSQL is not installed; run: sudo apt-get install postgresql (the schema tests need it)." >&2
  fi
fi

# The cluster tests start their own throwaway redis-server (Orleans membership) on a free loopback port.
if ! command -v redis-server >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    echo "Installing redis-server (Debian package) for the cluster tests..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends redis-server >/dev/null
  else
    echo "redis-server is not installed; run: sudo apt-get install redis-server (the cluster tests need it)." >&2
  fi
fi

# The official JavaScript SDK's checks (OfficialNodeSdkTests) run on Node.js; the test installs the pinned SDK with npm.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    echo "Installing Node.js and npm (Debian packages) for the JavaScript SDK's checks..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends nodejs npm >/dev/null
  else
    echo "Node.js is not installed; run: sudo apt-get install nodejs npm (the JavaScript SDK's checks need it)." >&2
  fi
fi

# The console's browser tests drive Debian's chromium (headless) through Playwright; Playwright's own browser
# download does not work on these machines.
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = "0" ]; then
    echo "Installing chromium (Debian package) for the console's browser tests..."
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq >/dev/null && apt-get install -y -qq --no-install-recommends chromium >/dev/null
  else
    echo "chromium is not installed; run: sudo apt-get install chromium (the console's browser tests need it)." >&2
  fi
fi

log=$(mktemp)
dotnet test Sovereign.slnx 2>&1 | tee "$log"
status=${PIPESTATUS[0]}

# vstest prints one summary per test assembly: "Passed!  - Failed: F, Passed: P, Skipped: S, Total: T, ..."
passed=$(grep -Eo 'Failed: +[0-9]+, Passed: +[0-9]+' "$log" | awk -F'[:,]' '{p+=$4} END {print p+0}')
failed=$(grep -Eo 'Failed: +[0-9]+, Passed: +[0-9]+' "$log" | awk -F'[:,]' '{f+=$2} END {print f+0}')
assemblies=$(grep -Ec 'Failed: +[0-9]+, Passed: +[0-9]+' "$log")
rm -f "$log"

if [ "$status" -ne 0 ] && [ "$failed" -eq 0 ]; then
  # The build or a test host failed before any test could be counted as failed.
  failed=1
fi

echo "test assemblies: $assemblies"
echo "$passed passed, $failed failed"
exit "$status"
