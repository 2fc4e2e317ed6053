"""`mesh pool-info`: what device 2 needs, as KEY=value lines (the `.pool-info` file)."""

from __future__ import annotations

import typer

from manifests import Pool
from meshctl.admin_cmd import admin_pool
from meshctl.agentops import interface_report
from meshctl.context import CliError, friendly, home, open_store
from meshctl.render import emit
from reconciler.node import load_node_config
from reconciler.store_admin import issue_token

TOKEN_TTL = 24 * 3600.0


def lan_address(pool: Pool) -> str:
    """The address other devices reach this one at (the beacon interface's)."""
    report = interface_report(pool.spec.discovery)
    if "address" not in report:
        raise CliError(str(report.get("addressError", "no LAN address")))
    return str(report["address"])


def control_plane_port() -> int | None:
    try:
        return int((home().root / "control-plane.port").read_text().strip())
    except (OSError, ValueError):
        return None


@friendly
def pool_info(
    name: str | None = typer.Option(
        None, "--name", help="Pool name (default: the one administered)."
    ),
    relay_port: int | None = typer.Option(
        None, "--relay-port", help="Port of a relay running here."
    ),
    token: bool = typer.Option(
        False, "--token", help="Also make a join token (24h, single-use) and include it."
    ),
    token_usages: int = typer.Option(
        1, "--token-usages", min=1, help="How many devices the token admits (with --token)."
    ),
) -> None:
    """Print the pool's credentials for other devices (POOL_ID=..., POOL_ROOT_PUBKEY=...)."""
    node = load_node_config(home())
    with open_store() as store:
        pool = admin_pool(store, name)
        lines = {
            "POOL_ID": pool.status.pool_id,
            "POOL_ROOT_PUBKEY": pool.status.root_fingerprint,
            "POOL_NAME": pool.metadata.name,
            "NETWORK_ID": node.network_id,
            "ADMIN_ADDRESS": lan_address(pool),
            "RING_WEIGHTING": pool.spec.ring.weighting,
            "SHARD_COLUMNS": str(pool.spec.ring.shard_columns),
        }
        port = control_plane_port()
        if port is not None:
            lines["CONTROL_PLANE"] = f"{lines['ADMIN_ADDRESS']}:{port}"
        if relay_port is not None:
            lines["RELAY"] = f"{lines['ADMIN_ADDRESS']}:{relay_port}"
        if token:
            lines["JOIN_TOKEN"], _ = issue_token(
                store, pool.metadata.name, TOKEN_TTL, token_usages, "mesh pool-info"
            )
    emit("\n".join(f"{key}={value}" for key, value in lines.items() if value is not None))
