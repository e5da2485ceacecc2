#!/usr/bin/env bash
# The project's test command. On a fresh Debian 12 machine with the .NET 10 SDK and Node 20 it
# installs whatever the tests need (idempotently: a second run installs nothing), runs every test
# of Broker.sln, and ends with one summary line:
#
#   tests: N passed, N failed[, N skipped]
#
# Exit status: 0 only when dotnet test succeeded, at least one test ran and none failed.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"
ROOT=$PWD
RESULTS_DIR=$ROOT/TestResults
NODE_INTEROP_DIR=$ROOT/Broker.Tests/Interop/node

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1
export NPM_CONFIG_UPDATE_NOTIFIER=false NPM_CONFIG_FUND=false NPM_CONFIG_AUDIT=false

step() { printf '==> %s\n' "$*"; }

# Runs a command with its output kept back; shows the output only if it fails.
quiet() {
  local log
  log=$(mktemp)
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "test.sh: failed: $*" >&2
    return 1
  fi
  rm -f "$log"
}

as_root() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  else
    sudo "$@"
  fi
}

# need_apt PKG... — installs the Debian packages not yet installed ('apt-get update' first, once,
# and only when something is missing).
APT_UPDATED=0
need_apt() {
  local pkg missing=()
  for pkg in "$@"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if [ ${#missing[@]} -eq 0 ]; then
    return 0
  fi
  step "apt-get install ${missing[*]}"
  if [ "$APT_UPDATED" -eq 0 ]; then
    quiet as_root apt-get update -q
    APT_UPDATED=1
  fi
  quiet as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# ---- set-up -------------------------------------------------------------------------------------

# Third-party STOMP clients for Broker.Tests/Interop (stomp.py runs on Debian's /usr/bin/python3).
need_apt python3-stomp

# A real redis-server for Broker.Tests/Durability (the tests start their own on a free port).
need_apt redis-server

# A real rabbitmq-server for Broker.Tests/Relay (the tests start a private node of their own on free
# 127.0.0.1 ports; a system service that the package may start on 5672 is not used).
need_apt rabbitmq-server

# Debian's Chromium for Broker.Tests/Browser (the admin dashboard and the demo page), driven by the
# Microsoft.Playwright NuGet package's own driver; no browser is downloaded.
need_apt chromium

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  need_apt nodejs npm
fi

# stomp.js for Broker.Tests/Interop/node: 'npm ci' from the committed lock file, redone only when
# the lock file changed since the last install.
lock_hash=$(sha256sum "$NODE_INTEROP_DIR/package-lock.json" | cut -d' ' -f1)
stamp=$NODE_INTEROP_DIR/node_modules/.installed-lock-sha256
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$lock_hash" ]; then
  step "npm ci (Broker.Tests/Interop/node)"
  (cd "$NODE_INTEROP_DIR" && quiet npm ci --no-audit --no-fund --loglevel=error)
  echo "$lock_hash" >"$stamp"
fi

# ---- tests --------------------------------------------------------------------------------------

rm -rf "$RESULTS_DIR"
mkdir -p "$RESULTS_DIR"

step "dotnet test Broker.sln -c Release"
set +e
dotnet test Broker.sln -c Release \
  --results-directory "$RESULTS_DIR" \
  --logger "trx;LogFilePrefix=tests" \
  --logger "console;verbosity=normal"
test_status=$?
set -e

# Sum the <Counters .../> of every TRX file (one per test project). NUnit's ignored and explicit
# tests are written as outcome NotExecuted: counted in total and notExecuted, not in executed.
shopt -s nullglob
trx_files=("$RESULTS_DIR"/*.trx)
shopt -u nullglob
total=0 executed=0 passed=0 failed=0 not_executed=0
if [ ${#trx_files[@]} -gt 0 ]; then
  read -r total executed passed failed not_executed < <(
    awk '
      function attr(name,   m) {
        if (match($0, " " name "=\"[0-9]+\"")) {
          m = substr($0, RSTART, RLENGTH); gsub(/[^0-9]/, "", m); return m + 0
        }
        return 0
      }
      /<Counters / {
        total += attr("total"); executed += attr("executed"); passed += attr("passed")
        failed += attr("failed") + attr("error") + attr("timeout") + attr("aborted")
        notexec += attr("notExecuted")
      }
      END { print total + 0, executed + 0, passed + 0, failed + 0, notexec + 0 }
    ' "${trx_files[@]}"
  )
fi

skipped=$((total - executed))
if [ "$not_executed" -gt "$skipped" ]; then
  skipped=$not_executed
fi

status=0
if [ "$test_status" -ne 0 ]; then
  echo "test.sh: dotnet test exited with status $test_status" >&2
  status=1
fi
if [ ${#trx_files[@]} -eq 0 ]; then
  echo "test.sh: no TRX file was written to $RESULTS_DIR (did the build fail?)" >&2
  status=1
elif [ "$failed" -gt 0 ]; then
  status=1
elif [ "$test_status" -ne 0 ]; then
  echo "test.sh: no test failed, yet dotnet test did: the run was aborted (see 'The active test run was aborted' above for the reason); the counts below are of the tests that ran before it" >&2
elif [ $((passed + failed)) -eq 0 ]; then
  echo "test.sh: no test ran" >&2
  status=1
fi

# Name the failed tests, with the first lines of their messages, just above the summary line, so that
# the end of a CI log says what failed.
if [ "$failed" -gt 0 ] && [ ${#trx_files[@]} -gt 0 ]; then
  /usr/bin/python3 - "${trx_files[@]}" <<'PY' || true
import sys, xml.etree.ElementTree as ET
ns = {"t": "http://microsoft.com/schemas/VisualStudio/TeamTest/2010"}
shown = 0
for path in sys.argv[1:]:
    for r in ET.parse(path).getroot().iterfind(".//t:UnitTestResult", ns):
        if r.get("outcome") in ("Passed", "NotExecuted", "Inconclusive"):
            continue
        shown += 1
        if shown > 20:
            print("FAILED ... (more in the TRX file)")
            sys.exit(0)
        print(f"FAILED {r.get('testName')} ({r.get('outcome')}, {r.get('duration')})")
        message = r.find("./t:Output/t:ErrorInfo/t:Message", ns)
        trace = r.find("./t:Output/t:ErrorInfo/t:StackTrace", ns)
        for text, limit in ((message, 12), (trace, 6)):
            if text is not None and text.text:
                for line in text.text.strip().splitlines()[:limit]:
                    print("    " + line)
PY
fi

summary="tests: $passed passed, $failed failed"
if [ "$skipped" -gt 0 ]; then
  summary="$summary, $skipped skipped"
fi
echo "$summary"
exit "$status"
