"""Distributed inference jobs: offers, slice loading, the shared generation loop.

The protocol is the sans-IO ``machine.JobMachine`` (``coordinator.py``: a job's state
on its coordinator, ``machineoffers.py``: a member's checks, ``machineevents.py``: its
outputs); ``service.JobService`` drives it on the peer links, the event loop's timer
and the engine threads of ``member.py``.

The package re-exports nothing: import each name from its module, so that reading a
message (``jobs.messages``) does not load the service, the peer links and the engine.
The agent's use::

    jobs = JobService(self_id, send_control=ControlSender(links),      # jobs.service
                      tensor_transport_factory=lambda: LinksTensorSender(links, loop),
                      model_resolver=resolve)                            # jobs.links
    # PoolRuntime: route_frame(jobs, node_id, channel, payload) for CONTROL/TENSOR
    # gossip: jobs.member_lost(node_id) when a member leaves the ring
    result = await jobs.run(JobRequest(job_id, model_ref, prompt_ids, sampling, ring),
                            on_progress, on_token)  # jobs.results; JobFailed: jobs.errors
"""
