"""The Celery edge: app factory, wire envelope, bundles, result records, the worker runtime and the launcher.

Nothing outside this package (and `flyte_celery.worker`) imports Celery or redis.
"""
