"""StrokeLens benchmarks: ``python -m benchmarks [--quick] [--out bench]``.

Each measurement lives in its own module (warm, cold, package, e2e, cost, scaling); report
renders ``report.json`` into markdown. TensorFlow is only ever imported in child processes.
"""
