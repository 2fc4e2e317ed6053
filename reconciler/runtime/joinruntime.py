"""A device asking to join a pool: join requests by beacon, retried with backoff until
the admin answers; on approval the certificate is stored and the Pool object made."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from pathlib import Path
from typing import Any

from manifests import Member, Pool
from manifests.pool import DiscoverySpec
from reconciler import material, observed
from reconciler.annotations import (  # Member annotations: where the pool's services are
    CONTROL_PLANE_ANNOTATION,
    RELAYS_ANNOTATION,
    SHARD_COLUMNS_ANNOTATION,
    WEIGHTING_ANNOTATION,
)
from reconciler.beacon.config import Advert, BeaconConfig
from reconciler.beacon.events import JoinAnswered
from reconciler.beacon.machine import BeaconProtocol
from reconciler.certs.errors import CertError
from reconciler.certs.member import verify_member_certificate
from reconciler.certs.root import TrustAnchor
from reconciler.context import DeviceContext, cores, memory_bytes
from reconciler.controllers.pool import JOINED_VIA
from reconciler.runtime.beaconsockets import (
    BeaconSockets,
    choose_interfaces,
    destinations,
    effective_discovery,
    open_beacon_sockets,
)

log = logging.getLogger("meshnet.join")

PUBLISH_SECONDS = 0.5
HTTP_FALLBACK_AFTER = 5.0  # seconds of unanswered beacons before trying the control plane
HTTP_RETRY_SECONDS = 10.0


class JoinError(Exception):
    """The join cannot start (unreadable token file, bad interface)."""


def read_token(member: Member) -> str | None:
    if member.spec.token_file is None:
        return None
    path = Path(member.spec.token_file).expanduser()
    try:
        return path.read_text().strip() or None
    except OSError as err:
        raise JoinError(f"cannot read token file {path}: {err.strerror or err}") from err


class JoinRuntime:
    """Joining one pool, for one Member object of this device."""

    def __init__(self, ctx: DeviceContext, member: Member, discovery: DiscoverySpec) -> None:
        self.ctx, self.member = ctx, member
        self.discovery = effective_discovery(discovery)
        self.generation = member.metadata.generation
        self._beacon: BeaconProtocol | None = None
        self._sockets: BeaconSockets | None = None
        self._publisher: asyncio.Task[None] | None = None
        self._cache: dict[str, Any] = {}
        self.joined = False
        self.http_error = ""
        self._fallback: asyncio.Task[None] | None = None
        self.answered = asyncio.Event()
        """Set each time an answer of the admin (by beacon or the control plane) has
        been handled; whoever waits for the join clears it."""

    async def start(self) -> None:
        spec = self.member.spec
        token = read_token(self.member)
        interfaces = choose_interfaces(self.discovery)
        interface = interfaces[0]
        log.info(
            "asking to join pool %s (%s) by beacon on %s",
            spec.pool.name,
            spec.pool.id,
            ", ".join(i.name for i in interfaces),
        )
        name = spec.device_name or self.ctx.node.name
        advert = Advert(
            name, interface.address, 0, memory_bytes(spec.capacity.memory_bytes), cores()
        )
        config = BeaconConfig(
            spec.pool.id, destinations(self.discovery), interval=self.discovery.beacon_interval
        )
        self._beacon = BeaconProtocol(config, self.ctx.identity, advert, random.Random())
        self._beacon.join(
            time.time(), token=token, pinned_root_fingerprint=spec.pool.root_fingerprint
        )
        self._sockets = await open_beacon_sockets(
            self.discovery, interfaces, self._beacon, self._on_event
        )
        self._publish()  # "waiting" is visible as soon as the join starts
        loop = asyncio.get_running_loop()
        self._publisher = loop.create_task(
            self._publish_loop(), name=f"join-{self.member.metadata.name}"
        )
        control_plane = self.member.metadata.annotations.get(CONTROL_PLANE_ANNOTATION)
        if control_plane and token:
            self._fallback = loop.create_task(
                self._http_fallback(control_plane, token, name), name="join-http"
            )

    async def _http_fallback(self, address: str, token: str, device_name: str) -> None:
        """No beacon answer after a while: ask the control plane over HTTPS (pinned root)."""
        from reconciler.drivers.joinclient import http_join

        pool = self.member.spec.pool
        await asyncio.sleep(HTTP_FALLBACK_AFTER)
        while not self.joined:
            try:
                cert, root = await asyncio.to_thread(
                    http_join, address, pool.id, pool.root_fingerprint, self.ctx.identity,
                    device_name, token, time.time(),
                )  # fmt: skip
            except Exception as err:  # httpx, TLS, pinning: all mean "not this time"
                self.http_error = str(err)
                log.info("join through the control plane at %s failed: %s", address, err)
            else:
                if not self.joined:
                    self._joined(cert, root, f"through the control plane at {address}")
                    self._publish()
                    self.answered.set()
                return
            await asyncio.sleep(HTTP_RETRY_SECONDS)

    async def stop(self) -> None:
        if self._publisher is not None:
            self._publisher.cancel()
        if self._fallback is not None:
            self._fallback.cancel()
        if self._sockets is not None:
            self._sockets.close()

    def _on_event(self, event: object) -> None:
        if not isinstance(event, JoinAnswered):
            return
        if event.status == "approved" and event.cert_der and not self.joined:
            self._joined(event.cert_der, event.root_cert_der, f"by beacon: {event.reason}")
        self._publish()
        self.answered.set()

    def _joined(self, cert_der: bytes, root_der: bytes, how: str) -> None:
        pool_ref = self.member.spec.pool
        problem = self._refusal(cert_der, root_der)
        if problem is not None:
            log.error("not keeping the admin's answer for pool %s: %s", pool_ref.id, problem)
            return
        info = material.save_joined(self.ctx.home, pool_ref.name, cert_der, root_der)
        self.joined = True
        store = self.ctx.store
        if store.get("Pool", pool_ref.name) is None:
            metadata = {
                "name": pool_ref.name,
                "annotations": {JOINED_VIA: self.member.metadata.name},
            }
            pool = Pool.model_validate({"metadata": metadata, "spec": self._services()})
            store.apply(pool)
        store.record_event("Member", self.member.metadata.name, "Normal", "CertificateIssued",
                           f"joined pool {info.pool_id} {how}")  # fmt: skip
        log.info("joined pool %s (%s)", pool_ref.name, info.pool_id)

    def _refusal(self, cert_der: bytes, root_der: bytes) -> str | None:
        """Why an answer must not be kept (checked before anything is written), or None:
        the root must be the pinned one and the certificate ours, issued by it."""
        pool_ref = self.member.spec.pool
        try:
            anchor = TrustAnchor.from_cert_der(root_der, pool_ref.root_fingerprint, pool_ref.id)
            cert = verify_member_certificate(cert_der, anchor, time.time())
        except CertError as err:
            return str(err)
        if cert.node_id != self.ctx.node_id:
            return f"the certificate is for {cert.node_id}, not this device"
        return None

    def _services(self) -> dict[str, Any]:
        notes = self.member.metadata.annotations
        spec: dict[str, Any] = {}
        if notes.get(CONTROL_PLANE_ANNOTATION):
            spec["controlPlane"] = notes[CONTROL_PLANE_ANNOTATION]
        if notes.get(RELAYS_ANNOTATION):
            spec["relays"] = [r for r in notes[RELAYS_ANNOTATION].split(",") if r]
        ring: dict[str, Any] = {}
        if notes.get(WEIGHTING_ANNOTATION) in ("equal", "memory"):
            ring["weighting"] = notes[WEIGHTING_ANNOTATION]
        if notes.get(SHARD_COLUMNS_ANNOTATION, "").isdigit():
            ring["shardColumns"] = int(notes[SHARD_COLUMNS_ANNOTATION])
        if ring:
            spec["ring"] = ring
        return spec

    async def _publish_loop(self) -> None:
        while True:
            self._publish()
            await asyncio.sleep(PUBLISH_SECONDS)

    def _publish(self) -> None:
        if self._beacon is None:
            return
        status = self._beacon.join_status
        value = {
            "state": "joined" if self.joined else (status.state if status else "starting"),
            "reason": (status.reason if status else "")
            + (f"; control plane: {self.http_error}" if self.http_error else ""),
            "attempts": status.attempts if status else 0,
        }
        observed.publish(
            self.ctx.store, observed.join_key(self.member.metadata.name), value, self._cache
        )
