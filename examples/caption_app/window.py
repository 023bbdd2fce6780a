"""The caption app's window (PySide6): source and device picker, start/stop, live text, save.

Committed text is drawn in the normal colour and never redrawn; the tentative tail after it (which may
still change) is grey and italic, and is the only part replaced on each update, so a long session does
not re-layout the whole document. Events are drained from the session on the GUI thread by a QTimer.
"""

from __future__ import annotations

from PySide6.QtCore import QTimer, Signal
from PySide6.QtGui import QColor, QFont, QTextCharFormat, QTextCursor
from PySide6.QtWidgets import (QButtonGroup, QComboBox, QFileDialog, QHBoxLayout, QLabel, QMainWindow,
                               QPushButton, QRadioButton, QTextEdit, QVBoxLayout, QWidget)

import edge_asr

from .engine import CaptionSession, CaptionState, FileSource, MicSource, SessionEnded, input_devices, save_transcript

POLL_MS = 50  # how often the GUI drains the session's events (captions feel live below ~100 ms)


class CaptionWindow(QMainWindow):
    rendered = Signal()  # after each event is drawn (tests and accessibility tools can follow along)
    finished = Signal(str)  # the session's final committed text

    def __init__(self, model: edge_asr.WhisperModel, options: edge_asr.StreamingOptions | None = None,
                 file: str | None = None, realtime: bool = True):
        super().__init__()
        self.model, self.options, self.realtime = model, options, realtime
        self.session: CaptionSession | None = None
        self.state = CaptionState()
        self.setWindowTitle("edge-asr live captions")
        self.resize(720, 420)

        self.mic_button = QRadioButton("Microphone")
        self.file_button = QRadioButton("File")
        group = QButtonGroup(self)
        group.addButton(self.mic_button)
        group.addButton(self.file_button)
        self.device_box = QComboBox()
        self.file_label = QLabel(file or "(no file)")
        self.file = file
        browse = QPushButton("Open…")
        browse.clicked.connect(self.choose_file)
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self.start)
        self.stop_button = QPushButton("Stop")
        self.stop_button.clicked.connect(self.stop)
        self.save_button = QPushButton("Save transcript…")
        self.save_button.clicked.connect(self.choose_save_path)
        self.text = QTextEdit(readOnly=True)
        self.text.setFont(QFont(self.text.font().family(), 14))
        self.status = QLabel()

        source_row = QHBoxLayout()
        for w in (self.mic_button, self.device_box, self.file_button, self.file_label, browse):
            source_row.addWidget(w)
        source_row.addStretch()
        button_row = QHBoxLayout()
        for w in (self.start_button, self.stop_button, self.save_button):
            button_row.addWidget(w)
        button_row.addStretch()
        layout = QVBoxLayout()
        layout.addLayout(source_row)
        layout.addLayout(button_row)
        layout.addWidget(self.text, 1)
        layout.addWidget(self.status)
        central = QWidget()
        central.setLayout(layout)
        self.setCentralWidget(central)

        self.committed_format = QTextCharFormat()
        self.tentative_format = QTextCharFormat()
        self.tentative_format.setForeground(QColor("#808080"))
        self.tentative_format.setFontItalic(True)
        self._tentative_at = 0  # document position where the tentative tail starts

        self._fill_devices()
        (self.file_button if file or not self.mic_button.isEnabled() else self.mic_button).setChecked(True)
        self.timer = QTimer(self, interval=POLL_MS)
        self.timer.timeout.connect(self.poll)
        self._set_running(False)

    # ---- sources ---------------------------------------------------------------------------------------
    def _fill_devices(self) -> None:
        found = input_devices()
        self.device_box.clear()
        if found.problem:  # no PortAudio / sounddevice / devices: say so, keep file input usable
            self.device_box.addItem("no microphone")
            self.device_box.setEnabled(False)
            self.mic_button.setEnabled(False)
            self.status.setText(found.problem)
            return
        for d in found.devices:
            self.device_box.addItem(f"{d['name']} ({d['default_samplerate']:.0f} Hz)", d["index"])
            if d["default"]:
                self.device_box.setCurrentIndex(self.device_box.count() - 1)

    def choose_file(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Audio file", "", "Audio (*.wav *.flac *.mp3 *.ogg *.m4a);;All (*)")
        if path:
            self.file = path
            self.file_label.setText(path)
            self.file_button.setChecked(True)

    # ---- session ---------------------------------------------------------------------------------------
    def start(self) -> None:
        if self.file_button.isChecked():
            if not self.file:
                self.status.setText("choose an audio file first")
                return
            source = FileSource(self.file, realtime=self.realtime)
        else:
            source = MicSource(self.device_box.currentData())
        self.text.clear()
        self.state = CaptionState()
        self._tentative_at = 0
        try:
            self.session = CaptionSession(self.model, source, self.options).start()
        except edge_asr.EdgeASRError as e:  # options the model cannot honour
            self.status.setText(f"error: {e}")
            return
        self.status.setText(f"listening to {source.label}")
        self._set_running(True)
        self.timer.start()

    def stop(self) -> None:
        if self.session is not None:
            self.status.setText("finishing: decoding what was heard…")
            self.stop_button.setEnabled(False)
            self.session.stop()

    def poll(self) -> None:
        if self.session is None:
            return
        for item in self.session.poll():
            if isinstance(item, SessionEnded):
                self._ended(item)
                return
            self._draw(self.state.apply(item))

    def _ended(self, end: SessionEnded) -> None:
        self.timer.stop()
        self.session = None
        self._set_running(False)
        self.status.setText(f"stopped: {end.error}" if end.error else "done")
        self.finished.emit(end.text)

    def _draw(self, change) -> None:
        cursor = QTextCursor(self.text.document())
        cursor.setPosition(self._tentative_at)
        cursor.movePosition(QTextCursor.MoveOperation.End, QTextCursor.MoveMode.KeepAnchor)
        cursor.removeSelectedText()  # the old tentative tail
        if change.committed:
            cursor.insertText(change.committed, self.committed_format)
        if change.new_line:
            cursor.insertBlock()
        self._tentative_at = cursor.position()
        if change.tentative:
            cursor.insertText(" " + change.tentative if self.state.lines[-1] else change.tentative,
                              self.tentative_format)
        if change.status:
            self.status.setText(change.status)
        self.text.moveCursor(QTextCursor.MoveOperation.End)
        self.rendered.emit()

    # ---- output ----------------------------------------------------------------------------------------
    def committed_view_text(self) -> str:
        """The committed text as the window shows it (the document up to the tentative tail)."""
        return self.text.document().toPlainText()[:self._tentative_at]

    def tentative_view_text(self) -> str:
        return self.text.document().toPlainText()[self._tentative_at:]

    def choose_save_path(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save transcript", "transcript.txt", "Text (*.txt);;JSON (*.json)")
        if path:
            self.save(path)

    def save(self, path: str) -> None:
        try:
            saved = save_transcript(self.state, path)
        except OSError as e:
            self.status.setText(f"cannot save: {e}")
            return
        self.status.setText(f"transcript saved to {saved}")

    def _set_running(self, running: bool) -> None:
        self.start_button.setEnabled(not running)
        self.stop_button.setEnabled(running)
        for w in (self.mic_button, self.file_button):
            w.setEnabled(not running and (w is not self.mic_button or self.device_box.isEnabled()))

    def closeEvent(self, event) -> None:  # stop capture; the daemon thread ends with the app
        if self.session is not None:
            self.session.stop()
        super().closeEvent(event)
