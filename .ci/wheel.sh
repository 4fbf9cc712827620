#!/usr/bin/env bash
# CI wheel step: build the sdist and the wheel as a release would, install the wheel into a clean virtual
# environment and run the installed `source-sendgrid` command as a `pip install` user would:
# - `python -m build` makes the sdist and then the wheel from the sdist, so a file the sdist leaves out fails here;
# - the clean venv gets the locked runtime dependencies (requirements/runtime.txt, hash-checked), then the wheel
#   without dependencies, then `pip check`: the wheel's declared ranges must hold for the locked versions;
# - from outside the source tree (so only the installed package can be imported): spec, check with the emulator's
#   key (SUCCEEDED) and a wrong key (FAILED), and discover (the same catalog as the source tree's), against the
#   SendGrid emulator on 127.0.0.1.
# Usage: .ci/wheel.sh   (uses .venv from bin/_venv for `build` and the emulator)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO="$PWD"
started=$SECONDS

say() { echo "== wheel: $*" >&2; }
fail() {
  echo "" >&2
  echo "WHEEL STEP FAILED: $*" >&2
  exit 1
}

source bin/_venv
VENV="$(cd "$VENV" && pwd)"  # absolute: the checks below run from another folder
WORK=$(mktemp -d "${TMPDIR:-/tmp}/source-sendgrid-wheel.XXXXXX")
emulator_pid=""
cleanup() {
  local status=$?
  if [ -n "$emulator_pid" ]; then
    kill "$emulator_pid" 2>/dev/null || true
    wait "$emulator_pid" 2>/dev/null || true
  fi
  rm -rf "$WORK"
  exit "$status"
}
trap cleanup EXIT

# --- build -------------------------------------------------------------------------------------------
# From a copy of what a clone would hold (tracked and new files, nothing git ignores): setuptools adds every file
# that a stale source_sendgrid.egg-info in the tree lists, which would hide a file missing from package-data.
# No isolation: the build backend is the locked setuptools in .venv, not whatever PyPI has today.
mkdir "$WORK/src"
git ls-files -z --cached --others --exclude-standard \
  | tar -C "$REPO" --null --files-from - --ignore-failed-read -c 2>/dev/null | tar -C "$WORK/src" -x
"$VENV/bin/python" -m build --no-isolation --outdir "$WORK/dist" "$WORK/src" >"$WORK/build.log" 2>&1 \
  || { tail -30 "$WORK/build.log" >&2; fail "python -m build failed (log above)."; }
sdist=$(ls "$WORK"/dist/*.tar.gz)
wheel=$(ls "$WORK"/dist/*.whl)
say "built $(basename "$sdist") and $(basename "$wheel") in $(( SECONDS - started ))s"

# --- a clean venv: locked dependencies, then the wheel -----------------------------------------------
install_started=$SECONDS
PY="${PYTHON:-python3}"
"$PY" -m venv "$WORK/venv"
{
  "$WORK/venv/bin/python" -m pip install --quiet --require-hashes -r requirements/pip.txt &&
  "$WORK/venv/bin/python" -m pip install --quiet --require-hashes -r requirements/runtime.txt &&
  "$WORK/venv/bin/python" -m pip install --quiet --no-deps "$wheel"
} >"$WORK/install.log" 2>&1 || { tail -30 "$WORK/install.log" >&2; fail "installing the wheel into a clean venv failed."; }
"$WORK/venv/bin/python" -m pip check >&2 \
  || fail "the wheel's dependencies do not hold with requirements/runtime.txt (pip check above): re-run bin/lock."
say "installed into a clean venv in $(( SECONDS - install_started ))s"

# --- run the installed command against the emulator ---------------------------------------------------
"$VENV/bin/python" -m sendgrid_emulator --port 0 --size 5 --seed 7 >"$WORK/emulator.out" 2>"$WORK/emulator.err" &
emulator_pid=$!
for _ in $(seq 100); do
  [ -s "$WORK/emulator.out" ] && break
  kill -0 "$emulator_pid" 2>/dev/null || { cat "$WORK/emulator.err" >&2; fail "the emulator did not start."; }
  sleep 0.1
done
[ -s "$WORK/emulator.out" ] || fail "the emulator did not say where it listens within 10 s."

cd "$WORK"
"$WORK/venv/bin/python" - "$REPO" "$VENV/bin/python" "$WORK/emulator.out" "$WORK/venv/bin/source-sendgrid" <<'EOF' \
  || fail "the installed wheel did not behave (above)."
"""spec, check (good and bad key) and discover through the installed command; discover's catalog must equal the
source tree's, which proves the wheel holds every schema file."""
import json, subprocess, sys
from pathlib import Path

import source_sendgrid

repo, tree_python, emulator_out, installed = Path(sys.argv[1]), sys.argv[2], Path(sys.argv[3]), [sys.argv[4]]
if repo in Path(source_sendgrid.__file__).resolve().parents:
    sys.exit(f"source_sendgrid was imported from the source tree ({source_sendgrid.__file__}), not from the wheel")
emulator = json.loads(emulator_out.read_text().splitlines()[0])


def run(command, *args, api_key=None):
    if api_key is not None:
        config = {"api_key": api_key, "api_base_url": emulator["url"], "start_date": "2009-01-01T00:00:00Z"}
        Path("config.json").write_text(json.dumps(config))
        args = (*args, "--config", str(Path("config.json").resolve()))
    done = subprocess.run([*command, *args], capture_output=True, text=True, timeout=120)
    messages = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    return done.returncode, messages, (done.stderr or done.stdout)[-2000:]


def one(messages, kind):
    found = [message for message in messages if message["type"] == kind]
    if len(found) != 1:
        sys.exit(f"expected one {kind} message, got {[message['type'] for message in messages]}")
    return found[0]


code, messages, stderr = run(installed, "spec")
spec = one(messages, "SPEC")["spec"]
assert code == 0 and "api_key" in spec["connectionSpecification"]["properties"], (code, stderr)
code, messages, stderr = run(installed, "check", api_key=emulator["api_key"])
status = one(messages, "CONNECTION_STATUS")["connectionStatus"]
assert code == 0 and status["status"] == "SUCCEEDED", (code, status, stderr)
code, messages, stderr = run(installed, "check", api_key="SG.not-the-emulators-key")
status = one(messages, "CONNECTION_STATUS")["connectionStatus"]
assert status["status"] == "FAILED", (status, stderr)
code, messages, stderr = run(installed, "discover", api_key=emulator["api_key"])
assert code == 0, (code, stderr)
streams = one(messages, "CATALOG")["catalog"]["streams"]
code, messages, stderr = run([tree_python, str(repo / "main.py")], "discover", api_key=emulator["api_key"])
assert code == 0, (code, stderr)
assert streams == one(messages, "CATALOG")["catalog"]["streams"], "the wheel's catalog differs from the source tree's"
print(f"== wheel: spec, check (SUCCEEDED, FAILED), discover ({len(streams)} streams, as from the source tree): ok",
      file=sys.stderr)
EOF
say "whole step $(( SECONDS - started ))s"
