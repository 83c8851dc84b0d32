"""Fixtures shared by the engine's tests (the cohort tests, local and on Ray)."""

from __future__ import annotations

import pytest

from Testing.builders.cohort_fixtures import tiny_cohort_bundle, write_bids_cohort


@pytest.fixture(scope="module")
def bundle_path(tmp_path_factory):
    """A tiny untrained FLAIR bundle on disk (seeded)."""
    return tiny_cohort_bundle(tmp_path_factory.mktemp("b"))


@pytest.fixture(scope="module")
def bundle(bundle_path):
    """:func:`bundle_path`, loaded on the CPU."""
    from FCDDetectLib.networks.bundle import load_bundle

    return load_bundle(bundle_path, device="cpu")


@pytest.fixture
def bids(tmp_path):
    """Four subjects in the ds004199 layout: two good (one with an ROI), one corrupt FLAIR, one without FLAIR."""
    return write_bids_cohort(tmp_path / "bids")
