"""The backfill wing: everything between "this item needs indexing" and the money it cost.

Modules, each with one job (imports only go down this list's arrows, no circle):

- priorities — the admin's order of strategies, pins → one number per item
- failures   — a failure's kind (FailureCause) from the exception's type, and its plain words
- breaker    — a circuit breaker per source: paused after failures in a row, probed, resumed
- queue      — jobs: enqueue, claim rows, lease, finish, fail, release, defer, reap
- budget     — prices, estimates, reservations, the ledger, the caps; `close` books a finished run
- ratelimit  — calls per window to a paid API, shared by every worker
- workers    — capabilities, the workers registry, liveness
- storage    — disk used against the storage limit
- dispatch   — claim: the best job, routed, within budget (queue + budget + router)
- reaper     — expired leases, their reservations, old rate windows, dead workers
- worker     — threads and leases: run claimed jobs, heartbeats, signals
- progress   — the one projection: progress, pace, finish date, backlog cost (Backfill, Costs, CLI)
- sync       — channel listing → registered, queued items

priorities ← queue ← budget ← dispatch ← worker; failures ← breaker ← dispatch, worker, progress;
workers, storage, ratelimit are leaves.
"""
