#!/usr/bin/env bash
# Rebuild the bundled suite and its datasets from scratch: train the models (suite/train.py; about
# 25 minutes on 2 CPU cores), then run preprocess_train.py on them through its CLI, as a user would,
# over the project's two prefix files, and score the result.
#
#   bash suite/rebuild.sh                      # corpus: ../shared/data/corpus
#   bash suite/rebuild.sh my_texts/ more.jsonl # any text/jsonl/tsv files or folders
#
# Weights stay in build/suite (git-ignored); data/*.pkl, their sidecars and suite/ results are rewritten.
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
if [ "$#" -eq 0 ]; then set -- ../shared/data/corpus; fi
python3 -m suite.train --corpus "$@" --rte-prompts ../shared/data/corpus/rte-train.tsv --out build/suite \
  --results-dir suite
# The tokenizer is small and committed, so strategies can decode token ids without the weights.
rm -rf suite/tokenizer && cp -r build/suite/data/tokenizer suite/tokenizer
models=$(python3 -c 'import json; print(" ".join(m["dir"] for m in json.load(open("build/suite/suite.json"))["models"]))')
for set in wikipedia:txt glue-rte:jsonl; do
  name=${set%%:*}
  python3 preprocess_train.py --models $models --dataset "data/prefixes/$name.${set##*:}" \
    --out "data/$name.pkl" --device cpu --dtype float32 --meta-json build/suite/suite.json
done
python3 challenge.py
