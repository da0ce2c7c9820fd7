"""Benchmark: this service against the reference design, side by side (`python -m bench`)."""
