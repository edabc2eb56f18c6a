"""One table of the engines money and rate limits are about: name → ledger name, provider, paid, rate-limit key.

Three namespaces used to meet here by convention: the router's engine names ("openai"),
the ledger's price names ("openai-transcribe", "openai-embed") and the rate-limit buckets
("api:openai", once recovered from a ledger name with split("-")). Now each engine says
all three, and the router (core.backfill.dispatch), the budget, the pages and the CLI look
them up here.

`paid` says an engine *can* cost money; whether it does today is its price in the budget
(an admin may set the GPU's hourly price to 0). A name not in the table (a plug-in engine,
a ledger row from elsewhere) is its own ledger name and its own rate-limit key, free unless priced.
"""
from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple


class EngineKind(StrEnum):
    TRANSCRIBE = "transcribe"
    EMBED = "embed"
    COMPUTE = "compute"  # time on a machine (a rented GPU)
    CHAT = "chat"


class EngineInfo(NamedTuple):
    name: str  # what the router, the pipeline and the settings call it
    ledger: str  # the name its usage is priced and booked under
    provider: str  # who runs it: "openai", "local", "source", "gpu", …
    kind: EngineKind
    paid: bool  # may cost money (its price decides how much)
    rate_key: str | None = None  # the rate_buckets key its calls share, all workers together

    @property
    def label(self) -> str:
        return self.ledger if self.ledger == self.name else f"{self.name} ({self.ledger})"


OPENAI_RATE_KEY = "api:openai"  # one limit per provider: transcription and embeddings share it

ENGINES: dict[str, EngineInfo] = {
    e.name: e
    for e in (
        EngineInfo("captions", "captions", "source", EngineKind.TRANSCRIBE, paid=False),
        EngineInfo("local", "local", "local", EngineKind.TRANSCRIBE, paid=False),
        EngineInfo("openai", "openai-transcribe", "openai", EngineKind.TRANSCRIBE, paid=True, rate_key=OPENAI_RATE_KEY),
        EngineInfo("openai-embed", "openai-embed", "openai", EngineKind.EMBED, paid=True, rate_key=OPENAI_RATE_KEY),
        EngineInfo("gpu", "gpu", "gpu", EngineKind.COMPUTE, paid=True),
        # Cited answers (core.search.answers): a call outside the queue, reserved by budget.reserve_call.
        EngineInfo("chat", "chat", "openai", EngineKind.CHAT, paid=True),
    )
}
_BY_LEDGER = {e.ledger: e for e in ENGINES.values()}


def engine(name: str) -> EngineInfo:
    """The engine called `name` (router name or ledger name); unknown names are free and unlimited."""
    found = ENGINES.get(name) or _BY_LEDGER.get(name)
    if found is not None:
        return found
    # A plug-in's engine: priced (and so paid) only if the admin gives it a price; its calls
    # share a limit of their own.
    return EngineInfo(name, name, name, EngineKind.TRANSCRIBE, paid=False, rate_key=f"api:{name}")


def ledger_name(name: str) -> str:
    """The ledger/price name of an engine ("openai" → "openai-transcribe"; others are their own)."""
    return engine(name).ledger


def embedding_engine(provider: str) -> EngineInfo | None:
    """The paid embedding engine of a provider ("openai" → openai-embed); None for local models."""
    if provider == "local":
        return None
    return ENGINES.get(f"{provider}-embed") or EngineInfo(
        f"{provider}-embed", f"{provider}-embed", provider, EngineKind.EMBED, paid=True, rate_key=f"api:{provider}"
    )


def register(info: EngineInfo) -> None:
    """A plug-in's engine (tests, other providers): its ledger name and rate-limit key."""
    ENGINES[info.name] = info
    _BY_LEDGER[info.ledger] = info
