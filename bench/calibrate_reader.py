"""Calibrate the reader's abstention on the calibration split: ``python -m bench.calibrate_reader``.

The real engine indexes the library of the calibration split (every paragraph
but 20 held-out calibration paragraphs, as notes files; ``bench/squad.py``) and
retrieves passages for its questions: the answerable ones, and those of the
held-out paragraphs, which the library cannot answer. The reader reads them; a
logistic regression (scikit-learn) of the best span's score, its margin over the
no-answer score and the best retrieval cosine predicts "answerable". The
operating point is the highest threshold that keeps false abstention on the
calibration questions within ``MAX_FALSE_ABSTENTION``. Writes ``abstention`` into
``reader.json``; the test split is never looked at.
"""

from __future__ import annotations

import argparse
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from bench.common import Question
from bench.squad import write_library
from engine import Engine, EngineConfig
from engine.embedding import Embedder
from engine.reader.model import (
    CONFIG_NAME,
    Abstention,
    ReaderConfig,
    SpanReader,
    bundled_reader_path,
)
from engine.reader.span_answers import reading_features

FEATURES = ("score", "margin", "similarity")
# The old word-coverage rule, tried as a fourth feature: kept only if it lifts the
# cross-validated AUROC on the calibration questions by at least MIN_GAIN.
CANDIDATE = "uncovered"
MIN_GAIN = 0.01
# Goal on held-out questions is <= 0.05; calibrating a little below leaves room.
MAX_FALSE_ABSTENTION = 0.04


@dataclass(frozen=True)
class Reading:
    question: Question
    features: dict[str, float]
    text: str  # the reader's best span ("" when it found none)


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
                best = guess.best
                features = reading_features(guess, hits, q.question)
                out.append(Reading(q, features, best.text if best else ""))
    return out


def fit(samples: list[Reading], features: tuple[str, ...] = FEATURES) -> tuple[Abstention, float]:
    """The logistic abstention model on ``features`` and its 5-fold cross-validated AUROC
    on ``samples`` (answerable = 1); the threshold is set on the fitted model."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score
    from sklearn.model_selection import cross_val_predict

    x = np.array([[r.features[f] for f in features] for r in samples])
    y = np.array([0 if r.question.impossible else 1 for r in samples])
    model = LogisticRegression(C=1.0, max_iter=1000)
    held = cross_val_predict(model, x, y, cv=5, method="predict_proba")[:, 1]
    auroc = float(roc_auc_score(y, held))
    model.fit(x, y)
    p = model.predict_proba(x)[:, 1]
    answerable = np.sort(p[y == 1])
    # Highest threshold whose false abstention (answerable below it) stays in budget.
    k = int(np.floor(MAX_FALSE_ABSTENTION * len(answerable)))
    threshold = float(answerable[k]) if k < len(answerable) else 0.5
    abstention = Abstention(
        features, tuple(float(w) for w in model.coef_[0]), float(model.intercept_[0]), threshold
    )
    return abstention, auroc


def choose(samples: list[Reading]) -> tuple[Abstention, float, dict[str, float]]:
    """The reader's features, plus the word-coverage one if it earns its place."""
    abstention, auroc = fit(samples, FEATURES)
    wider, wider_auroc = fit(samples, (*FEATURES, CANDIDATE))
    tried = {
        "auroc_without_uncovered": round(auroc, 4),
        "auroc_with_uncovered": round(wider_auroc, 4),
    }
    if wider_auroc >= auroc + MIN_GAIN:
        return wider, wider_auroc, tried
    return abstention, auroc, tried


def calibrate_into(folder: Path) -> Abstention:
    """Fit the abstention model for the reader in ``folder`` and save it in its reader.json."""
    reader = SpanReader.load(folder)
    samples = readings("calibration", reader)
    abstention, auroc, tried = choose(samples)
    p = [abstention.probability(r.features) for r in samples]
    ans = [pi for pi, r in zip(p, samples, strict=True) if not r.question.impossible]
    imp = [pi for pi, r in zip(p, samples, strict=True) if r.question.impossible]
    false_abst = float(np.mean([pi < abstention.threshold for pi in ans]))
    abst_imp = float(np.mean([pi < abstention.threshold for pi in imp]))
    print(
        f"calibration: {len(ans)} answerable, {len(imp)} unanswerable; features "
        f"{', '.join(abstention.features)} ({tried}); cross-validated AUROC {auroc:.3f}; "
        f"threshold {abstention.threshold:.3f}: false abstention {false_abst:.3f}, "
        f"abstains on unanswerable {abst_imp:.3f}",
        flush=True,
    )
    config = ReaderConfig.load(folder / CONFIG_NAME)
    training = dict(config.training)
    training["calibration"] = {
        "questions": len(samples),
        "auroc_cross_validated": round(auroc, 4),
        "features": list(abstention.features),
        **tried,
        "false_abstention": round(false_abst, 4),
        "abstention_on_unanswerable": round(abst_imp, 4),
    }
    replace(config, abstention=abstention, training=training).save(folder / CONFIG_NAME)
    return abstention


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reader", type=Path, default=bundled_reader_path())
    args = parser.parse_args(argv)
    calibrate_into(args.reader)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
