"""Which transcription engine an item gets, and why (the hybrid processor).

Preference, cheapest first:
1. the source's own captions (free) when the source can have them and they were not
   already found missing;
2. local whisper when a worker that can run it is alive — a GPU worker (it advertises its
   device and model in `workers.capabilities`) takes the transcription work from CPU workers;
3. the paid API for urgent items (pinned, or published within `urgent_days`) while the
   budget lasts, or for every item when the admin's paid routing is "always".

The router is a pure function: the worker gives it the item, the live workers, the
policy and any budget refusal, and stores the returned reason on the item. A route may
say "captions, and if there are none, wait" (`wait`): then the job is deferred without
burning an attempt until a worker, or money, appears.
"""
from __future__ import annotations

from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import NamedTuple

from core.states import WaitReason

CAPTION_SOURCES = ("youtube", "zoom")


class WorkerCaps(NamedTuple):
    """What one live worker can run (from `workers.capabilities`)."""

    worker_id: str
    engines: tuple[str, ...]  # transcription engines it can run: "local", "openai", plug-ins
    device: str | None = None  # "cuda" | "cpu" | None
    model: str | None = None  # whisper model it loaded

    @property
    def gpu(self) -> bool:
        return bool(self.device) and self.device != "cpu"

    def describe(self) -> str:
        extra = ", ".join(x for x in (self.device, self.model) if x)
        return f"{self.worker_id}" + (f" ({extra})" if extra else "")


class RouteItem(NamedTuple):
    id: int
    source_kind: str
    published_at: datetime | None
    pinned: bool = False
    captions: bool | None = None  # None = unknown, False = the source had none last time


class Policy(NamedTuple):
    allowed: tuple[str, ...]  # the settings' engines in order of preference
    paid_routing: str = "urgent"  # never | urgent | always
    urgent_days: float = 14.0


class Route(NamedTuple):
    engines: tuple[str, ...]  # for process_item, in order; empty = nothing can run here now
    paid: str | None  # the paid engine among them (needs a reservation)
    reason: str
    wait: WaitReason | None = None  # what to wait for if these engines give no transcript
    elsewhere: bool = False  # another live worker can do it: leave the job to it, do not delay it


def is_urgent(item: RouteItem, policy: Policy, now: datetime) -> bool:
    if item.pinned:
        return True
    return item.published_at is not None and now - item.published_at <= timedelta(days=policy.urgent_days)


def route(
    item: RouteItem,
    *,
    me: WorkerCaps,
    live: Sequence[WorkerCaps],
    paid_engines: Collection[str],
    policy: Policy,
    now: datetime,
    forced: str | None = None,
    budget_refusal: str | None = None,
) -> Route:
    """The engines to try for `item` on worker `me`, the paid one among them, and why.

    `budget_refusal` is the budget's reason when a reservation for the paid engine was refused.
    """
    if forced:
        return _forced(forced, me=me, live=live, paid_engines=paid_engines, budget_refusal=budget_refusal)

    captions = "captions" in policy.allowed and item.source_kind in CAPTION_SOURCES and item.captions is not False
    head: tuple[str, ...] = ("captions",) if captions else ()
    cap_why = "captions first (free)" if captions else (
        "no captions (checked before)" if item.captions is False else f"{item.source_kind} items have no captions"
    )

    free = [e for e in policy.allowed if e != "captions" and e not in paid_engines]
    paid = [e for e in policy.allowed if e in paid_engines and e in me.engines]
    mine = next((e for e in free if e in me.engines), None)
    others = [w for w in live if w.worker_id != me.worker_id and any(e in w.engines for e in free)]
    gpu_elsewhere = next((w for w in others if w.gpu), None)
    urgent = is_urgent(item, policy, now)
    paid_wanted = bool(paid) and policy.paid_routing != "never" and (urgent or policy.paid_routing == "always")
    paid_ok = paid_wanted and budget_refusal is None
    why_urgent = "pinned" if item.pinned else "recent upload" if urgent else "backlog"

    then = "; without them " if head else "; "

    def paid_route() -> Route:
        return Route(head + (paid[0],), paid[0], f"{cap_why}{then}paid {paid[0]} ({why_urgent}, within budget)")

    def wait_route(what: WaitReason, why: str, elsewhere: bool = False) -> Route:
        # Captions still cost nothing: try them now; without them, wait (or leave it to `elsewhere`).
        return Route(head, None, f"{cap_why}{then}{why}", wait=what, elsewhere=elsewhere)

    if mine is not None:
        on_gpu = me.gpu
        if gpu_elsewhere is not None and not on_gpu and not urgent:
            return wait_route(WaitReason.WORKER, f"transcription left to GPU worker {gpu_elsewhere.describe()}", True)
        if paid_ok and urgent and not on_gpu:
            return paid_route()  # a CPU worker is slow; an urgent item is worth the money
        where = f"{me.device or 'this machine'}" + (f", {me.model}" if me.model else "")
        return Route(head + (mine,), None, f"{cap_why}{then}{mine} whisper on {where} (free)")
    if others:
        if paid_ok and urgent:
            return paid_route()
        best = gpu_elsewhere or others[0]
        why = f"transcription left to worker {best.describe()}"
        if paid_wanted and budget_refusal:
            why += f" ({budget_refusal})"
        return wait_route(WaitReason.WORKER, why, True)
    if paid_ok:
        return paid_route()
    if paid_wanted and budget_refusal:
        return wait_route(WaitReason.BUDGET, f"waiting: {budget_refusal}")
    if paid and policy.paid_routing == "urgent" and not urgent:
        return wait_route(WaitReason.WORKER, "waiting: no local whisper worker is running, and the paid API is kept for urgent items")
    return wait_route(WaitReason.WORKER, "waiting: no worker can transcribe (start a worker with local whisper, or allow the paid API)")


def _forced(
    engine: str, *, me: WorkerCaps, live: Sequence[WorkerCaps], paid_engines: Collection[str], budget_refusal: str | None
) -> Route:
    why = f"forced by the admin: {engine}"
    if engine == "captions":
        return Route(("captions",), None, why)
    if engine not in me.engines:
        holder = next((w for w in live if engine in w.engines and w.worker_id != me.worker_id), None)
        where = f"worker {holder.describe()}" if holder else "a worker that can run it"
        return Route((), None, f"{why}; waiting for {where}", wait=WaitReason.WORKER, elsewhere=holder is not None)
    if engine in paid_engines:
        if budget_refusal:
            return Route((), None, f"{why}; {budget_refusal}", wait=WaitReason.BUDGET)
        return Route((engine,), engine, why)
    return Route((engine,), None, why)
