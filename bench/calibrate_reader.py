"""Calibrate how the reader picks and abstains: ``python -m bench.calibrate_reader``.

The real engine indexes the library of the calibration split (every paragraph
but 20 held-out calibration paragraphs, as notes files; ``bench/squad.py``) and
retrieves passages for its questions: the answerable ones, and those of the
held-out paragraphs, which the library cannot answer. The reader reads them.
Each retrieved passage's best span is one sample, labelled right when its token
F1 against the gold answer is at least ``RIGHT_F1`` (never, for an unanswerable
question); a logistic regression (scikit-learn) of the reader's scores and the
passage's retrieval cosine and rank (``engine.reader.span_answers.passage_features``)
predicts it. The engine answers with the passage rated highest, so this one
model both picks the answer and gives the probability abstention uses. The
operating point is the highest threshold that keeps false abstention on the
calibration questions within ``MAX_FALSE_ABSTENTION``. Writes ``selection`` into
``reader.json``; the test split is never looked at.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.common import Question, token_f1
from bench.squad import write_library
from engine import Engine, EngineConfig
from engine.embedding import Embedder
from engine.reader.generator_answers import uncovered
from engine.reader.model import (
    CONFIG_NAME,
    ReaderConfig,
    Selection,
    SpanReader,
    bundled_reader_path,
)
from engine.reader.span_answers import passage_features

FEATURES = ("score", "margin", "similarity", "similarity_gap", "reciprocal_rank")
# The old word-coverage rule, tried as one more feature: kept only if it lifts the
# cross-validated AUROC on the calibration questions by at least MIN_GAIN.
CANDIDATE = "uncovered"
MIN_GAIN = 0.01
# Goal on held-out questions is <= 0.05; calibrating a little below leaves room.
MAX_FALSE_ABSTENTION = 0.04
# A passage's best span counts as the answer at this token F1 or more.
RIGHT_F1 = 0.5


@dataclass(frozen=True)
class Reading:
    """One question's passages as the selection model sees them."""

    question: Question
    candidates: list[dict[str, float]]  # per passage with a span: its features
    texts: list[str]  # each candidate's span

    def labels(self) -> list[int]:
        gold = self.question.answers[0] if self.question.answers else ""
        return [int(bool(gold) and token_f1(t, gold) >= RIGHT_F1) for t in self.texts]

    def f1(self, pick: int) -> float:
        gold = self.question.answers[0] if self.question.answers else ""
        return token_f1(self.texts[pick], gold) if gold else 0.0


def readings(
    part: str, reader: SpanReader, *, embedder: Embedder | None = None, passages: int = 3
) -> list[Reading]:
    """Index ``part``'s library with the real engine and read every question of ``part``."""
    with tempfile.TemporaryDirectory(prefix="kenning-calib-") as tmp:
        root = Path(tmp)
        answerable, unanswerable = write_library(root / "notes", part)
        config = EngineConfig(answer_passages=passages)
        with Engine(root / "data", config=config, embedder=embedder, reader=reader) as eng:
            eng.add_folder(root / "notes")
            if not eng.wait_until_idle(timeout=3600):
                raise SystemExit("indexing did not finish")
            out = []
            for q in answerable + unanswerable:
                hits = eng.search(q.question, limit=passages)
                guess = reader.read(q.question, [h.text for h in hits])
                share = uncovered(q.question, hits)
                spans = [s for s in guess.passage_best if s is not None]
                out.append(
                    Reading(
                        q,
                        [{**passage_features(guess, hits, s), CANDIDATE: share} for s in spans],
                        [s.text for s in spans],
                    )
                )
    return out


def fit(
    samples: list[Reading], features: tuple[str, ...] = FEATURES
) -> tuple[Selection, dict[str, float]]:
    """The logistic selection model on ``features``, and what it scores on ``samples``
    when every question is judged by a model fitted without it (5 folds by question):
    F1 with and without abstention, AUROC of the best rating (answerable = 1)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import GroupKFold

    rows = [
        (n, c, y)
        for n, r in enumerate(samples)
        for c, y in zip(r.candidates, r.labels(), strict=True)
    ]
    x = np.array([[c[f] for f in features] for _, c, _ in rows])
    y = np.array([label for _, _, label in rows])
    group = np.array([n for n, _, _ in rows])
    held = np.zeros(len(y))
    for train, test in GroupKFold(5).split(x, y, group):
        held[test] = (
            LogisticRegression(C=1.0, max_iter=1000)
            .fit(x[train], y[train])
            .predict_proba(x[test])[:, 1]
        )
    model = LogisticRegression(C=1.0, max_iter=1000).fit(x, y)
    fitted = model.predict_proba(x)[:, 1]
    selection = Selection(
        features, tuple(float(w) for w in model.coef_[0]), float(model.intercept_[0]), 0.5
    )
    picks_held, picks_fit = _best(samples, group, held), _best(samples, group, fitted)
    answerable = np.array([not r.question.impossible for r in samples])
    # Highest threshold whose false abstention (answerable below it) stays in budget.
    ranked = np.sort([p for (_, p), a in zip(picks_fit, answerable, strict=True) if a])
    k = int(np.floor(MAX_FALSE_ABSTENTION * len(ranked)))
    selection = replace(selection, threshold=float(ranked[k]) if k < len(ranked) else 0.5)
    f1 = np.array(
        [r.f1(i) if i >= 0 else 0.0 for r, (i, _) in zip(samples, picks_held, strict=True)]
    )
    best = np.array([p for _, p in picks_held])
    kept = np.array([p >= selection.threshold for _, p in picks_fit])
    scores = {
        "auroc_cross_validated": round(float(roc_auc_score(answerable, best)), 4),
        "f1_without_abstention": round(float(f1[answerable].mean()), 4),
        "f1": round(float((f1 * kept)[answerable].mean()), 4),
        "false_abstention": round(float((~kept)[answerable].mean()), 4),
        "abstention_on_unanswerable": round(float((~kept)[~answerable].mean()), 4),
    }
    return selection, scores


def _best(samples: list[Reading], group: np.ndarray, p: np.ndarray) -> list[tuple[int, float]]:
    """Per question: the index of its highest-rated candidate and the rating (-1, 0.0 if none)."""
    out = []
    for n, _ in enumerate(samples):
        mine = np.where(group == n)[0]
        if len(mine) == 0:
            out.append((-1, 0.0))
            continue
        top = int(np.argmax(p[mine]))
        out.append((top, float(p[mine][top])))
    return out


def choose(samples: list[Reading]) -> tuple[Selection, dict[str, float], dict[str, float]]:
    """The reader's and retrieval's features, plus the word-coverage one if it earns its place."""
    selection, scores = fit(samples, FEATURES)
    wider, wider_scores = fit(samples, (*FEATURES, CANDIDATE))
    tried = {
        "auroc_without_uncovered": scores["auroc_cross_validated"],
        "auroc_with_uncovered": wider_scores["auroc_cross_validated"],
    }
    if wider_scores["auroc_cross_validated"] >= scores["auroc_cross_validated"] + MIN_GAIN:
        return wider, wider_scores, tried
    return selection, scores, tried


def calibrate_into(folder: Path) -> Selection:
    """Fit the selection model for the reader in ``folder`` and save it in its reader.json."""
    reader = SpanReader.load(folder)
    samples = readings("calibration", reader)
    selection, scores, tried = choose(samples)
    answerable = sum(not r.question.impossible for r in samples)
    print(
        f"calibration: {answerable} answerable, {len(samples) - answerable} unanswerable; "
        f"features {', '.join(selection.features)} ({tried}); threshold "
        f"{selection.threshold:.3f}; cross-validated {scores}",
        flush=True,
    )
    config = ReaderConfig.load(folder / CONFIG_NAME)
    training = dict(config.training)
    training["calibration"] = {
        "questions": len(samples),
        "features": list(selection.features),
        **tried,
        **scores,
    }
    replace(config, selection=selection, training=training).save(folder / CONFIG_NAME)
    return selection


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader", type=Path, default=bundled_reader_path())
    args = parser.parse_args(argv)
    calibrate_into(args.reader)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
