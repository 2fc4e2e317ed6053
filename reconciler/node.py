"""This device's identity on disk: node.key (Ed25519, mode 0600) and node.json."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

from reconciler.certs import files
from reconciler.certs.files import new_seed, save_identity
from reconciler.certs.identity import NodeIdentity
from reconciler.home import Home, HomeError, make_private, write_atomic


class NodeError(Exception):
    """The node is not initialised, or its files cannot be used."""


@dataclass(frozen=True)
class NodeConfig:
    """What `meshctl init` records about this device."""

    node_id: str
    network_id: str
    name: str
    fingerprint: str


def init_node(home: Home, network_id: str, name: str, force: bool = False) -> NodeConfig:
    """Make this device's key and config; refuses to overwrite without force."""
    if home.node_key.exists() and not force:
        existing = load_node_config(home)
        raise NodeError(
            f"{home.root} is already initialised as {existing.node_id} ({existing.name}, key "
            f"{existing.fingerprint}); "
            "use --force to make a new identity (peers will no longer recognise this device)"
        )
    identity = NodeIdentity(new_seed())
    config = NodeConfig(identity.node_id, network_id, name, identity.fingerprint)
    try:
        make_private(home.root)
    except HomeError as err:
        raise NodeError(str(err)) from err
    save_identity(home.node_key, identity)
    write_atomic(home.node_config, json.dumps(asdict(config), indent=2).encode() + b"\n")
    return config


def load_node_config(home: Home) -> NodeConfig:
    """node.json; NodeError when `meshctl init` has not run."""
    try:
        raw = json.loads(home.node_config.read_text())
        return NodeConfig(**{k: str(raw[k]) for k in NodeConfig.__dataclass_fields__})
    except FileNotFoundError as err:
        raise NodeError(f"{home.root} is not initialised: run `meshctl init` first") from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise NodeError(f"{home.node_config} is unreadable: {err}") from err


def load_identity(home: Home) -> NodeIdentity:
    """The node's private key; NodeError when missing or unreadable."""
    try:
        return files.load_identity(home.node_key)
    except FileNotFoundError as err:
        raise NodeError(f"{home.root} is not initialised: run `meshctl init` first") from err
    except (OSError, ValueError) as err:
        raise NodeError(f"{home.node_key} is unreadable: {err}") from err
