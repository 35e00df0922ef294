#!/usr/bin/env bash
# Build the bundled challenge's four train/test datasets from the committed suite (suite/models/),
# offline on CPU, in about 90 seconds on 2 cores:
#
#   bash suite/build_splits.sh
#
# Writes data/{wikipedia,glue-rte}-{train,test}.pkl and their sidecars (git-ignored: ~56 KB per
# prefix). `python3 challenge.py` then scores each test set too, fitting learned strategies on its
# training set only.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
for name in wikipedia-train wikipedia-test glue-rte-train glue-rte-test; do
  python3 preprocess_train.py --models suite --dataset "data/prefixes/$name.jsonl" --out "data/$name.pkl" \
    --device cpu --dtype float32 --meta-json suite/suite.json --no-progress
done
