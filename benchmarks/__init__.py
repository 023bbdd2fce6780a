"""edge-asr benchmarks (import name ``edge_asr_bench``): accuracy and speed measurements."""
