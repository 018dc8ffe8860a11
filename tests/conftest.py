"""Shared fixtures. Expensive ones (checkpoints, exports, adb servers) are session-scoped plugins; ``cli``
(tests/cli.py) is the one way a test runs the edgeship CLI."""

pytest_plugins = ["tests.fixtures.builds", "tests.fixtures.adb", "tests.cli"]
