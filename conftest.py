"""Doctest namespace: the examples in the package's docstrings run against a small synthetic zoo (``zoo_path``)."""

from __future__ import annotations

import pytest

from tests.zoos import write_synthetic_zoo


@pytest.fixture(scope="session")
def _doctest_zoo(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("doctest") / "zoo"
    write_synthetic_zoo(path, 6, preset="nws_fixed", diverged=())
    return str(path)


@pytest.fixture(autouse=True)
def _doctest_names(request: pytest.FixtureRequest, doctest_namespace: dict) -> None:
    if isinstance(request.node, pytest.DoctestItem):
        doctest_namespace["zoo_path"] = request.getfixturevalue("_doctest_zoo")
