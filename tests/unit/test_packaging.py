"""pyproject.toml builds without setuptools deprecation warnings (seen in every `make test`)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

PYPROJECT = Path(__file__).resolve().parents[2] / "pyproject.toml"


def test_pyproject_reads_without_deprecation_warnings() -> None:
    setuptools = pytest.importorskip("setuptools")
    from setuptools.config.pyprojecttoml import apply_configuration, read_configuration
    from setuptools.dist import Distribution

    major = int(setuptools.__version__.split(".")[0])
    assert major >= 77, "the dev extra installs setuptools>=77, as pyproject's build needs"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a deprecation is a failure
        config = read_configuration(PYPROJECT)
        dist = apply_configuration(Distribution(), PYPROJECT)  # what a build does
    assert dist.get_name() == "failwatch-moonraker"
    assert config["project"]["license"] == "GPL-3.0-or-later"  # the SPDX string form
    assert "setuptools>=77" in config["build-system"]["requires"][0]
