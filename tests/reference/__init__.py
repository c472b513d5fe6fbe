"""Independent references for the engine tests and benchmarks (never imported by the library)."""
