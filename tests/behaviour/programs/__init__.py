"""Task programs the behaviour tests run.

They live in importable modules (never inside test functions) so that Celery workers can import them when the suite
runs in the "remote" and "hybrid" modes, and they report what they observed through their return values or through
files under a path given as input, both of which cross process boundaries.
"""
