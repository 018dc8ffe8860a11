"""Shared fixtures. Expensive ones (checkpoints, exports, adb servers) are session-scoped plugins; ``cli``
(tests/cli.py) is the one way a test runs the edgeship CLI; tests/fixtures/noskip.py is CI's no-skip mode
(``EDGESHIP_NO_SKIPS=1``: any skip fails the run)."""

pytest_plugins = [
    "tests.fixtures.builds",
    "tests.fixtures.adb",
    "tests.fixtures.noskip",
    "tests.cli",
    "pytester",
]
