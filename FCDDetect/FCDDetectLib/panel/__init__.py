"""Qt-free decisions of the Slicer panels ("presenters"), tested without Qt or Slicer.

The Qt widgets (``FCDDetectWidgets``, ``FCDTrainWidgets``) only read widgets, call these
classes and apply what they return (what to enable, what to show, which error). Nothing
here imports ``qt``, ``ctk`` or ``slicer``; the engine never imports this package.

- :mod:`.paths`: path fields ("" and "." mean *unset*), folders that are safe to scan.
- :mod:`.models_registry`: the models folders both modules share (one settings key).
- :mod:`.compat`: the supported Slicer versions and the message for an older one.
- :mod:`.detect_presenter`: FCDDetect's panel decisions, against a logic Protocol.
- :mod:`.install_check`: the first-run "Check installation" report.
"""
