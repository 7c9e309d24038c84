#!/usr/bin/env bash
# Install uvs with its test tools into .venv and run the test suite (and ruff).
# UVS_EXTRAS=images,index,captions also installs and tests the optional parts.
export UVS_EXTRAS="report${UVS_EXTRAS:+,$UVS_EXTRAS}"  # the HTML report's tests need it
source "$(dirname "$0")/env.sh"
# ... and headless Chromium (Debian's package), installed when missing and run as root
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
ruff check uvs cli tests benchmarks
python -m pytest -q -rs "$@"
