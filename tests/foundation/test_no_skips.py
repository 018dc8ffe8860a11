"""CI's no-skip mode (tests/fixtures/noskip.py): with EDGESHIP_NO_SKIPS=1 every kind of skip fails the run."""

from __future__ import annotations

import pytest

from tests.fixtures.noskip import ENV_VAR

SKIPPING = """
import pytest

@pytest.fixture(scope="session")
def missing_tool():
    pytest.skip("frobnicator is not installed (Debian package 'frobnicator')")

def test_passes():
    pass

def test_skips_inside():
    pytest.skip("no frobnicator here")

@pytest.mark.skipif(True, reason="needs a frobnicator")
def test_marked():
    pass

def test_fixture_skips(missing_tool):
    pass

@pytest.mark.xfail(reason="known to break")
def test_expected_to_fail():
    assert False
"""

MODULE_SKIP = """
import pytest
pytest.importorskip("no_such_module_for_edgeship_tests")

def test_never_collected():
    pass
"""


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    pytester.makepyfile(test_skipping=SKIPPING, test_module_skip=MODULE_SKIP)
    return pytester


def test_without_the_mode_skips_are_only_reported(suite: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.delenv(ENV_VAR, raising=False)
    result = suite.runpytest_inprocess("-p", "tests.fixtures.noskip", "-ra")
    result.assert_outcomes(passed=1, skipped=4, xfailed=1)
    assert result.ret == pytest.ExitCode.OK


def test_no_skip_mode_fails_every_skip_and_names_why(suite: pytest.Pytester, monkeypatch) -> None:
    monkeypatch.setenv(ENV_VAR, "1")
    result = suite.runpytest_inprocess("-p", "tests.fixtures.noskip", "-ra")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed") == 1 and "xfailed" not in outcomes
    assert outcomes.get("skipped") == 1  # the module: counted as skipped, listed below, and the run fails
    # marks and the fixture skip fail in setup (errors), the others in the call (failures)
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == 4
    text = result.stdout.str()
    assert f"{ENV_VAR}=1: 5 skipped" in text
    for reason in (
        "no frobnicator here",
        "needs a frobnicator",
        "frobnicator is not installed",
        "xfail: known to break",
        "no_such_module_for_edgeship_tests",
    ):
        assert reason in text, reason
