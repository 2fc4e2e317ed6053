"""BeaconProtocol: the sans-IO beacon machine (aioquic-style API).

The driver owns the UDP socket and the clock. It calls ``receive_datagram(data,
addr, now)`` for each datagram, sends what ``datagrams_to_send(now)`` returns, arms
a timer for ``get_timer()`` and calls ``handle_timer(now)`` when it fires, and
drains ``next_event()``. Nothing here raises on network input: a datagram that fails
a check is dropped, counted in ``drops`` by reason and reported as
``DatagramDropped``.

Checks, in order: framing and size, body, pool ID, the signer's key (certificate,
joiner key or pool root), the signature, the certificate chain and revocation,
timestamp within ``max_skew``, then the per-sender sequence number (replay window).

Sequence numbers are ``max(last + 1, now in ms)``: increasing per sender even across
restarts, as long as the sender's clock does not go back.
"""

from __future__ import annotations

import random
from collections import Counter, deque
from collections.abc import Collection

from reconciler.beacon import handlers
from reconciler.beacon.config import Advert, BeaconConfig, Membership
from reconciler.beacon.events import Addr, DatagramDropped, DropReason, Event, JoinAnswered
from reconciler.beacon.handlers import Drop
from reconciler.beacon.joining import JoinClient, JoinStatus
from reconciler.beacon.messages import (
    MESSAGE_TYPES,
    Common,
    JoinRequest,
    JoinResponse,
    Message,
    Presence,
    clip_utf8,
    encode_body,
)
from reconciler.beacon.replay import ReplayGuard
from reconciler.beacon.shield import JoinShield
from reconciler.beacon.wire import seal
from reconciler.certs.admission import JoinClaim
from reconciler.certs.cache import CertCache
from reconciler.certs.desk import AdminDesk, Answer, PendingJoin
from reconciler.certs.errors import CertificateError
from reconciler.certs.identity import NodeIdentity
from reconciler.certs.member import (
    needs_renewal,
    sign_member_certificate,
    verify_member_certificate,
)
from reconciler.certs.root import TrustAnchor
from reconciler.codec import DecodeError

MAX_REASON = 100  # bytes of a join answer's reason that travel
_REASONS = frozenset(reason.value for reason in DropReason)


class BeaconProtocol:
    """Presence beacons, join requests and (on the admin) join answers."""

    def __init__(
        self,
        config: BeaconConfig,
        identity: NodeIdentity,
        advert: Advert,
        rng: random.Random,
        *,
        membership: Membership | None = None,
        admin: AdminDesk | None = None,
        revoked: Collection[str] = (),
    ) -> None:
        self.config = config
        self.identity = identity
        self.advert = advert
        self.membership = membership
        self.admin = admin
        self.revoked: frozenset[str] = frozenset(revoked)
        self.drops: Counter[str] = Counter()
        self._rng = rng
        limits = (config.replay_window, config.replay_senders, config.max_skew)
        self._members_guard = ReplayGuard(*limits)  # certificate holders and the root
        self._joiners_guard = ReplayGuard(*limits)  # anyone's fresh key
        self._shield = JoinShield()
        self._certs = CertCache()
        self._events: deque[Event] = deque()
        self._outbox: list[tuple[bytes, Addr]] = []
        self._seq = 0
        self._next_presence: float | None = None
        self._joiner: JoinClient | None = None

    # -- commands from the driver -------------------------------------------------

    def start(self, now: float) -> None:
        """Announce at once (presence if a member)."""
        if self.membership is not None:
            self._send_presence(now)

    def update(self, now: float, advert: Advert) -> None:
        """New advertised facts: announce them at once."""
        self.advert = advert
        if self.membership is not None:
            self._send_presence(now)

    def join(
        self, now: float, token: str | None = None, pinned_root_fingerprint: str | None = None
    ) -> None:
        """Start asking for a certificate; retried with backoff until approved."""
        self._start_join(now, self.advert.name, token, pinned_root_fingerprint, b"")

    def renew(self, now: float) -> None:
        """Ask the admin for a fresh certificate, presenting the current one."""
        if self.membership is None:
            raise RuntimeError("only a member can renew its certificate")
        m = self.membership
        self._start_join(now, m.info.device_name, None, m.anchor.fingerprint, m.cert_der)

    def _renew_due(self, now: float) -> None:
        """Renew by beacon, or, on the admin, sign our own new certificate."""
        if self.admin is None:
            self.renew(now)
            return
        assert self.membership is not None
        m, root = self.membership, self.admin.root
        try:
            der = sign_member_certificate(
                root, self.identity.public_key, m.info.device_name, m.info.role, now,
                self.admin.cert_ttl, self.revoked,
            )  # fmt: skip
        except CertificateError:  # our own key is revoked: let the certificate run out
            return
        info = verify_member_certificate(der, m.anchor, now, self.revoked)
        self._events.append(JoinAnswered("approved", "renewed", der, root.cert_der, info))
        self.set_membership(Membership(m.anchor, der, info), now)

    def _start_join(
        self, now: float, name: str, token: str | None, pinned: str | None, current: bytes
    ) -> None:
        nonce = self._rng.randbytes(16)
        backoff = self.config.join_backoff
        self._joiner = JoinClient(
            self.identity, self.config.pool_id, name, nonce, token, pinned, backoff, current
        )
        self._send_join(now)

    def set_membership(self, membership: Membership, now: float) -> None:
        """Become (or stay) a member with a verified certificate; announce at once."""
        self.membership = membership
        self._send_presence(now)

    def set_revoked(self, fingerprints: Collection[str]) -> None:
        """Replace the set of revoked fingerprints (from the gossiped revocation list)."""
        self.revoked = frozenset(fingerprints)

    def approve(self, name: str, now: float) -> None:
        """(Admin) approve a pending request and answer it at once; LookupError if unknown."""
        self._answer_pending(self._require_admin().approve(name), now)

    def deny(self, name: str, now: float) -> None:
        """(Admin) deny a pending request and answer it at once; LookupError if unknown."""
        self._answer_pending(self._require_admin().deny(name), now)

    @property
    def renewing(self) -> bool:
        """True while a renewal request is outstanding."""
        joiner = self._joiner
        return joiner is not None and bool(joiner.current_cert) and joiner.state != "joined"

    @property
    def join_status(self) -> JoinStatus | None:
        return None if self._joiner is None else self._joiner.status

    # -- sans-IO interface ----------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Addr, now: float) -> None:
        try:
            self._receive(data, addr, now)
        except Drop as drop:
            self._drop(drop.reason, addr, drop.detail)
        except DecodeError as exc:
            known = exc.reason in _REASONS
            self._drop(DropReason(exc.reason) if known else DropReason.GARBAGE, addr, str(exc))

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Addr]]:
        out, self._outbox = self._outbox, []
        return out

    def get_timer(self) -> float | None:
        deadlines = [self._next_presence] if self.membership is not None else []
        if self._joiner is not None and self._joiner.state != "joined":
            deadlines.append(self._joiner.next_attempt_at)
        return min((d for d in deadlines if d is not None), default=None)

    def handle_timer(self, now: float) -> None:
        if self.membership is not None and self._due(self._next_presence, now):
            self._send_presence(now)
            if needs_renewal(self.membership.info, now) and not self.renewing:
                self._renew_due(now)
        joiner = self._joiner
        if (
            joiner is not None
            and joiner.state != "joined"
            and self._due(joiner.next_attempt_at, now)
        ):
            self._send_join(now)

    def next_event(self) -> Event | None:
        return self._events.popleft() if self._events else None

    # -- receiving ----------------------------------------------------------------

    def _receive(self, data: bytes, addr: Addr, now: float) -> None:
        verified = handlers.open_verified(
            data, self.config.pool_id, lambda msg: self._signer_for(msg, addr, len(data), now)
        )
        common, msg, signer = verified.common, verified.message, verified.signer
        guard = self._joiners_guard if isinstance(msg, JoinRequest) else self._members_guard
        self._check_fresh(guard, signer.sender, common, now)
        if isinstance(msg, Presence):
            assert signer.info is not None
            self._events.append(handlers.peer_seen(msg, common, signer.info, addr, now))
        elif isinstance(msg, JoinRequest):
            self._on_join_request(msg, common, addr, now)
        else:
            assert signer.anchor is not None
            self._on_join_response(msg, signer.anchor, now)
        guard.commit(signer.sender, common.seq, common.timestamp)

    def _signer_for(self, msg: Message, addr: Addr, size: int, now: float) -> handlers.Signer:
        """Who must have signed ``msg``; Drop if we cannot or will not accept it."""
        if isinstance(msg, Presence):
            if self.membership is None:
                raise Drop(DropReason.UNEXPECTED, "presence before joining")
            anchor, verify = self.membership.anchor, self._certs.verify
            return handlers.presence_signer(msg, anchor, self.identity, self.revoked, now, verify)
        if isinstance(msg, JoinRequest):
            if self.admin is None:
                raise Drop(DropReason.UNEXPECTED, "join request to a non-admin")
            refused = self._shield.admit(addr[0], size, now)
            if refused is not None:
                raise Drop(DropReason(refused), f"{size} bytes from {addr[0]}")
            return handlers.join_request_signer(msg, self.identity)
        if self._joiner is None or self._joiner.state == "joined":
            raise Drop(DropReason.UNEXPECTED, "join response while not joining")
        return handlers.join_response_signer(msg, self._joiner, self.identity)

    def _check_fresh(self, guard: ReplayGuard, sender: str, common: Common, now: float) -> None:
        skew = common.timestamp - now
        if skew < -self.config.max_skew:
            raise Drop(DropReason.EXPIRED, f"{-skew:.0f} s old")
        if skew > self.config.max_skew:
            raise Drop(DropReason.CLOCK_SKEW, f"{skew:.0f} s in the future")
        problem = guard.check(sender, common.seq, now)
        if problem is not None:
            raise Drop(DropReason(problem), f"seq {common.seq}")

    def _on_join_request(self, msg: JoinRequest, common: Common, addr: Addr, now: float) -> None:
        claim = handlers.claim_from(msg, common)
        answer = self._require_admin().answer(claim, addr, self.revoked, now)
        self._send_answer(claim, answer, addr, now)

    def _on_join_response(self, msg: JoinResponse, anchor: TrustAnchor, now: float) -> None:
        assert self._joiner is not None
        info = handlers.accept_answer(self._joiner, msg, anchor, self.revoked, now)
        answered = JoinAnswered(msg.status, msg.reason, msg.cert_der, msg.root_cert_der, info)
        self._events.append(answered)
        if info is not None:
            self.set_membership(Membership(anchor, msg.cert_der, info), now)

    # -- sending --------------------------------------------------------------------

    def _send(
        self, msg: Message, now: float, to: tuple[Addr, ...], sign_root: bool = False
    ) -> None:
        self._seq = max(self._seq + 1, int(now * 1000))
        body = encode_body(Common(self.config.pool_id, self._seq, int(now * 1000)), msg)
        signer = self._require_admin().root.identity if sign_root else self.identity
        datagram = seal(MESSAGE_TYPES[type(msg)], body, signer.sign)
        self._outbox.extend((datagram, addr) for addr in to)

    def _send_presence(self, now: float) -> None:
        assert self.membership is not None
        a = self.advert
        msg = Presence(
            self.identity.node_id, a.name, a.host, a.port, a.memory_bytes, a.cores,
            a.ring_hash, self.membership.cert_der,
        )  # fmt: skip
        self._send(msg, now, self.config.destinations)
        self._next_presence = now + self.config.interval

    def _send_join(self, now: float) -> None:
        assert self._joiner is not None
        request = self._joiner.request(int(now * 1000), now, self._rng)
        self._send(request, now, self.config.destinations)

    def _send_answer(self, claim: JoinClaim, answer: Answer, to: Addr, now: float) -> None:
        admin = self._require_admin()
        reason = clip_utf8(answer.reason, MAX_REASON)
        response = JoinResponse(
            claim.node_id, claim.nonce, answer.status, reason, answer.cert_der, admin.root.cert_der
        )
        self._send(response, now, (to,), sign_root=True)
        self._events.append(handlers.join_requested(claim, answer, to))

    def _answer_pending(self, pending: PendingJoin, now: float) -> None:
        answer = self._require_admin().answer(pending.claim, pending.source, self.revoked, now)
        self._send_answer(pending.claim, answer, pending.source, now)

    # -- helpers ----------------------------------------------------------------------

    def _require_admin(self) -> AdminDesk:
        if self.admin is None:
            raise RuntimeError("this agent is not the pool admin")
        return self.admin

    def _drop(self, reason: DropReason, addr: Addr, detail: str) -> None:
        self.drops[reason.value] += 1
        self._events.append(DatagramDropped(reason, addr, detail))

    @staticmethod
    def _due(deadline: float | None, now: float) -> bool:
        return deadline is not None and now >= deadline


__all__ = ["Advert", "BeaconConfig", "BeaconProtocol", "Membership"]
