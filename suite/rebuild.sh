#!/usr/bin/env bash
# Rebuild the bundled suite (v3) and everything made from it, from scratch:
#   1. the tokenizer and token cache, then the models (python3 -m suite.train; 2-3 hours on 2 CPU
#      cores, two processes of one thread each, which run steadier than one process of two on a
#      shared machine): the seven sizes and another seed of the largest, the noise ceiling;
#   2. commit-ready float16 copies of the weights in suite/models/ and suite/seeds/ (suite/export.py);
#   3. everything made from the weights (suite/build_data.sh): the prefix files, the default and
#      split datasets, the leaderboard, the targets and the agreement-vs-size table and plot.
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
mkdir -p build
"${train[@]}" --sizes 16x2x1 --bench-steps 1 > build/suite-data.log 2>&1  # the token cache both processes share
# The largest model and its other seed on one core, the six others on the other: 2-3 hours each
# (suite v3, on a 2-core machine shared with other work: 1.5M 82 min, its other seed 73 min).
( "${train[@]}" --sizes 160x5x5 && "${train[@]}" --sizes 160x5x5 --init-seed 1235 ) > build/suite-a.log 2>&1 &
"${train[@]}" --sizes 16x2x1,32x2x2,48x2x2,64x3x2,96x3x3,128x4x4 > build/suite-b.log 2>&1 &
wait -n && wait -n || { echo "training failed: see build/suite-{a,b}.log" >&2; exit 1; }
"${train[@]}" --report-only --results-dir suite
rm -rf suite/models suite/seeds
python3 -m suite.export build/suite/models suite/models --suite-json suite/suite.json
python3 -m suite.export build/suite/seeds suite/seeds --suite-json suite/suite.json
bash suite/build_data.sh
