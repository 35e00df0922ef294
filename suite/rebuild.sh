#!/usr/bin/env bash
# Rebuild the bundled suite (v3) and everything made from it, from scratch:
#   1. the tokenizer and token cache, then the models (suite/train.py; about 2 hours on 2 CPU
#      cores, two processes of one thread each, which run steadier than one process of two on a
#      shared machine): the seven sizes and another seed of the largest, the noise ceiling;
#   2. commit-ready float16 copies of the weights in suite/models/ and suite/seeds/ (suite/export.py);
#   3. the train/test prefix files (suite/prefix_splits.py, from ../shared/data/prefix-source) and
#      the held-out arithmetic questions (suite/arithmetic.py);
#   4. the default datasets data/{wikipedia,glue-rte,arithmetic,copy}.pkl and the four split
#      datasets (suite/build_splits.sh), all through preprocess_train.py's CLI, as a user would run it;
#   5. the leaderboard, then the agreement-vs-size table and plot (suite/agreement_vs_size.py).
#
#   bash suite/rebuild.sh                      # corpus: ../shared/data/corpus
#   bash suite/rebuild.sh my_texts/ more.jsonl # any text/jsonl/tsv files or folders
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
if [ "$#" -eq 0 ]; then set -- ../shared/data/corpus; fi
train=(python3 -m suite.train --corpus "$@" --out build/suite --tokens 7864320 --threads 1 --split-digits
       --arithmetic-docs 43000 --results-dir build/suite/results)
rm -rf build/suite/models build/suite/seeds
"${train[@]}" --sizes 16x2x1 --bench-steps 1 > build/suite-data.log 2>&1  # the token cache both processes share
# The largest model and its other seed on one core, the six others on the other: about an hour each.
( "${train[@]}" --sizes 160x5x5 && "${train[@]}" --sizes 160x5x5 --init-seed 1235 ) > build/suite-a.log 2>&1 &
"${train[@]}" --sizes 16x2x1,32x2x2,48x2x2,64x3x2,96x3x3,128x4x4 > build/suite-b.log 2>&1 &
wait -n && wait -n || { echo "training failed: see build/suite-{a,b}.log" >&2; exit 1; }
"${train[@]}" --report-only --results-dir suite
rm -rf suite/models suite/seeds
python3 -m suite.export build/suite/models suite/models
python3 -m suite.export build/suite/seeds suite/seeds
python3 -m suite.prefix_splits
python3 -m suite.arithmetic --questions 100 --out data/prefixes/arithmetic.jsonl
common=(--models suite --device cpu --dtype float32 --meta-json suite/suite.json --no-progress)
python3 preprocess_train.py "${common[@]}" --dataset data/prefixes/wikipedia.txt --out data/wikipedia.pkl
python3 preprocess_train.py "${common[@]}" --dataset data/prefixes/arithmetic.jsonl --out data/arithmetic.pkl
python3 preprocess_train.py "${common[@]}" --dataset glue-rte --shots 2 --dataset-path ../shared/data/corpus/rte-train.tsv \
  --num-prefixes 100 --out data/glue-rte.pkl
python3 preprocess_train.py "${common[@]}" --dataset copy \
  --dataset-path ../shared/data/prefix-source/wikipedia-en-prefix-source.jsonl --num-prefixes 100 --out data/copy.pkl
bash suite/build_splits.sh
python3 challenge.py
python3 -m suite.targets
python3 -m suite.agreement_vs_size  # last: its exit status says whether agreement rises with size
