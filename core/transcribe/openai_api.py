"""The "openai" engine: OpenAI's transcription API (or any server that speaks it), paid per minute.

* whisper-1 (and other servers' Whisper models) answer `verbose_json` with timed segments.
* gpt-4o-transcribe / gpt-4o-mini-transcribe / gpt-transcribe only answer plain `json` (text,
  no times): we cut the audio into short pieces at silences so each piece becomes one
  segment with a usable time, at the cost of more requests (not more money: billing is per
  minute of audio).
* Uploads are capped at 25 MB: longer audio is cut at silences into compact MP3 pieces
  (core.transcribe.audio) and each piece's timestamps are shifted back by its offset.

The openai client already retries 408/409/429/5xx with backoff, honouring Retry-After; what
still fails after that becomes `OpenAIAPIError` with `retryable` telling the job queue whether
a later attempt may succeed.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.records import Segment, Transcript
from core.transcribe.audio import is_all_silence, probe_duration, split_at_silences
from core.transcribe.base import EngineUnavailable, NoSpeech, ProgressFn, TranscriptionError

if TYPE_CHECKING:
    from openai import OpenAI

    from core.config import Settings

# The API refuses request files above 25 MB.
API_MAX_BYTES = 25 * 1024 * 1024
# Pieces for text-only models: short enough that one segment per piece still deep-links well.
TEXT_ONLY_PIECE_S = 30.0

# List prices, USD per minute of audio (platform.openai.com/pricing, 2025).
PRICE_PER_MINUTE_USD: dict[str, float] = {
    "whisper-1": 0.006,
    "gpt-4o-mini-transcribe": 0.003,
    "gpt-4o-transcribe": 0.006,
}
# Models that answer only `json`/`text` (no segment times).
_TEXT_ONLY_PREFIXES = ("gpt-4o", "gpt-transcribe")
# Formats the API accepts as-is; anything else is re-encoded before upload.
_UPLOADABLE = {".flac", ".mp3", ".mp4", ".mpeg", ".mpga", ".m4a", ".ogg", ".wav", ".webm"}


def price_per_minute(model: str) -> float | None:
    """List price for `model` (dated variants such as gpt-4o-mini-transcribe-2025-03-20 included)."""
    for name in sorted(PRICE_PER_MINUTE_USD, key=len, reverse=True):
        if model == name or model.startswith(name + "-"):
            return PRICE_PER_MINUTE_USD[name]
    return None


def estimate_cost_usd(model: str, audio_seconds: float) -> float | None:
    price = price_per_minute(model)
    return None if price is None else round(price * audio_seconds / 60, 6)


NO_KEY = "the openai engine needs an API key: set OPENAI_API_KEY (environment or .streamlit/secrets.toml)"


def unavailable_reason(settings: Settings) -> str | None:
    """None when the API can be called: it needs a key (a compatible server behind OPENAI_BASE_URL too)."""
    return None if settings.openai_api_key else NO_KEY


class OpenAIAPIError(TranscriptionError):
    """The API refused or failed the request after the client's own retries."""

    def __init__(self, message: str, *, status_code: int | None = None, retryable: bool = False) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retryable = retryable  # instance value overrides the class default (False)


class OpenAITranscriptionEngine:
    name = "openai"

    def __init__(
        self,
        api_key: str | None,
        *,
        model: str = "whisper-1",
        base_url: str | None = None,
        max_bytes: int = API_MAX_BYTES,
        max_retries: int = 2,
        timeout_s: float = 600.0,
        language: str | None = None,
    ) -> None:
        self.api_key = api_key
        self.model = model
        self.base_url = base_url
        self.max_bytes = max_bytes  # a parameter so tests can force a split with small files
        self.max_retries = max_retries
        self.timeout_s = timeout_s
        self.language = language
        self._client: OpenAI | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OpenAITranscriptionEngine:
        return cls(settings.openai_api_key, model=settings.openai_transcription_model, base_url=settings.openai_base_url)

    @property
    def text_only(self) -> bool:
        return self.model.startswith(_TEXT_ONLY_PREFIXES)

    def client(self) -> OpenAI:
        if not self.api_key:
            raise EngineUnavailable(NO_KEY)
        if self._client is None:
            from openai import OpenAI

            self._client = OpenAI(api_key=self.api_key, base_url=self.base_url,
                                  max_retries=self.max_retries, timeout=self.timeout_s)
        return self._client

    # -----------------------------------------------------------------------------------------

    def transcribe(self, audio_path: Path, *, progress: ProgressFn | None = None) -> Transcript:
        audio_path = Path(audio_path)
        client = self.client()  # no key → EngineUnavailable before any audio work
        total = probe_duration(audio_path)  # CorruptMedia before we pay for anything
        if is_all_silence(audio_path):
            # Whisper invents "Thank you." for silence; do not pay to be told nothing.
            raise NoSpeech(f"no speech found in {audio_path.name} (silent audio)")
        segments: list[Segment] = []
        billed = 0.0
        with tempfile.TemporaryDirectory(prefix="chaffee-openai-") as tmp:
            pieces = self._pieces(audio_path, total, Path(tmp))
            ends = [offset for _, offset in pieces[1:]] + [total]
            for (piece, offset), end in zip(pieces, ends):
                piece_segments, seconds = self._transcribe_piece(client, piece, offset, end - offset)
                segments.extend(piece_segments)
                billed += seconds
                if progress is not None:
                    progress(end, total)
        if not segments:
            raise NoSpeech(f"no speech found in {audio_path.name}")
        # audio_seconds is what the API billed (its usage.seconds, rounded up per upload).
        return Transcript(segments, engine=self.name, model=self.model, audio_seconds=billed or total)

    def _pieces(self, audio_path: Path, total: float, tmp: Path) -> list[tuple[Path, float]]:
        fits = audio_path.stat().st_size <= self.max_bytes and audio_path.suffix.lower() in _UPLOADABLE
        if fits and not (self.text_only and total > TEXT_ONLY_PIECE_S):
            return [(audio_path, 0.0)]  # upload the original: no re-encoding loss
        max_seconds = TEXT_ONLY_PIECE_S if self.text_only else None
        return split_at_silences(audio_path, self.max_bytes, tmp, max_seconds=max_seconds)

    def _transcribe_piece(
        self, client: OpenAI, piece: Path, offset: float, length: float
    ) -> tuple[list[Segment], float]:
        """Segments of one upload (times shifted by `offset`) and the seconds it was billed for."""
        import openai

        kwargs: dict[str, Any] = {"model": self.model}
        if self.language:
            kwargs["language"] = self.language
        if self.text_only:
            kwargs["response_format"] = "json"
        else:
            kwargs["response_format"] = "verbose_json"
            kwargs["timestamp_granularities"] = ["segment"]
        try:
            with piece.open("rb") as fh:
                result = client.audio.transcriptions.create(file=(piece.name, fh), **kwargs)
        except openai.APIStatusError as exc:
            raise _status_error(exc, piece) from exc
        except openai.APITimeoutError as exc:
            raise OpenAIAPIError(f"transcription request for {piece.name} timed out", retryable=True) from exc
        except openai.APIConnectionError as exc:
            raise EngineUnavailable(f"cannot reach the transcription API at {client.base_url}: {exc}") from exc

        seconds = _usage_seconds(result) or float(getattr(result, "duration", 0) or 0) or length
        if self.text_only:
            text = (getattr(result, "text", "") or "").strip()
            return ([Segment(offset, offset + length, text)] if text else []), seconds

        # Whisper's last end can overshoot the piece by a few frames: clamp so times stay monotonic.
        stop = offset + length
        segments = [
            Segment(min(offset + float(s.start), stop), min(offset + float(s.end), stop), s.text.strip())
            for s in (result.segments or [])
            if s.text.strip()
        ]
        if not segments and (text := (result.text or "").strip()):
            segments = [Segment(offset, offset + length, text)]  # a server that gave no segments
        return segments, seconds


def _usage_seconds(result: Any) -> float:
    usage = getattr(result, "usage", None)
    if usage is not None and getattr(usage, "type", None) == "duration":
        return float(usage.seconds)
    return 0.0


def _status_error(exc: Any, piece: Path) -> TranscriptionError:
    status = int(exc.status_code)
    detail = _message(exc)
    if status in (401, 403):
        return OpenAIAPIError(f"the transcription API refused the API key ({status}): {detail}", status_code=status)
    # Rate limits, server errors, timeouts and lock conflicts pass with time.
    retryable = status in (408, 409, 429) or status >= 500
    return OpenAIAPIError(
        f"transcription API error {status} for {piece.name}: {detail}", status_code=status, retryable=retryable
    )


def _message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", exc))
