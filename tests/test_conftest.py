"""The suite's own rules: when CI counts as set, and which tests carry `realdata`."""
from __future__ import annotations

import pytest

from conftest import under_ci


@pytest.mark.parametrize("value, want", [("true", True), ("TRUE", True), ("True", True), ("1", True),
                                         (" 1 ", True), ("", False), ("0", False), ("false", False),
                                         ("yes", False)])
def test_ci_is_set_by_true_or_1_in_any_case(monkeypatch, value, want):
    monkeypatch.setenv("CI", value)
    assert under_ci() is want


def test_ci_unset_is_not_ci(monkeypatch):
    monkeypatch.delenv("CI", raising=False)
    assert under_ci() is False


def test_missing_data_fails_under_ci_and_skips_elsewhere(monkeypatch, tmp_path):
    from conftest import _need
    gone = tmp_path / "no-such-dataset"
    monkeypatch.setenv("CI", "1")
    with pytest.raises(pytest.fail.Exception, match="missing under CI"):
        _need(gone)
    monkeypatch.setenv("CI", "")
    with pytest.raises(pytest.skip.Exception, match="not present"):
        _need(gone)
    assert _need(tmp_path) == tmp_path


def test_a_test_reaching_the_data_carries_the_marker(ml1m, request):
    """No explicit mark here: the conftest hook adds it (so -m "not realdata" deselects this)."""
    assert request.node.get_closest_marker("realdata") is not None
    assert (ml1m / "movies.dat").is_file()
