"""The Job controller's view of the agent: runtimes (rings) and the job runner."""

from __future__ import annotations

from manifests import Job
from reconciler.runtime.jobrunner import JobRunner, RunState
from reconciler.runtime.supervisor import Supervisor
from reconciler.store import Store


class AgentJobs:
    """Implements handlers.JobSupport on top of the supervisor and the runner."""

    def __init__(self, store: Store, supervisor: Supervisor, runner: JobRunner) -> None:
        self.store, self.supervisor, self.runner = store, supervisor, runner

    def run_state(self, name: str) -> RunState | None:
        return self.runner.state(name)

    def ring_converged(self, pool: str) -> bool:
        runtime = self.supervisor.pool_runtime(pool)
        return runtime is not None and runtime.ring_converged()

    def start(self, name: str) -> str:
        job = self.store.require("Job", name)
        assert isinstance(job, Job)
        runtime = self.supervisor.pool_runtime(job.spec.pool)
        if runtime is None:
            raise RuntimeError(f"pool {job.spec.pool} is not running on this device")
        self.runner.start(job, runtime)
        ring = runtime.gossip.ring
        members = len(ring.members) if ring else 0
        return f"coordinating on {members} member(s), ring epoch {ring.epoch if ring else '-'}"

    def last_starts(self, pool: str) -> dict[str, float]:
        """When each client's latest job of ``pool`` started (monotonic seconds)."""
        return {client: t for (p, client), t in self.runner.last_start.items() if p == pool}

    def cancel(self, name: str, reason: str) -> str:
        if self.runner.cancel(name, reason):
            return f"stopped: {reason}"
        return f"not running here: {reason}"
