"""Logging for the long-running processes: stderr and a file under logs/."""

from __future__ import annotations

import logging
import logging.handlers
import sys

from reconciler.home import Home, HomeError, make_private

FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"


def setup_logging(home: Home, name: str, level: str = "INFO") -> None:
    """Log to stderr and $MESHNET_HOME/logs/<name>.log (rotated at 10 MB)."""
    try:
        make_private(home.root)  # every start: the home and its secrets stay 0700
    except HomeError as err:
        print(f"error: {err}", file=sys.stderr, flush=True)
        raise SystemExit(1) from err
    home.logs.mkdir(parents=True, exist_ok=True)
    root = logging.getLogger()
    root.handlers.clear()
    root.setLevel(level.upper())
    formatter = logging.Formatter(FORMAT)
    for handler in (
        logging.StreamHandler(sys.stderr),
        logging.handlers.RotatingFileHandler(
            home.log_file(name), maxBytes=10 * 2**20, backupCount=3
        ),
    ):
        handler.setFormatter(formatter)
        root.addHandler(handler)
