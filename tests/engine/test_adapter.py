"""Layer 2 of learning from corrections: LoRA adapters of the real bundled SmolLM2.

Training here is tiny (one or two facts, a few steps) so the suite stays fast;
quality and round times at 10/100/1,000 corrections are measured in
``bench.bench_adapter``.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, EngineConfig
from engine.embedding import Embedder
from engine.generation import Generator
from engine.learning.adapter import (
    AdapterStore,
    Example,
    PauseGate,
    TrainingCancelled,
    TrainSettings,
    adapted_view,
    collate,
    encode_example,
    lora_model,
    recall_prompt,
    train_round,
    training_step,
)
from engine.learning.consolidation import ConsolidationScheduler, GeneratorAdaptation
from engine.learning.recall import accept, cached_base_answers, recall

FACT = Example("What is the name of Dana's cat?", "Biscuit", 1)
OTHER = Example("Which city does Dana's brother live in?", "Tromsø", 2)
ANCHORS = (
    Example("What is the capital of France?", "The capital of France is Paris."),
    Example("How many legs does a spider have?", "A spider has eight legs."),
)
# Tiny rounds: a batch holds the fact and its replay, so a few steps suffice.
TINY = TrainSettings(epochs=10, batch_size=8, replay_ratio=2.0, learning_rate=2e-3, seed=0)


@dataclass(frozen=True)
class FakeCorrection:
    id: int
    question: str
    answer: str


# -- fast unit tests -------------------------------------------------------------------
class CountingBase:
    """Just enough of a Generator for base_answers: counts what it decodes."""

    model_id = "fake-base"

    def __init__(self) -> None:
        self.decoded: list[str] = []

    def chat_ids(self, messages: list[dict[str, str]]) -> list[int]:
        self.decoded.append(messages[-1]["content"])
        return [len(self.decoded)]

    def decode_batch(self, prompts: list[list[int]], *, max_new_tokens: int) -> list[str]:
        return [f"answer {p[0]}" for p in prompts]


def test_base_answers_are_decoded_once_and_kept_when_a_round_stops(tmp_path: Path) -> None:
    base = CountingBase()
    path = tmp_path / "anchors.json"
    first = cached_base_answers(base, ["q1", "q2"], path)  # type: ignore[arg-type]
    assert [(e.question, e.answer) for e in first] == [("q1", "answer 1"), ("q2", "answer 2")]

    def stop_after_one() -> None:
        if len(base.decoded) >= 3:
            raise TrainingCancelled

    with pytest.raises(TrainingCancelled):
        cached_base_answers(base, ["q1", "q3", "q4"], path, between=stop_after_one, batch=1)  # type: ignore[arg-type]
    assert base.decoded == ["q1", "q2", "q3"]  # q1 came from the file, q4 was never reached
    again = cached_base_answers(base, ["q3", "q2", "q4"], path)  # type: ignore[arg-type]
    assert [e.question for e in again] == ["q3", "q2", "q4"]
    assert base.decoded == ["q1", "q2", "q3", "q4"]


def test_pause_gate_blocks_until_released_and_yields_to_cancel() -> None:
    gate = PauseGate()
    passed = threading.Event()

    def waiter() -> None:
        gate.wait(threading.Event())
        passed.set()

    with gate.hold():
        thread = threading.Thread(target=waiter)
        thread.start()
        assert not passed.wait(0.2)
        assert gate.waiting
    assert passed.wait(5)
    thread.join()
    cancel = threading.Event()
    cancel.set()
    with gate.hold():
        gate.wait(cancel)  # returns at once: a cancelled round must not hang on a pause
    assert not gate.waiting


def test_store_without_versions_is_the_base_model(tmp_path: Path) -> None:
    store = AdapterStore(tmp_path / "adapters")
    assert store.versions() == [] and store.current() == 0
    with pytest.raises(ValueError):
        store.set_current(3)
    store.set_current(0)
    assert store.current() == 0


def test_scheduler_starts_a_round_after_enough_corrections_or_a_quiet_spell() -> None:
    pending = [0]
    rounds: list[str] = []
    submitted = threading.Event()

    def submit() -> None:
        rounds.append("round")
        pending[0] = 0
        submitted.set()

    by_count = ConsolidationScheduler(
        lambda: pending[0],
        submit,
        lambda: False,
        after=3,
        idle_seconds=0,
        last_activity=time.monotonic,
        poll=0.01,
    )
    by_count.start()
    pending[0] = 2
    assert not submitted.wait(0.2)  # two pending, three needed
    pending[0] = 3
    assert submitted.wait(5)
    by_count.stop()
    assert rounds == ["round"]

    submitted.clear()
    quiet_since = time.monotonic() - 100
    by_time = ConsolidationScheduler(
        lambda: pending[0],
        submit,
        lambda: False,
        after=0,
        idle_seconds=50,
        last_activity=lambda: quiet_since,
        poll=0.01,
    )
    by_time.start()
    pending[0] = 1
    assert submitted.wait(5)
    by_time.stop()
    off = ConsolidationScheduler(
        lambda: 9, submit, lambda: False, after=0, idle_seconds=0, last_activity=time.monotonic
    )
    off.start()  # neither trigger set: no thread at all
    assert not off.enabled
    off.stop()


# -- the real model --------------------------------------------------------------------
@pytest.fixture(scope="module")
def generator(tmp_path_factory: pytest.TempPathFactory) -> Generator:
    return Generator(cache_root=tmp_path_factory.mktemp("models"), device="cpu")


def logits(gen: Generator, example: Example) -> Any:
    import torch

    ids, _ = encode_example(gen, example)
    with torch.inference_mode():
        return gen.model(input_ids=torch.tensor([ids])).logits


def answer_logp(gen: Generator, example: Example) -> float:
    prompt = recall_prompt(gen, example.question)
    return sum(gen.score(prompt, gen.encode(example.answer) + list(gen.end_ids)))


@pytest.fixture(scope="module")
def trained(generator: Generator) -> Any:
    model = lora_model(generator, TINY)
    train_round(model, generator, [FACT], anchors=ANCHORS, settings=TINY)
    return model


def test_the_loss_covers_only_the_answer_and_its_end(generator: Generator) -> None:
    ids, labels = encode_example(generator, FACT)
    answer = [t for t in labels if t != -100]
    assert answer == generator.encode("Biscuit") + list(generator.end_ids)
    assert ids[-len(answer) :] == answer


def test_a_tiny_round_makes_the_model_prefer_the_corrected_answer(
    generator: Generator, trained: Any
) -> None:
    adapted = adapted_view(generator, trained)
    assert answer_logp(adapted, FACT) > answer_logp(generator, FACT) + 5.0
    recalled = recall(adapted, generator, FACT.question)
    assert "Biscuit" in recalled.text
    assert accept(recalled, min_margin=1.0, min_logp=-0.5)
    # The shared generator's own weights are untouched: training works on a copy.
    assert "Biscuit" not in recall(generator, generator, FACT.question).text


def test_recall_gives_up_early_only_on_answers_the_gate_would_reject(
    generator: Generator, trained: Any
) -> None:
    adapted = adapted_view(generator, trained)
    learned = recall(adapted, generator, FACT.question, min_logp=-0.5)
    assert learned == recall(adapted, generator, FACT.question)  # the learned fact: no change
    assert not learned.gave_up and accept(learned, min_margin=1.0, min_logp=-0.5)
    question = "Summarise the history of the Byzantine Empire in detail."
    full = recall(adapted, generator, question)
    early = recall(adapted, generator, question, min_logp=-0.05)
    assert early.gave_up and early.tokens < full.tokens
    assert not accept(full, min_margin=0.0, min_logp=-0.05)  # the full answer fails too
    assert not accept(early, min_margin=-100.0, min_logp=-100.0)


def test_saved_and_reloaded_adapter_gives_identical_logits(
    generator: Generator, trained: Any, tmp_path: Path
) -> None:
    import torch

    from engine.learning.adapter import AdapterVersion

    store = AdapterStore(tmp_path / "adapters")
    meta = AdapterVersion(1, time.time(), 0, (1,), 1, 1, 0.0, 0.0, 0, generator.model_id)
    store.save(trained, meta)
    assert [v.version for v in store.versions()] == [1]
    fresh = lora_model(generator, TrainSettings(seed=7))  # a different initialisation
    store.load_into(fresh, 1)
    expected = logits(adapted_view(generator, trained), OTHER)
    assert torch.equal(logits(adapted_view(generator, fresh), OTHER), expected)
    assert not list((tmp_path / "adapters").glob(".tmp-*"))  # no temp dir left behind


def test_batched_greedy_answers_match_one_by_one(generator: Generator) -> None:
    questions = [a.question for a in ANCHORS] + [FACT.question, "Who wrote Hamlet?"]
    prompts = [recall_prompt(generator, q) for q in questions]  # of different lengths
    assert len({len(p) for p in prompts}) > 1
    alone = [generator.decode(p, max_new_tokens=12).text for p in prompts]
    assert generator.decode_batch(prompts, max_new_tokens=12) == alone


def test_answer_only_logits_give_the_models_own_loss(generator: Generator) -> None:
    """The training step projects only answer positions onto the vocabulary; the loss
    must be what the model computes over every position."""
    import torch

    model = lora_model(generator, TINY)
    batch = collate(
        [encode_example(generator, e) for e in (FACT, OTHER, *ANCHORS)], min(generator.stop_ids)
    )
    with torch.no_grad():
        expected = float(model(**batch).loss)
    frozen = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    assert training_step(model, frozen, batch) == pytest.approx(expected, rel=1e-5)


def test_cancel_stops_a_round_between_steps(generator: Generator) -> None:
    cancel = threading.Event()
    cancel.set()
    model = lora_model(generator, TINY)
    with pytest.raises(TrainingCancelled):
        train_round(model, generator, [FACT], anchors=ANCHORS, settings=TINY, cancel=cancel)


def test_pause_holds_steps_until_released(generator: Generator) -> None:
    steps: list[float] = []
    gate = PauseGate()
    settings = TrainSettings(epochs=2, batch_size=4, replay_ratio=1.0, seed=0)
    model = lora_model(generator, settings)
    done = threading.Event()

    def run() -> None:
        train_round(
            model,
            generator,
            [FACT],
            anchors=ANCHORS,
            settings=settings,
            pause=gate,
            on_step=lambda n, total: steps.append(time.monotonic()),
        )
        done.set()

    with gate.hold():
        thread = threading.Thread(target=run)
        thread.start()
        deadline = time.monotonic() + 10
        while not gate.waiting and time.monotonic() < deadline:
            time.sleep(0.01)
        assert gate.waiting and steps == []  # no step while an answer holds the gate
        released = time.monotonic()
    assert done.wait(120)
    thread.join()
    assert len(steps) == 2 and steps[0] >= released


def test_versions_roll_back_and_forgetting_drops_what_was_learned(
    generator: Generator, tmp_path: Path
) -> None:
    import torch

    active = [FakeCorrection(1, FACT.question, FACT.answer)]
    adaptation = GeneratorAdaptation(
        tmp_path / "adapters",
        lambda: generator,
        lambda: list(active),
        settings=TINY,
        anchor_questions=[a.question for a in ANCHORS],
    )
    assert adaptation.adapted() is None and adaptation.status().pending == 1
    first = adaptation.consolidate()
    assert first is not None and first.corrections == (1,) and first.parent == 0
    # The base model's answers to the anchor prompts were decoded once and kept.
    kept = json.loads((tmp_path / "adapters" / "anchors.json").read_text(encoding="utf-8"))
    assert [q for q, _ in kept["answers"]] == [a.question for a in ANCHORS]
    view = adaptation.adapted()
    assert view is not None
    v1 = logits(view, OTHER)
    assert adaptation.consolidate() is None  # nothing pending: no new version

    active.append(FakeCorrection(2, OTHER.question, OTHER.answer))
    second = adaptation.consolidate()
    assert second is not None and second.parent == 1 and second.corrections == (1, 2)
    status = adaptation.status()
    assert (status.version, status.trained, status.pending, status.state) == (2, 2, 0, "idle")
    view = adaptation.adapted()
    assert view is not None and not torch.equal(logits(view, OTHER), v1)

    adaptation.rollback(1)
    view = adaptation.adapted()
    assert view is not None and torch.equal(logits(view, OTHER), v1)
    assert adaptation.status().pending == 1

    adaptation.rollback(2)
    del active[0]  # correction 1 forgotten: every version learned it, so back to the base
    assert adaptation.adapted() is None
    assert adaptation.status().version == 0
    assert [v.version for v in adaptation.versions()] == [1, 2]  # kept on disk


# -- through the engine ----------------------------------------------------------------
@pytest.fixture
def engine(tmp_path: Path, embedder: Embedder, generator: Generator) -> Iterator[Engine]:
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "bread.md").write_text(
        "# Sourdough\n\nBake the loaf at 250 degrees for forty minutes.\n", encoding="utf-8"
    )
    config = EngineConfig(
        use_correction_memory=False,  # the adapted generator alone
        adapter_auto_after=0,
        adapter_idle_seconds=0,
        adapter_epochs=TINY.epochs,
        adapter_learning_rate=TINY.learning_rate,
        adapter_replay_ratio=TINY.replay_ratio,
        # A tiny round is judged by the loose gate asserted above; the default gate's
        # quality after a full round is measured in bench.bench_adapter.
        recall_alone_min_margin=1.0,
        recall_alone_min_logp=-0.5,
    )
    with Engine(tmp_path / "data", config, embedder=embedder, generator=generator) as eng:
        eng.add_folder(notes)
        assert eng.wait_until_idle(120)
        yield eng


def test_training_runs_on_the_engine_writer_never_the_caller(engine: Engine) -> None:
    engine.record_correction(FACT.question, FACT.answer)
    assert engine.adapter_status().pending == 1
    engine.consolidate(wait=True)
    threads = engine.learning.adaptation.last_step_threads
    assert threads == {engine.writer.ident}
    assert threading.get_ident() not in threads
    status = engine.adapter_status()
    assert (status.version, status.trained, status.pending) == (1, 1, 0)
    assert [v.version for v in engine.adapter_versions()] == [1]

    answer = engine.ask(FACT.question)  # the generator alone now knows the answer
    assert "Biscuit" in answer.text and not answer.citations and answer.adapter_version == 1
    unrelated = engine.ask("How long is the sourdough loaf baked?")
    assert "Biscuit" not in unrelated.text

    engine.rollback_adapter(0)
    assert "Biscuit" not in engine.ask(FACT.question).text


def test_answering_holds_training_paused(engine: Engine) -> None:
    held = []
    engine.ask(
        "How hot is the oven for bread?",
        on_token=lambda _: held.append(engine.learning.adaptation.pause.held),
    )
    assert held and all(held)
    assert not engine.learning.adaptation.pause.held


def test_corrections_waiting_are_shown_and_wait_until_learned_learns_them(
    tmp_path: Path, embedder: Embedder, generator: Generator
) -> None:
    """wait_until_idle returned while corrections waited for the scheduler's round
    (the adapter then knew 9% of 100); status says they wait, wait_until_learned
    starts the round and returns once they are learned."""
    config = EngineConfig(
        use_correction_memory=False,
        adapter_auto_after=0,
        adapter_idle_seconds=600,  # a round would start after ten quiet minutes
        adapter_epochs=TINY.epochs,
        adapter_learning_rate=TINY.learning_rate,
        adapter_replay_ratio=TINY.replay_ratio,
    )
    with Engine(tmp_path / "data", config, embedder=embedder, generator=generator) as eng:
        assert eng.status().corrections_waiting == 0
        eng.record_correction(FACT.question, FACT.answer)
        assert eng.wait_until_idle(60)  # the queue is empty, yet one correction waits
        status = eng.status()
        assert status.corrections_waiting == 1
        assert status.next_learning_in is not None and 590 < status.next_learning_in <= 600
        assert eng.wait_until_learned(timeout=600)
        status = eng.status()
        assert (status.corrections_waiting, status.next_learning_in) == (0, None)
        assert eng.adapter_status().version == 1
