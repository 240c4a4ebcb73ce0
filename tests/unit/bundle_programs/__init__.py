"""Importable task modules for the code-bundle unit tests (tests/unit/test_bundle.py)."""
