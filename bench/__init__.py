"""Benchmarks of uwe_kernels against the obvious compositions and published peers."""
