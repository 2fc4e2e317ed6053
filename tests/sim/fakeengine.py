"""A fake engine for the simulation: a rank's loading and lockstep generation in
simulated time, with the same reports the real threads make (``member.py``).

Every decode step is a collective: each rank sends its contribution for step ``k`` to
every other participant (the TENSOR channel) and produces token ``k`` ``step_s`` after
it holds all of them. A contribution missing for ``collective_timeout`` fails the rank
as the real ``NetworkCollectives`` does (``MemberLost: no contribution from X``).
Tokens are a function of the prompt and the step, so every rank agrees on them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from reconciler.jobs.errors import Reason
from reconciler.jobs.messages import JobOffer, MemberStats

Report = tuple[str, tuple[object, ...]]  # (JobMachine input method, its arguments)


def token_for(prompt: tuple[int, ...], step: int) -> int:
    return (sum(prompt) * 31 + step * 7) % 997


@dataclass(frozen=True)
class FakeToken:
    token_id: int
    text: str
    finish_reason: str | None
    step_ms: float
    prefill_ms: float
    round: int


@dataclass
class _Rank:
    offer: JobOffer
    loaded_at: float
    state: str = "loading"  # loading -> ready -> running
    step: int = 0
    have: dict[int, set[str]] = field(default_factory=dict)  # step -> contributors
    waiting_since: float | None = None
    token_at: float | None = None
    progress_sent: bool = False

    @property
    def others(self) -> list[str]:
        return [p.node_id for p in self.offer.participants]


class FakeEngine:
    """One node's ranks; ``reports`` feed its JobMachine, ``tensors`` go on the wire."""

    def __init__(
        self,
        node_id: str,
        load_s: float = 0.4,
        step_s: float = 0.05,
        collective_timeout: float = 8.0,
    ) -> None:
        self.node_id, self.load_s, self.step_s = node_id, load_s, step_s
        self.collective_timeout = collective_timeout
        self.ranks: dict[int, _Rank] = {}
        self.reports: list[Report] = []
        self.tensors: list[tuple[str, bytes]] = []

    # -- orders (the machine's LoadSlice / StartSlice / StopSlice) -------------------------

    def load(self, offer: JobOffer, now: float) -> None:
        self.ranks[offer.session] = _Rank(offer, now + self.load_s)

    def start(self, session: int, now: float) -> None:
        rank = self.ranks.get(session)
        if rank is not None and rank.state == "ready":
            rank.state = "running"
            self._contribute(session, rank, now)

    def stop(self, session: int) -> None:
        self.ranks.pop(session, None)

    # -- the wire ------------------------------------------------------------------------

    def deliver(self, src: str, payload: bytes, now: float) -> None:
        session, step = (int(x) for x in payload.decode().split(":"))
        rank = self.ranks.get(session)
        if rank is not None and src in rank.others:
            rank.have.setdefault(step, set()).add(src)
            self._maybe_compute(rank, now)

    # -- time ----------------------------------------------------------------------------

    def get_timer(self) -> float | None:
        times: list[float] = []
        for rank in self.ranks.values():
            if rank.state == "loading":
                times.append(
                    rank.loaded_at - self.load_s / 2 if not rank.progress_sent else rank.loaded_at
                )
            if rank.token_at is not None:
                times.append(rank.token_at)
            elif rank.waiting_since is not None:
                times.append(rank.waiting_since + self.collective_timeout)
        return min(times, default=None)

    def handle_timer(self, now: float) -> None:
        for session, rank in list(self.ranks.items()):
            if rank.state == "loading":
                self._load_step(session, rank, now)
            elif rank.token_at is not None and rank.token_at <= now:
                self._token(session, rank, now)
            elif (
                rank.waiting_since is not None
                and rank.waiting_since + self.collective_timeout <= now
            ):
                missing = [n for n in rank.others if n not in rank.have.get(rank.step, set())]
                del self.ranks[session]
                message = f"no contribution from {', '.join(missing)}"
                self.reports.append(("slice_aborted", (session, Reason.MEMBER_LOST, message)))

    def _load_step(self, session: int, rank: _Rank, now: float) -> None:
        if not rank.progress_sent and now >= rank.loaded_at - self.load_s / 2:
            rank.progress_sent = True
            self.reports.append(("slice_progress", (session, 0.5)))
        if now >= rank.loaded_at:
            rank.state = "ready"
            self.reports.append(("slice_loaded", (session, self.load_s * 1000.0, 1 << 20)))

    def _contribute(self, session: int, rank: _Rank, now: float) -> None:
        rank.have.setdefault(rank.step, set()).add(self.node_id)
        for node in rank.others:
            if node != self.node_id:
                self.tensors.append((node, f"{session}:{rank.step}".encode()))
        rank.waiting_since = now
        self._maybe_compute(rank, now)

    def _maybe_compute(self, rank: _Rank, now: float) -> None:
        if (
            rank.state == "running"
            and rank.token_at is None
            and set(rank.others) <= rank.have.get(rank.step, set())
        ):
            rank.waiting_since, rank.token_at = None, now + self.step_s

    def _token(self, session: int, rank: _Rank, now: float) -> None:
        offer, step = rank.offer, rank.step
        last = step + 1 >= offer.sampling.max_tokens
        token = FakeToken(
            token_for(offer.prompt_ids, step), f"t{step} ", "length" if last else None,
            self.step_s * 1000.0, self.step_s * 1000.0, step,
        )  # fmt: skip
        self.reports.append(("slice_token", (session, token)))
        rank.token_at = None
        rank.have.pop(step, None)
        if last:
            del self.ranks[session]
            self.reports.append(("slice_done", (session, self._stats(rank))))
            return
        rank.step += 1
        self._contribute(session, rank, now)

    def _stats(self, rank: _Rank) -> MemberStats:
        slot = rank.offer.participants[rank.offer.rank_of(self.node_id) or 0]
        n = rank.step + 1
        return MemberStats(
            self.node_id, slot.start, slot.end, n * self.step_s * 1000.0, 0.0,
            n * (len(rank.others) - 1), n, n, self.load_s * 1000.0, 1 << 20, self.step_s * 1000.0, n,
        )  # fmt: skip
