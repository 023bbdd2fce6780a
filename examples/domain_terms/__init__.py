"""Fine-tune Whisper on your own terms and ship it with edge-asr (README: "Your own vocabulary")."""
