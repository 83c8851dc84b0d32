"""The parts of ``benchmarks/bench_families.py``: its cohorts and models, what it measures, its bar.

- :mod:`families.cohorts`: the scan families and models compared, the ``fcd synth`` cohorts
  and the training configuration;
- :mod:`families.measures`: per model, the figures on a family, the hostile inputs the OOD
  check flags, and test-retest on rescans;
- :mod:`families.verdict`: the issue's bar, item by item, and the Markdown table.

The script's folder, ``benchmarks/``, is on ``sys.path`` when it runs, which is how it finds
this package.

Example:
    >>> from families.measures import evaluate_family  # doctest: +SKIP
"""
