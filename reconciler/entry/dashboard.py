"""`meshctl dashboard` (added to meshctl by reconciler/entry): open the pool's web
dashboard in a browser through a local proxy (plain HTTP on 127.0.0.1, mutual TLS with
this device's certificate to the control plane; see reconciler/controlplane/dashproxy.py)."""

from __future__ import annotations

import typer

from meshctl.context import CliError, friendly, home


@friendly
def dashboard(
    port: int = typer.Option(8090, "--port", help="Local port for the browser (127.0.0.1)."),
    pool: str | None = typer.Option(None, "--pool", help="Pool (default: this device's only one)."),
    control_plane: str | None = typer.Option(
        None, "--control-plane", help="HOST:PORT (default: this device's control plane)."
    ),
    open_browser: bool = typer.Option(False, "--open", help="Open it in the default browser."),
) -> None:
    """Serve the pool's web dashboard on http://127.0.0.1:PORT (Ctrl+C stops it)."""
    import webbrowser

    import uvicorn

    from meshctl.render import console
    from reconciler.controlplane.dashproxy import ProxyError, create_proxy, upstream_for

    try:
        upstream = upstream_for(home(), pool, control_plane)
    except ProxyError as err:
        raise CliError(str(err)) from err
    url = f"http://127.0.0.1:{port}/dashboard"
    console.print(f"dashboard of pool {upstream.pool_id} at {url} (via {upstream.url})",
                  highlight=False)  # fmt: skip
    if open_browser:
        webbrowser.open(url)
    try:
        uvicorn.run(create_proxy(upstream), host="127.0.0.1", port=port, log_level="warning")
    except KeyboardInterrupt:
        raise typer.Exit(130) from None
