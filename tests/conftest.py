"""Test-suite options: the minutes-long ``slow`` tests run only when asked for.

``pytest`` alone skips them (with the reason); ``pytest --run-slow`` runs them too, and
``pytest --run-slow -m slow`` runs only them (what ``make test-slow`` does).
"""
import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-slow", action="store_true", default=False,
                     help="also run the tests marked slow (minutes-long training and paper "
                          "reproductions)")


def pytest_collection_modifyitems(config: pytest.Config, items) -> None:
    if config.getoption("--run-slow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
