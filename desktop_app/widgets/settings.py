"""The settings dialog: models, device, chunk size, ignore patterns, data location.

It edits a copy of the engine's frozen config (``dataclasses.replace``) and
says which changes need the folders indexed again; saving and re-indexing are
the window's job.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPlainTextEdit,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

# Changing these makes every stored chunk stale.
REINDEX_FIELDS = ("max_chunk_tokens", "ignore_patterns")
# Changing these needs a fresh engine (models load once), not a re-index. A new
# embedding model re-embeds the stored passages in the engine's background, with
# search on the old vectors meanwhile (engine.library.library).
RESTART_FIELDS = (
    "embedding_model", "encoder_precision", "generator_model", "device",
    "backend", "milvus_uri", "milvus_token", "milvus_library",
)  # fmt: skip
# Where passages live: (label, EngineConfig.backend).
BACKENDS = (
    ("On this computer (the default)", "local"),
    ("Shared on a Milvus server", "milvus"),
)
# Named embedding models beside the bundled one: (label, EngineConfig value).
EMBEDDING_CHOICES = (
    ("Multilingual e5-small (about 100 languages, 2x slower)", "multilingual-e5-small"),
)
# How the encoder computes on a CPU: (label, EngineConfig.encoder_precision).
PRECISIONS = (
    ("int8, quantized (faster, the default)", "int8"),
    ("float32, as shipped", "float32"),
)
# How answers are read: (label, EngineConfig.answer_strategy).
STRATEGIES = (
    ("Trained reader (fast, the default)", "reader"),
    ("Answer model picks the span (slower)", "extractive"),
)
DEVICES = ("auto", "cpu", "cuda", "mps")
MAX_WORD_PIECES = 254  # MiniLM's 256 minus [CLS] and [SEP]


def changed_fields(old: Any, new: Any) -> list[str]:
    """Names of the config fields whose values differ."""
    return [f.name for f in dataclasses.fields(old) if getattr(old, f.name) != getattr(new, f.name)]


def needs_reindex(old: Any, new: Any) -> bool:
    return any(name in REINDEX_FIELDS for name in changed_fields(old, new))


class _ModelChooser(QWidget):
    """The bundled model, or a path typed or picked with a file dialog."""

    def __init__(
        self,
        bundled: str,
        pick: str,
        value: str | None,
        parent: QWidget,
        named: tuple[tuple[str, str, str | None], ...] = (),
    ) -> None:
        """``named``: (label, value, why it is unavailable or None) of models chosen
        by name, listed between the bundled one and a local folder."""
        super().__init__(parent)
        self._pick = pick  # "folder", "gguf" or "both"
        self.choice = QComboBox(self)
        self.choice.addItem(bundled, "bundled")
        self._named = {name for _label, name, _why in named}
        for label, name, unavailable in named:
            self.choice.addItem(label, name)
            if unavailable:  # shown greyed out, saying what to install
                item = self.choice.model().item(self.choice.count() - 1)  # type: ignore[attr-defined]
                item.setEnabled(False)
                item.setToolTip(unavailable)
        self.choice.addItem("Local model…", "local")
        self.path = QLineEdit(value or "", self)
        self.path.setPlaceholderText(
            "a model folder" + (" or .gguf file" if pick != "folder" else "")
        )
        self.browse = QPushButton("Browse…", self)
        self.browse.clicked.connect(self._browse)
        self.choice.currentIndexChanged.connect(self._sync)
        if value in self._named:
            self.choice.setCurrentIndex(self.choice.findData(value))
            self.path.setText("")
        else:
            self.choice.setCurrentIndex(self.choice.findData("local") if value else 0)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.choice)
        layout.addWidget(self.path, 1)
        layout.addWidget(self.browse)
        self._sync()

    def value(self) -> str | None:
        data = self.choice.currentData()
        if data == "bundled":
            return None
        if data in self._named:
            return str(data)
        text = self.path.text().strip()
        return text or None

    def _sync(self) -> None:
        local = self.choice.currentData() == "local"
        self.path.setEnabled(local)
        self.browse.setEnabled(local)

    def _browse(self) -> None:
        if self._pick == "folder":
            path = QFileDialog.getExistingDirectory(self, "Choose a model folder")
        else:
            path, _ = QFileDialog.getOpenFileName(
                self, "Choose a GGUF model file", filter="GGUF models (*.gguf)"
            )
        if path:
            self.path.setText(path)


class SettingsDialog(QDialog):
    """Edit ``config`` and the data location; :meth:`values` returns the result."""

    def __init__(
        self,
        config: Any,
        data_dir: Path,
        parent: QWidget | None = None,
        *,
        missing: dict[str, str] | None = None,
    ) -> None:
        """``missing`` maps embedding model names that cannot be chosen to an install hint."""
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setAccessibleName("Settings")
        self.resize(620, 480)
        self.config = config
        missing = missing or {}
        self.embedding = _ModelChooser(
            "Bundled all-MiniLM-L6-v2 (English)",
            "folder",
            config.embedding_model,
            self,
            named=tuple((label, name, missing.get(name)) for label, name in EMBEDDING_CHOICES),
        )
        self.embedding.setAccessibleName("Embedding model")
        self.precision = QComboBox(self)
        self.precision.setAccessibleName("Encoder precision")
        for label, value in PRECISIONS:
            self.precision.addItem(label, value)
        self.precision.setCurrentIndex(max(0, self.precision.findData(config.encoder_precision)))
        self.generator = _ModelChooser(
            "Bundled SmolLM2-135M-Instruct", "gguf", config.generator_model, self
        )
        self.generator.setAccessibleName("Answer model")
        self.strategy = QComboBox(self)
        self.strategy.setAccessibleName("How answers are read")
        for label, value in STRATEGIES:
            self.strategy.addItem(label, value)
        at = self.strategy.findData(config.answer_strategy)
        self.strategy.setCurrentIndex(max(0, at))
        self.device = QComboBox(self)
        self.device.setAccessibleName("Device")
        self.device.addItems(list(DEVICES))
        if config.device not in DEVICES:
            self.device.addItem(config.device)
        self.device.setCurrentText(config.device)
        self.chunk = QSpinBox(self)
        self.chunk.setAccessibleName("Chunk size in word pieces")
        self.chunk.setRange(config.min_chunk_tokens, MAX_WORD_PIECES - config.overlap_tokens)
        self.chunk.setValue(config.max_chunk_tokens)
        self.chunk.setSuffix(" word pieces")
        self.ignore = QPlainTextEdit("\n".join(config.ignore_patterns), self)
        self.ignore.setAccessibleName("Ignore patterns")
        self.ignore.setPlaceholderText("One pattern a line, gitignore style: *.log, build/")
        self.ignore.setFixedHeight(90)
        self.backend = QComboBox(self)
        self.backend.setAccessibleName("Where the library lives")
        for label, value in BACKENDS:
            self.backend.addItem(label, value)
        self.backend.setCurrentIndex(max(0, self.backend.findData(config.backend)))
        self.milvus_uri = QLineEdit(config.milvus_uri or "", self)
        self.milvus_uri.setAccessibleName("Milvus address")
        self.milvus_uri.setPlaceholderText("http://host:19530, or a file path for Milvus Lite")
        self.milvus_library = QLineEdit(config.milvus_library, self)
        self.milvus_library.setAccessibleName("Library name on the server")
        self.milvus_token = QLineEdit(config.milvus_token or "", self)
        self.milvus_token.setAccessibleName("Milvus credentials")
        self.milvus_token.setEchoMode(QLineEdit.EchoMode.Password)
        self.milvus_token.setPlaceholderText("user:password or an API key (kept in your settings)")
        self.data_dir = QLineEdit(str(data_dir), self)
        self.data_dir.setAccessibleName("Data location")
        browse = QPushButton("Browse…", self)
        browse.clicked.connect(self._browse_data)
        data_row = QHBoxLayout()
        data_row.addWidget(self.data_dir, 1)
        data_row.addWidget(browse)

        form = QFormLayout()
        form.addRow("Embedding model:", self.embedding)
        form.addRow("Encoder:", self.precision)
        form.addRow("Answers:", self.strategy)
        form.addRow("Answer model:", self.generator)
        form.addRow("Device:", self.device)
        form.addRow("Chunk size:", self.chunk)
        form.addRow("Ignore patterns:", self.ignore)
        form.addRow("Data location:", data_row)
        form.addRow("Library:", self.backend)
        form.addRow("Milvus address:", self.milvus_uri)
        form.addRow("Library name:", self.milvus_library)
        form.addRow("Credentials:", self.milvus_token)
        self.note = QLabel(self)
        self.note.setWordWrap(True)
        self.note.setAccessibleName("What saving will do")
        buttons = QDialogButtonBox(
            QDialogButtonBox.StandardButton.Save | QDialogButtonBox.StandardButton.Cancel, self
        )
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(self.note)
        layout.addStretch(1)
        layout.addWidget(buttons)
        for signal in (
            self.embedding.choice.currentIndexChanged,
            self.embedding.path.textChanged,
            self.precision.currentIndexChanged,
            self.generator.choice.currentIndexChanged,
            self.generator.path.textChanged,
            self.strategy.currentIndexChanged,
            self.device.currentIndexChanged,
            self.chunk.valueChanged,
            self.ignore.textChanged,
            self.data_dir.textChanged,
            self.backend.currentIndexChanged,
            self.milvus_uri.textChanged,
            self.milvus_library.textChanged,
            self.milvus_token.textChanged,
        ):
            signal.connect(self._explain)
        self._explain()

    def _show_milvus_fields(self) -> None:
        remote = self.backend.currentData() == "milvus"
        for field in (self.milvus_uri, self.milvus_library, self.milvus_token):
            field.setEnabled(remote)

    def values(self) -> tuple[Any, Path]:
        """The edited config and data dir (raises ValueError for an invalid config)."""
        patterns = tuple(
            line.strip() for line in self.ignore.toPlainText().splitlines() if line.strip()
        )
        config = dataclasses.replace(
            self.config,
            embedding_model=self.embedding.value(),
            encoder_precision=str(self.precision.currentData()),
            generator_model=self.generator.value(),
            answer_strategy=str(self.strategy.currentData()),
            device=self.device.currentText(),
            max_chunk_tokens=self.chunk.value(),
            ignore_patterns=patterns,
            backend=str(self.backend.currentData()),
            milvus_uri=self.milvus_uri.text().strip() or None,
            milvus_library=self.milvus_library.text().strip() or "kenning",
            milvus_token=self.milvus_token.text() or None,
        )
        return config, Path(self.data_dir.text().strip()).expanduser()

    def _explain(self) -> None:
        self._show_milvus_fields()
        try:
            config, _ = self.values()
        except ValueError as exc:
            self.note.setText(f"These settings are not valid: {exc}")
            return
        changed = changed_fields(self.config, config)
        if needs_reindex(self.config, config):
            text = (
                "Saving re-indexes every folder in the background, because the chunk "
                "size or ignore patterns changed; results fill in as it goes."
            )
        elif {"backend", "milvus_uri", "milvus_library"} & set(changed):
            text = (
                "Saving restarts the engine on the other library; this computer's folders "
                "are indexed into it in the background (files are read again only where "
                "the library lacks them)."
            )
        elif {"embedding_model", "encoder_precision"} & set(changed):
            text = (
                "Saving re-embeds your passages with the new model in the background "
                "(no file is read again); search keeps using the old model until it is done."
            )
        elif changed:
            text = "Saving restarts the engine with the new models; nothing is re-indexed."
        else:
            text = ""
        self.note.setText(text)

    def _browse_data(self) -> None:
        path = QFileDialog.getExistingDirectory(self, "Where Kenning keeps its index")
        if path:
            self.data_dir.setText(path)
