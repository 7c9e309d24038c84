#!/usr/bin/env bash
# Install uvs with its test tools into .venv; run ruff, the guide's strict MkDocs build and the tests.
# UVS_EXTRAS=images,index,captions also installs and tests the optional parts.
export UVS_EXTRAS="report,docs${UVS_EXTRAS:+,$UVS_EXTRAS}"  # the HTML report's tests; the guide
source "$(dirname "$0")/env.sh"
# ... and headless Chromium (Debian's package), installed when missing and run as root
if ! command -v chromium >/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
ruff check uvs cli tests benchmarks
mkdocs build --strict -q   # the user guide in docs/: a broken link or a missing page fails
python -m pytest -q -rs "$@"
