"""Benchmarks of flyte-celery; run each script directly, e.g. `python bench/local.py`."""
