"""The reader room: reading an answer out of retrieved passages, and the answer log.

:class:`Answering` holds the span reader (the shipped one, or the learned
version in effect, swapped in when learning changes it), the generator
pipelines kept as options, and the log every answer is stored in so a
correction or a rating can refer to it. It is given passages and never
searches; which reader version is in effect is told to it by a callable.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from pathlib import Path

from engine.config import EngineConfig
from engine.generation import Generator, TokenCallback
from engine.library.retrieval import Hit
from engine.reader.answer import Answer, CorrectionRef, Strategy
from engine.reader.answer_log import AnswerLog
from engine.reader.generator_answers import answer_from_hits
from engine.reader.model import SpanReader
from engine.reader.span_answers import read_answer

ANSWERS_FILE = "answers.sqlite3"


class Answering:
    """Answer a question from passages with the configured strategy.

    Args:
        data_dir: Where the answer log lives.
        config: Strategy, reader threshold and generator settings.
        generator: Returns the answer model (loaded on first use).
        version: Returns the learned reader version in effect (0: the shipped one).
        load: Loads reader ``version`` from disk.
        shipped: An already loaded shipped reader to use for version 0.
    """

    def __init__(
        self,
        data_dir: Path,
        config: EngineConfig,
        *,
        generator: Callable[[], Generator],
        version: Callable[[], int],
        load: Callable[[int], SpanReader],
        shipped: SpanReader | None = None,
    ) -> None:
        self.data_dir = data_dir
        self.config = config
        self._generator = generator
        self._version = version
        self._load = load
        self._shipped = shipped
        self._reader = shipped
        self._reader_version = 0  # the learned version self._reader holds (0: shipped)
        self._reader_lock = threading.Lock()
        self._log: AnswerLog | None = None
        self._log_lock = threading.Lock()

    @property
    def reader(self) -> SpanReader:
        """The span reader in effect, loaded on first use (under a second once torch is in).

        Raises:
            ModelNotAvailableError: its files are missing, corrupt or of another format.
        """
        version = self._version()
        with self._reader_lock:
            if self._reader is None or version != self._reader_version:
                if version == 0 and self._shipped is not None:
                    self._reader = self._shipped
                else:
                    self._reader = self._load(version)
                    if version == 0:
                        self._shipped = self._reader
                self._reader_version = version
            return self._reader

    @property
    def needs_reader(self) -> bool:
        """Whether answers use the span reader (the default strategy)."""
        return self.config.answer_strategy == Strategy.READER.value

    @property
    def needs_generator(self) -> bool:
        """Whether answers use the generator (its pipelines, or the reader's rescoring)."""
        cfg = self.config
        return cfg.answer_strategy != Strategy.READER.value or cfg.reader_rescore_weight > 0

    def reads_alike(self, stored: str, question: str, hits: list[Hit]) -> bool:
        """Whether a correction of ``stored`` may answer ``question``: the reader reads
        the two alike over the best passage (:meth:`SpanReader.agreement` at least
        ``memory_min_agreement``). True when there is no passage to read, when answers
        do not use the reader, or with the check off (0)."""
        return not hits or self.reads_alike_over(stored, question, hits[0].text)

    def reads_alike_over(self, stored: str, question: str, passage: str) -> bool:
        """:meth:`reads_alike` over one passage's text."""
        floor = self.config.memory_min_agreement
        if floor <= 0 or not self.needs_reader:
            return True
        return self.reader.agreement(stored, question, passage) >= floor

    def answer(self, question: str, hits: list[Hit], on_token: TokenCallback | None) -> Answer:
        """Read the answer to ``question`` out of ``hits``, or abstain."""
        cfg = self.config
        if self.needs_reader:
            return read_answer(
                self.reader,
                question,
                hits,
                on_token=on_token,
                threshold=cfg.reader_threshold,
                generator=self._generator() if cfg.reader_rescore_weight > 0 else None,
                rescore_weight=cfg.reader_rescore_weight,
            )
        return answer_from_hits(
            self._generator(),
            question,
            hits,
            budget=cfg.answer_context_tokens,
            max_new_tokens=cfg.max_new_tokens,
            min_similarity=cfg.abstain_similarity,
            max_uncovered=cfg.abstain_uncovered,
            strategy=Strategy(cfg.answer_strategy),
            sentences=cfg.answer_sentences,
            on_token=on_token,
        )

    def log(self) -> AnswerLog:
        """The answer log, opened on first use."""
        with self._log_lock:
            if self._log is None:
                self._log = AnswerLog(self.data_dir / ANSWERS_FILE)
            return self._log

    def close(self) -> None:
        with self._log_lock:
            if self._log is not None:
                self._log.close()


def corrected_answer(question: str, hits: list[Hit], correction: CorrectionRef) -> Answer:
    """An answer taken from the person's correction, with the nearest passages as sources."""
    return Answer(
        question=question,
        text=correction.answer,
        sources=hits,
        cited=[],
        citations=[],
        abstained=False,
        answer_id=uuid.uuid4().hex,
        correction=correction,
    )
