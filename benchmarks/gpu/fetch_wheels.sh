#!/usr/bin/env bash
# Download, on this machine, the wheels the GPU machine needs into .whl/ (git-ignored): the
# packages of benchmarks/gpu/wheels.txt for its Python 3.12 on x86-64 Linux, and a wheel of
# this project (so that the `fcd train` entry point is registered there).
# Usage: bash benchmarks/gpu/fetch_wheels.sh   (from the repository root; needs the package index)
set -euo pipefail
cd "$(dirname "$0")/../.."
PY=${PY:-.venv/bin/python}
rm -rf .whl && mkdir -p .whl
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl -r benchmarks/gpu/wheels.txt
"$PY" -m pip wheel --quiet --no-deps --no-build-isolation -w .whl .
ls -l .whl
du -sh .whl
