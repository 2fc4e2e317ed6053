#!/usr/bin/env bash
# Device 1 (the admin): relay, control plane, identity, pool, credentials, agent.
#
# Environment: NETWORK_ID (test-network), DEVICE_NAME (<hostname>-admin), POOL_NAME
# (test-pool), RELAY_PORT (4001), CONTROL_PLANE_PORT (8080; the first free port of
# 8080-8179 is used), MESHNET_HOME (~/.meshnet), POOL_INFO (./.pool-info).
# Ctrl+C stops the agent, the control plane and the relay.
set -euo pipefail
umask 077  # the home, state.db (token keys) and .pool-info (a join token) stay private

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
NETWORK_ID="${NETWORK_ID:-test-network}"
DEVICE_NAME="${DEVICE_NAME:-$(hostname -s 2>/dev/null || echo device1)-admin}"
POOL_NAME="${POOL_NAME:-test-pool}"
RELAY_PORT="${RELAY_PORT:-4001}"
CONTROL_PLANE_PORT="${CONTROL_PLANE_PORT:-8080}"
export MESHNET_HOME="${MESHNET_HOME:-$HOME/.meshnet}"
POOL_INFO="${POOL_INFO:-$PWD/.pool-info}"
LOGS="$MESHNET_HOME/logs"
PIDS=()

say() { printf '==> %s\n' "$*"; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

stop_all() {
    trap - INT TERM EXIT
    if [ "${#PIDS[@]}" -gt 0 ]; then
        say "Stopping the control plane and the relay"
        kill -TERM "${PIDS[@]}" 2>/dev/null || true
        wait "${PIDS[@]}" 2>/dev/null || true
    fi
}
trap stop_all INT TERM EXIT

# 1. the project installed
if ! command -v mesh >/dev/null 2>&1; then
    if [ -x "$HOME/.local/bin/mesh" ]; then
        export PATH="$HOME/.local/bin:$PATH"
    else
        say "meshnet is not installed: running install.sh"
        "$HERE/install.sh"
        export PATH="$HOME/.local/bin:$PATH"
    fi
fi
for tool in mesh meshctl mesh-relay mesh-control-plane; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool not found on PATH (run ./install.sh)"
done
mkdir -p "$MESHNET_HOME" && chmod 700 "$MESHNET_HOME"
mkdir -p "$LOGS"

# 2. identity and pool (kept across runs)
if [ ! -f "$MESHNET_HOME/node.json" ]; then
    say "Initialising this device as $DEVICE_NAME on network $NETWORK_ID"
    mesh init --network-id "$NETWORK_ID" --name "$DEVICE_NAME" >/dev/null
fi
if ! mesh pool-list -o json | grep -q "\"name\": \"$POOL_NAME\""; then
    say "Creating pool $POOL_NAME"
    mesh pool-create --name "$POOL_NAME" >/dev/null
fi

# 3. relay and control plane in the background
say "Starting the relay on port $RELAY_PORT (logs: $LOGS/relay.log)"
mesh-relay --port "$RELAY_PORT" >>"$LOGS/relay.log" 2>&1 &
PIDS+=("$!")
rm -f "$MESHNET_HOME/control-plane.port"
say "Starting the control plane from port $CONTROL_PLANE_PORT (logs: $LOGS/control-plane.log)"
mesh-control-plane --port "$CONTROL_PLANE_PORT" >>"$LOGS/control-plane.log" 2>&1 &
PIDS+=("$!")
for _ in $(seq 1 100); do
    [ -s "$MESHNET_HOME/control-plane.port" ] && break
    kill -0 "${PIDS[1]}" 2>/dev/null || die "the control plane did not start (see $LOGS/control-plane.log)"
    sleep 0.1
done
[ -s "$MESHNET_HOME/control-plane.port" ] || die "the control plane did not report its port"

# 4. credentials for device 2
rm -f "$POOL_INFO.tmp"
mesh pool-info --name "$POOL_NAME" --relay-port "$RELAY_PORT" --token >"$POOL_INFO.tmp"
chmod 600 "$POOL_INFO.tmp"
mv "$POOL_INFO.tmp" "$POOL_INFO"
echo
echo "==================== share with device 2 ===================="
sed 's/^/  /' "$POOL_INFO"
echo "============================================================="
echo "Written to $POOL_INFO (copy it next to device2.sh on device 2)."
echo

# 5. the agent in the foreground
say "Starting the agent (Ctrl+C stops everything)"
set +e
mesh start
status=$?
set -e
exit "$status"
