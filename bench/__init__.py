"""Load and latency benchmarks (run with `make bench`)."""
