#!/usr/bin/env bash
# Install uvs with its test tools into .venv and run the test suite (and ruff).
# UVS_EXTRAS=images,index also installs and tests the optional image and index parts.
source "$(dirname "$0")/env.sh"
ruff check uvs cli tests benchmarks
python -m pytest -q "$@"
