"""Speed and memory, measured (docs/benchmarks.md, RESULTS.md). Each benchmark runs as a module from
the repository root, e.g. `python3 -m benchmarks.scale --help`."""
