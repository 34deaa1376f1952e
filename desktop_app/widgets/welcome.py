"""The first-run welcome: add a folder, or try the sample notes that ship with Kenning."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

SAMPLE_NOTES = Path(__file__).resolve().parents[2] / "resources" / "sample_notes"


class WelcomePage(QWidget):
    """Shown while no folder is indexed; emits what the person picked."""

    sig_add_folder = Signal()
    sig_try_samples = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAccessibleName("Welcome")
        text = QLabel(
            "<h2>Welcome to Kenning</h2>"
            "<p>Kenning reads the notes and documents you point it at, on this computer "
            "only, and answers questions about them with the exact passages it used.</p>"
            "<p>Start with a folder of your own, or try the sample notes to see how it "
            "works. You can also drop a folder onto this window.</p>",
            self,
        )
        text.setWordWrap(True)
        text.setAlignment(Qt.AlignmentFlag.AlignCenter)
        text.setFixedWidth(520)
        # A word-wrapped label inside an aligned layout item is given its unwrapped
        # height on a tall window, which cut the last line off: it may not shrink.
        text.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Minimum)
        text.setMinimumHeight(text.heightForWidth(520))
        self.add_button = QPushButton("Add a folder…", self)
        self.add_button.setAccessibleName("Add a folder")
        self.add_button.setDefault(True)
        self.add_button.clicked.connect(self.sig_add_folder)
        self.samples_button = QPushButton("Try the sample notes", self)
        self.samples_button.setAccessibleName("Try the sample notes")
        self.samples_button.setToolTip(str(SAMPLE_NOTES))
        self.samples_button.clicked.connect(self.sig_try_samples)
        self.samples_button.setVisible(SAMPLE_NOTES.is_dir())
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.add_button)
        buttons.addWidget(self.samples_button)
        buttons.addStretch(1)
        column = QVBoxLayout(self)
        column.addStretch(1)
        column.addWidget(text, 0, Qt.AlignmentFlag.AlignHCenter)
        column.addLayout(buttons)
        column.addStretch(2)
