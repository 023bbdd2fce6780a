"""PyInstaller's entry script: the file transcription example as a program (window, or --headless)."""

import sys

from transcribe_file_app.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
