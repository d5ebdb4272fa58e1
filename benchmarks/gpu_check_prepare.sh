#!/usr/bin/env bash
# Before a GPU check on the lent device machine (docs/gpu.md): what it lacks, into ignored folders that `carry` takes.
#   .whl/       hydra-core, omegaconf and antlr4 wheels (pure Python; it has torch, lightning and the rest)
#   .gpu_data/  a copy of the rt-polarity files (it has no network to download them); never committed
set -euo pipefail
cd "$(dirname "$0")/.."
data="${RNN_LIGHTNING_DATA_DIR:-data/rt-polarity}"
rm -rf .whl && mkdir -p .whl .gpu_data/rt-polarity
# The versions this project is tested with here; antlr4 4.9.3 is published as source only, so it is built to a wheel.
python3 -m pip wheel --quiet --no-deps -w .whl hydra-core==1.3.8 omegaconf==2.3.1 antlr4-python3-runtime==4.9.3
cp "$data"/rt-polarity.pos "$data"/rt-polarity.neg .gpu_data/rt-polarity/
ls .whl .gpu_data/rt-polarity
