#!/usr/bin/env bash
# Device 2 (a member): identity, certificate from device 1 by LAN beacon (or through
# its control plane), then the agent.
#
# Reads .pool-info (next to this script or in the current folder) when present,
# otherwise asks for Pool ID, Pool Root Public Key, Pool Name, Network ID and token.
# Environment: DEVICE_NAME (<hostname>-member), MESHNET_HOME (~/.meshnet), POOL_INFO,
# JOIN_TIMEOUT (60). Ctrl+C stops the agent.
set -euo pipefail
umask 077  # the home and the join token stay private

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
DEVICE_NAME="${DEVICE_NAME:-$(hostname -s 2>/dev/null || echo device2)-member}"
export MESHNET_HOME="${MESHNET_HOME:-$HOME/.meshnet}"
JOIN_TIMEOUT="${JOIN_TIMEOUT:-60}"

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

if ! command -v mesh >/dev/null 2>&1; then
    if [ -x "$HOME/.local/bin/mesh" ]; then
        export PATH="$HOME/.local/bin:$PATH"
    else
        say "meshnet is not installed: running install.sh"
        "$HERE/install.sh"
        export PATH="$HOME/.local/bin:$PATH"
    fi
fi
command -v mesh >/dev/null 2>&1 || die "mesh not found on PATH (run ./install.sh)"

POOL_INFO="${POOL_INFO:-}"
if [ -z "$POOL_INFO" ]; then
    for candidate in "$PWD/.pool-info" "$HERE/.pool-info"; do
        if [ -f "$candidate" ]; then POOL_INFO="$candidate"; break; fi
    done
fi

POOL_ID="${POOL_ID:-}" POOL_ROOT_PUBKEY="${POOL_ROOT_PUBKEY:-}" JOIN_TOKEN="${JOIN_TOKEN:-}"
POOL_NAME="${POOL_NAME:-}" NETWORK_ID="${NETWORK_ID:-}" CONTROL_PLANE="${CONTROL_PLANE:-}"
RELAY="${RELAY:-}" RING_WEIGHTING="${RING_WEIGHTING:-}" SHARD_COLUMNS="${SHARD_COLUMNS:-}"
if [ -n "$POOL_INFO" ]; then
    mode="$(stat -c %a "$POOL_INFO" 2>/dev/null || echo 600)"
    case "$mode" in
        *00) ;;
        *) die "$POOL_INFO is readable by group or others (mode $mode) and holds a join token; fix it with: chmod 600 $POOL_INFO" ;;
    esac
    say "Reading pool credentials from $POOL_INFO"
    while IFS='=' read -r key value; do
        case "$key" in
            POOL_ID|POOL_ROOT_PUBKEY|POOL_NAME|NETWORK_ID|JOIN_TOKEN|CONTROL_PLANE|RELAY|RING_WEIGHTING|SHARD_COLUMNS)
                [ -n "${!key}" ] || printf -v "$key" '%s' "$value" ;;
        esac
    done <"$POOL_INFO"
fi

ask() {  # ask VAR "prompt" default
    local var="$1" prompt="$2" default="${3:-}" answer
    [ -n "${!var}" ] && return
    [ -t 0 ] || { [ -n "$default" ] && { printf -v "$var" '%s' "$default"; return; }; die "$var is not set and there is no terminal to ask (copy .pool-info here)"; }
    read -r -p "$prompt${default:+ [$default]}: " answer
    printf -v "$var" '%s' "${answer:-$default}"
}
ask POOL_ID "Pool ID"
ask POOL_ROOT_PUBKEY "Pool Root Public Key"
ask POOL_NAME "Pool Name" "test-pool"
ask NETWORK_ID "Network ID" "test-network"
ask JOIN_TOKEN "Join token (from device 1; empty if the pool uses approval)" "none"
[ "$JOIN_TOKEN" = "none" ] && JOIN_TOKEN=""
[ -n "$POOL_ID" ] && [ -n "$POOL_ROOT_PUBKEY" ] || die "Pool ID and Pool Root Public Key are required"

if [ ! -f "$MESHNET_HOME/node.json" ]; then
    say "Initialising this device as $DEVICE_NAME on network $NETWORK_ID"
    mesh init --network-id "$NETWORK_ID" --name "$DEVICE_NAME" >/dev/null
fi

say "Requesting a certificate from the pool admin (up to ${JOIN_TIMEOUT}s)"
join=(mesh pool-join --pool-id "$POOL_ID" --pool-root-pubkey "$POOL_ROOT_PUBKEY" --name "$POOL_NAME" --timeout "$JOIN_TIMEOUT")
# the token goes through the environment, never argv (argv is visible in /proc)
if [ -n "$JOIN_TOKEN" ]; then export MESHNET_JOIN_TOKEN="$JOIN_TOKEN"; fi
[ -n "$CONTROL_PLANE" ] && join+=(--control-plane "$CONTROL_PLANE")
[ -n "$RELAY" ] && join+=(--relay "$RELAY")
[ -n "$RING_WEIGHTING" ] && join+=(--weighting "$RING_WEIGHTING")
[ -n "$SHARD_COLUMNS" ] && join+=(--shard-columns "$SHARD_COLUMNS")
"${join[@]}" || exit 1
unset MESHNET_JOIN_TOKEN JOIN_TOKEN

say "Starting the agent (Ctrl+C stops it)"
set +e
mesh start
status=$?
set -e
exit "$status"
