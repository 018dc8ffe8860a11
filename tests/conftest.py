"""Shared fixtures. Expensive ones (checkpoints, exports, adb servers) are session-scoped plugins."""

pytest_plugins = ["tests.fixtures.builds", "tests.fixtures.adb"]
