"""The network facts `meshctl doctor` and `mesh pool-info` need: which interfaces this
device has, which ones beacons use for a pool's discovery settings, and the address
other devices reach it at. Served by the agent's local API (the agent's own view, with
its environment) and, when no agent runs, computed the same way in the CLI's process
through the composition root (reconciler/entry)."""

from __future__ import annotations

import os
from typing import Any

from manifests.pool import DiscoverySpec
from reconciler.drivers.netif import (
    EXCLUDE_ENV,
    INCLUDE_ENV,
    OVERRIDE_ENV,
    VIRTUAL_BRIDGES,
    InterfaceError,
    ipv4_interfaces,
    resolve_interface,
)
from reconciler.runtime.beaconsockets import choose_interfaces, effective_discovery


def interface_report(discovery: DiscoverySpec) -> dict[str, Any]:
    """A JSON document: ``interfaces`` (name -> IPv4 address, the up ones), ``chosen``
    (the beacon interfaces, ``[{name, address}]``) or ``chooseError``, ``why`` they were
    chosen, the effective ``group`` and ``port``, and ``address`` (where other devices
    reach this one) or ``addressError``."""
    effective = effective_discovery(discovery)
    report: dict[str, Any] = {
        "interfaces": dict(sorted(ipv4_interfaces().items())),
        "group": effective.group,
        "port": effective.port,
        "why": _why_interfaces(effective.interface),
    }
    try:
        chosen = choose_interfaces(effective)
        report["chosen"] = [{"name": c.name, "address": c.address} for c in chosen]
    except InterfaceError as err:
        report["chooseError"] = str(err)
    try:
        report["address"] = resolve_interface(discovery.interface, discovery.group).address
    except InterfaceError as err:
        report["addressError"] = str(err)
    return report


def _why_interfaces(wanted: str) -> str:
    if os.environ.get(OVERRIDE_ENV):
        return f"pinned by ${OVERRIDE_ENV}"
    if wanted != "auto":
        return f"the Pool's discovery.interface is {wanted!r}"
    return (
        "auto: every up, multicast-capable interface but loopback and virtual bridges "
        f"({', '.join(VIRTUAL_BRIDGES)}); change with discovery.includeInterfaces/"
        f"excludeInterfaces or ${INCLUDE_ENV}/${EXCLUDE_ENV}"
    )
