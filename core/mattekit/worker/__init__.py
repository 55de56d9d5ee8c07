"""The local worker (``mattekit serve``): an HTTP server on loopback that keeps models warm.

- :mod:`.state` - the 0600 state file and the one-worker-per-state-file lock;
- :mod:`.log` - the worker's rate-limited, size-capped log;
- :mod:`.jobs` - the job table, its queue, the compute thread and cancellation;
- :mod:`.operations` - the operations, generated from the task registry, and the worker's model cache;
- :mod:`.connections` - the TCP server, its waiting room and handler threads (behind the small ``App`` protocol);
- :mod:`.request` - one request's plumbing and authentication;
- :mod:`.routes` - the API's endpoints;
- :mod:`.service` - the worker object: binding, the state file, the idle watchdog, stopping.

Its wire format and client are :mod:`mattekit.wire`'s.
"""
