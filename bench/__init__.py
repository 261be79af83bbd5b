"""The benchmark suite: `make bench` runs every benchmark and writes BENCHMARKS.md."""
