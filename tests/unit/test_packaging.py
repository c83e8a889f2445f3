"""pyproject.toml builds without setuptools deprecation warnings (seen in every `make test`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_pyproject_reads_without_deprecation_warnings() -> None:
    setuptools = pytest.importorskip("setuptools")
    from setuptools.config.pyprojecttoml import read_configuration

    major = int(setuptools.__version__.split(".")[0])
    assert major >= 77, "the dev extra installs setuptools>=77, as pyproject's build needs"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deprecation is a failure
        config = read_configuration(PYPROJECT)
    assert config["project"]["license"] == "GPL-3.0-or-later"  # the SPDX string form
    assert "setuptools>=77" in config["build-system"]["requires"][0]
