# Sourced by the scripts: a virtual environment in .venv with uvs installed (editable).
# UVS_EXTRAS=images,index adds the optional parts (torch/torchvision/Pillow, faiss).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PY=${PYTHON:-python3}
[ -x .venv/bin/python ] || "$PY" -m venv .venv
extras="test${UVS_EXTRAS:+,$UVS_EXTRAS}"
.venv/bin/python -m pip install -q --disable-pip-version-check -e ".[$extras]"
export PATH="$PWD/.venv/bin:$PATH"
