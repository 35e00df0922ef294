#!/usr/bin/env bash
# Rebuild the bundled suite and everything made from it, from scratch:
#   1. train the models (suite/train.py; about 75 minutes on 2 CPU cores, two processes of one
#      thread each, which run steadier than one process of two on a shared machine);
#   2. commit-ready copies of the weights in suite/models/<short name>/;
#   3. the train/test prefix files (suite/prefix_splits.py, from ../shared/data/prefix-source);
#   4. the small default datasets data/{wikipedia,glue-rte}.pkl and the four split datasets
#      (suite/build_splits.sh), all through preprocess_train.py's CLI, as a user would run it;
#   5. the leaderboard, then the agreement-vs-size table and plot (suite/agreement_vs_size.py).
#
#   bash suite/rebuild.sh                      # corpus: ../shared/data/corpus
#   bash suite/rebuild.sh my_texts/ more.jsonl # any text/jsonl/tsv files or folders
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
if [ "$#" -eq 0 ]; then set -- ../shared/data/corpus; fi
train=(python3 -m suite.train --corpus "$@" --rte-prompts ../shared/data/corpus/rte-train.tsv --out build/suite
       --tokens 7864320 --threads 1 --results-dir build/suite/results)
rm -rf build/suite/models
"${train[@]}" --sizes 160x5x5,16x2x1,32x2x2 > build/suite-a.log 2>&1 &
"${train[@]}" --sizes 128x4x4,96x3x3,64x3x2,48x2x2 > build/suite-b.log 2>&1 &
wait -n && wait -n || { echo "training failed: see build/suite-{a,b}.log" >&2; exit 1; }
"${train[@]}" --report-only --results-dir suite
rm -rf suite/models && mkdir -p suite/models
for dir in build/suite/models/*/; do
  mkdir -p "suite/models/$(basename "$dir")"
  cp "$dir"/{config.json,generation_config.json,model.safetensors,tokenizer.json,tokenizer_config.json} \
     "suite/models/$(basename "$dir")/"
done
python3 -m suite.prefix_splits
for prefixes in wikipedia.txt glue-rte.jsonl; do
  python3 preprocess_train.py --models suite --dataset "data/prefixes/$prefixes" --out "data/${prefixes%.*}.pkl" \
    --device cpu --dtype float32 --meta-json suite/suite.json --no-progress
done
bash suite/build_splits.sh
python3 challenge.py
python3 -m suite.agreement_vs_size  # last: its exit status says whether agreement rises with size
