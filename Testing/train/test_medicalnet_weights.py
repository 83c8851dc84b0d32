"""FCDTrainLib.training.medicalnet_weights: families and official file names (the cache and download
are tested in Testing/slicer/test_slicer_train_logic.py)."""

from __future__ import annotations

import pytest
from FCDDetectLib.errors import FCDInputError
from FCDTrainLib.training.medicalnet_weights import (
    MEDICALNET_FILES,
    WEIGHT_FAMILIES,
    download_url,
    medicalnet_file_name,
)


def test_file_table():
    assert set(MEDICALNET_FILES) == set(WEIGHT_FAMILIES) == {"medicalnet8", "medicalnet23"}
    assert medicalnet_file_name("medicalnet8", 18) == "resnet_18.pth"
    assert medicalnet_file_name("medicalnet23", 34) == "resnet_34_23dataset.pth"
    assert download_url("medicalnet23", 50).endswith("MedicalNet-Resnet50/resolve/main/resnet_50_23dataset.pth")
    with pytest.raises(FCDInputError, match="family"):
        medicalnet_file_name("imagenet", 18)
    with pytest.raises(FCDInputError, match="ResNet-101"):
        medicalnet_file_name("medicalnet23", 101)
