#!/usr/bin/env bash
# The ladder's measurements from the committed suite (sizes, seeds, suite/checkpoints/), offline on CPU:
#   1. every ladder point's 0-shot runs of the bundled study's tasks (1- and 2-digit addition), in
#      data/emergence/suite-ladder.jsonl with its pretraining loss on wikipedia-test (points already
#      there are skipped; the finetuned runs stay the bundled study's, data/emergence/suite-addition.jsonl);
#   2. every point's next-token distributions on the 1,000 wikipedia-test prefixes
#      (data/ladder-wikipedia-test.pkl, git-ignored), for agreement with the target;
#   3. suite/ladder.{md,json,png}: accuracy and agreement against pretraining loss (suite/ladder.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
python3 predict_emergence.py --models ladder --data-sizes 0 --device cpu --no-progress
python3 preprocess_train.py --models ladder --dataset data/prefixes/wikipedia-test.jsonl \
  --out data/ladder-wikipedia-test.pkl --device cpu --dtype float32 --meta-json suite/suite.json --no-progress
python3 -m suite.ladder
