#!/usr/bin/env bash
# Set up .venv with torch, sbcore (editable, with test, ops and docs extras: submitit, neptune, TensorBoard, wandb,
# MkDocs) and every plugin in plugins/.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check torch==2.14.1 torchvision==0.29.1
args=(-e ".[test,ops,docs]")
for p in plugins/sb-*/; do
  [ -f "$p/pyproject.toml" ] && args+=(-e "$p")
done
# core and plugins in one call: the plugins depend on `sbcore`, which must resolve locally
.venv/bin/pip install --quiet --disable-pip-version-check "${args[@]}"
echo "environment ready: .venv ($(.venv/bin/python -c 'import torch; print("torch", torch.__version__)'))"
