"""The package-level API the README documents: names, and no torch at import."""

from __future__ import annotations

import subprocess
import sys


def test_public_names_are_the_functions_even_after_submodule_imports():
    import FCDDetectLib
    import FCDDetectLib.detection.detect  # noqa: F401 - a submodule import must not shadow the function
    import FCDDetectLib.maps.heat_score  # noqa: F401
    from FCDDetectLib import detect, heat_score, heat_score_images, read_bundle_metadata, write_detection

    for function in (detect, heat_score, heat_score_images, read_bundle_metadata, write_detection):
        assert callable(function) and not isinstance(function, type(FCDDetectLib))
    assert FCDDetectLib.detect is detect
    assert FCDDetectLib.detection.detect.detect is detect  # one home: the function of the stage module


def test_importing_the_engine_and_reading_metadata_needs_no_torch():
    code = (
        "import sys, FCDDetectLib; from FCDDetectLib import read_bundle_metadata, detect; "
        "import FCDDetectLib.cli; FCDDetectLib.cli.build_parser(); "
        "print('torch' in sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"
