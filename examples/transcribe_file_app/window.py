"""The file transcription window (PySide6): open, transcribe, cancel, progress, save."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QTimer, Signal
from PySide6.QtWidgets import (QFileDialog, QHBoxLayout, QLabel, QMainWindow, QPlainTextEdit, QProgressBar,
                               QPushButton, QVBoxLayout, QWidget)

import edge_asr

from .job import Finished, Started, TranscriptionJob

POLL_MS = 100


def timestamp(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m):02d}:{s:05.2f}"


class TranscribeWindow(QMainWindow):
    finished = Signal(bool)  # cancelled

    def __init__(self, model: edge_asr.WhisperModel, file: str | None = None, **options):
        super().__init__()
        self.model, self.options, self.file = model, options, file
        self.job: TranscriptionJob | None = None
        self.duration = 0.0
        self.setWindowTitle("edge-asr file transcription")
        self.resize(720, 420)
        self.file_label = QLabel(file or "(no file)")
        open_button = QPushButton("Open…")
        open_button.clicked.connect(self.choose_file)
        self.transcribe_button = QPushButton("Transcribe")
        self.transcribe_button.clicked.connect(self.start)
        self.cancel_button = QPushButton("Cancel")
        self.cancel_button.clicked.connect(self.cancel)
        self.save_button = QPushButton("Save…")
        self.save_button.clicked.connect(self.choose_save_path)
        self.progress = QProgressBar(minimum=0, maximum=1000)
        self.text = QPlainTextEdit(readOnly=True)
        self.status = QLabel()
        row = QHBoxLayout()
        for w in (open_button, self.file_label):
            row.addWidget(w)
        row.addStretch()
        buttons = QHBoxLayout()
        for w in (self.transcribe_button, self.cancel_button, self.save_button):
            buttons.addWidget(w)
        buttons.addWidget(self.progress, 1)
        layout = QVBoxLayout()
        for part in (row, buttons):
            layout.addLayout(part)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.status)
        central = QWidget()
        central.setLayout(layout)
        self.setCentralWidget(central)
        self.timer = QTimer(self, interval=POLL_MS)
        self.timer.timeout.connect(self.poll)
        self._set_running(False)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Audio file", "", "Audio (*.wav *.flac *.mp3 *.ogg *.m4a);;All (*)")
        if path:
            self.file = path
            self.file_label.setText(path)

    def start(self) -> None:
        if not self.file:
            self.status.setText("choose an audio file first")
            return
        self.text.clear()
        self.progress.setValue(0)
        self.status.setText("loading audio, detecting the language…")
        self.job = TranscriptionJob(self.model, self.file, **self.options).start()
        self._set_running(True)
        self.timer.start()

    def cancel(self) -> None:
        if self.job is not None:
            self.job.cancel()
            self.cancel_button.setEnabled(False)
            self.status.setText("cancelling after the current 30 s window…")

    def poll(self) -> None:
        if self.job is None:
            return
        for item in self.job.poll():
            if isinstance(item, Started):
                self.duration = item.info.duration
                self.status.setText(f"{item.info.language}, {item.info.duration:.1f} s of audio")
            elif isinstance(item, Finished):
                self.timer.stop()
                self.job = None
                self._set_running(False)
                if item.error:
                    self.status.setText(f"error: {item.error}")
                elif item.cancelled:
                    self.status.setText("cancelled; the segments so far are kept")
                else:
                    self.progress.setValue(1000)
                    self.status.setText("done")
                self.finished.emit(item.cancelled)
                return
            else:  # an edge_asr.Segment
                self.text.appendPlainText(f"[{timestamp(item.start)} → {timestamp(item.end)}] {item.text.strip()}")
                if self.duration:
                    self.progress.setValue(int(1000 * min(1.0, item.end / self.duration)))

    def choose_save_path(self) -> None:
        default = Path(self.file).with_suffix(".txt").name if self.file else "transcript.txt"
        path, _ = QFileDialog.getSaveFileName(self, "Save transcript", default, "Text (*.txt)")
        if path:
            Path(path).write_text(self.text.toPlainText() + "\n", encoding="utf-8")
            self.status.setText(f"saved to {path}")

    def _set_running(self, running: bool) -> None:
        self.transcribe_button.setEnabled(not running)
        self.cancel_button.setEnabled(running)

    def closeEvent(self, event) -> None:
        if self.job is not None:
            self.job.cancel()
        super().closeEvent(event)
