"""Programs written in the style of flyte-sdk's `examples/basics` File, Dir and DataFrame examples, with only the
imports changed (`import flyte_celery as flyte`, `from flyte_celery.io import ...`).

Each module's `main` task exercises one part of the API the way Flyte's examples do and returns what it saw, so
`tests/integration/test_flyte_io_examples.py` can run it in every mode and check the result.
"""
