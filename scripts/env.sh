# Sourced by the scripts: a virtual environment in .venv with uvs installed (editable).
# UVS_EXTRAS=images,index,captions adds the optional parts (torch/torchvision/Pillow, faiss,
# pycocoevalcap).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
extras="test${UVS_EXTRAS:+,$UVS_EXTRAS}"
# The distribution was called `uvs` before it became `uvs-embeddings` (`uvs` on the package
# index is an unrelated project): an old editable install of this checkout under that name goes.
if .venv/bin/python -m pip show uvs 2>/dev/null | grep -qx "Editable project location: $PWD"; then
    .venv/bin/python -m pip uninstall -q -y --disable-pip-version-check uvs
fi
# --use-pep517: an editable install that maps uvs.cli to cli/ (the legacy `setup.py develop`
# that pip picks once `wheel` is installed would put the checkout on sys.path instead).
.venv/bin/python -m pip install -q --disable-pip-version-check --use-pep517 -e ".[$extras]"
export PATH="$PWD/.venv/bin:$PATH"
