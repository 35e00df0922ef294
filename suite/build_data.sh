#!/usr/bin/env bash
# Everything made from the committed suite (suite/models/, suite/seeds/), offline on CPU, in about
# 2.5 minutes on 2 cores (suite/rebuild.sh runs it after training):
#   1. the train/test prefix files (suite/prefix_splits.py, from ../shared/data/prefix-source) and
#      the held-out arithmetic questions (suite/arithmetic.py);
#   2. the default datasets data/{wikipedia,glue-rte,arithmetic,copy}.pkl: Wikipedia openings,
#      2-shot RTE (demonstrations and queries from disjoint halves of ../shared's rte-train.tsv),
#      held-out 2-digit addition (0-shot) and in-context copying of unseen Wikipedia text; and the
#      four split datasets (suite/build_splits.sh); all through preprocess_train.py's CLI;
#   3. the leaderboard, the targets (suite/targets.py), the tables of README.md and docs/ (suite/doc_tables.py)
#      and agreement vs size (suite/agreement_vs_size.py).
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
python3 -m suite.prefix_splits
python3 -m suite.arithmetic --questions 100 --out data/prefixes/arithmetic.jsonl
common=(--models suite --device cpu --dtype float32 --meta-json suite/suite.json --no-progress)
python3 preprocess_train.py "${common[@]}" --dataset data/prefixes/wikipedia.txt --out data/wikipedia.pkl
python3 preprocess_train.py "${common[@]}" --dataset data/prefixes/arithmetic.jsonl --out data/arithmetic.pkl
python3 preprocess_train.py "${common[@]}" --dataset glue-rte --shots 2 --num-prefixes 100 \
  --dataset-path ../shared/data/corpus/rte-train.tsv --out data/glue-rte.pkl
python3 preprocess_train.py "${common[@]}" --dataset copy --num-prefixes 100 \
  --dataset-path ../shared/data/prefix-source/wikipedia-en-prefix-source.jsonl --out data/copy.pkl
bash suite/build_splits.sh
python3 challenge.py
python3 -m suite.targets
python3 -m suite.doc_tables --measure scores  # the README's and docs/' tables of the test splits (suite/scores.json)
python3 -m suite.agreement_vs_size  # last: its exit status says whether agreement rises with size
