"""Distributed inference jobs: offers, slice loading, the shared generation loop.

Public API used by the agent::

    service = JobService(self_id, send_control=ControlSender(links),
                         tensor_transport_factory=lambda: LinksTensorSender(links, loop),
                         model_resolver=resolve)
    # PoolRuntime: route_frame(service, node_id, channel, payload) for CONTROL/TENSOR
    # gossip: service.member_lost(node_id) when a member leaves the ring
    result = await service.run(JobRequest(job_id, model_ref, prompt_ids, sampling, ring),
                               on_progress, on_token)     # JobFailed(reason, message)
"""

from reconciler.jobs.coordinator import ProgressCallback, TokenCallback
from reconciler.jobs.errors import CollectiveTimeout, JobFailed, JobProtocolError, Reason
from reconciler.jobs.links import ControlSender, LinksTensorSender, route_frame
from reconciler.jobs.messages import MemberStats
from reconciler.jobs.netcollectives import NetworkCollectives, TensorSender
from reconciler.jobs.results import JobRequest, JobResult
from reconciler.jobs.service import JobService
from reconciler.jobs.shards import ShardCache

__all__ = [
    "CollectiveTimeout",
    "ControlSender",
    "JobFailed",
    "JobProtocolError",
    "JobRequest",
    "JobResult",
    "JobService",
    "LinksTensorSender",
    "MemberStats",
    "NetworkCollectives",
    "ProgressCallback",
    "Reason",
    "ShardCache",
    "TensorSender",
    "TokenCallback",
    "route_frame",
]
