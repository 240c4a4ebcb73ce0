"""Data the tests compare against, kept apart from the tests that read it."""
