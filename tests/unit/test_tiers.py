"""The tiers are folders (tests/conftest.py): a test in tests/unit that loads a real offline model or is marked
`integration`, or a test file outside both folders, stops the run with its name and where it belongs."""

from __future__ import annotations

from tests import conftest

UNIT, INTEGRATION = conftest.UNIT, conftest.INTEGRATION


def test_a_unit_test_using_a_real_model_is_refused_naming_the_fixture():
    problem = conftest.tier_problem(UNIT / "test_x.py", ["tmp_path", "smol_model"], marked_integration=False)
    assert problem is not None and "loads smol_model" in problem and "tests/integration" in problem
    problem = conftest.tier_problem(UNIT / "experiments" / "test_x.py", ["gemma_bridge"], marked_integration=False)
    assert problem is not None and "gemma_bridge" in problem


def test_a_unit_test_marked_integration_is_refused():
    problem = conftest.tier_problem(UNIT / "test_x.py", ["tmp_path"], marked_integration=True)
    assert problem is not None and "is marked integration" in problem


def test_a_test_outside_both_tiers_is_refused():
    """A test added to an old path (tests/test_x.py) or a new folder belongs to no tier."""
    for path in (conftest.TESTS / "test_x.py", conftest.TESTS / "experiments" / "test_x.py"):
        problem = conftest.tier_problem(path, [], marked_integration=False)
        assert problem is not None and "outside tests/unit and tests/integration" in problem


def test_tests_in_their_tier_and_the_doctests_pass():
    assert conftest.tier_problem(UNIT / "test_x.py", ["gpt2_like", "tmp_path"], marked_integration=False) is None
    assert conftest.tier_problem(INTEGRATION / "test_x.py", ["smol_model"], marked_integration=True) is None
    doctest = conftest.TESTS.parent / "anchorlens" / "stats.py"
    assert conftest.tier_problem(doctest, [], marked_integration=False) is None


def test_the_collected_tiers_follow_the_folders(pytestconfig):
    """This run's own items (collected by the real hook): integration is the folder, nothing else."""
    session = pytestconfig.pluginmanager.get_plugin("session") or None
    items = getattr(session, "items", [])
    assert items, "no collected items to check"
    for item in items:
        in_integration = INTEGRATION in item.path.parents
        assert (item.get_closest_marker("integration") is not None) == in_integration, item.nodeid
