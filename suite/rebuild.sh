#!/usr/bin/env bash
# Rebuild the bundled suite (v4) and everything made from it, from scratch:
#   1. the tokenizer and token cache, then the models (python3 -m suite.train; about 6 hours of
#      single-thread training, as two processes of one thread each on 2 CPU cores): the seven sizes,
#      another seed of the largest (the noise ceiling) and of 793K (the seed spread where 1-digit
#      addition jumps), each saving its checkpoints (suite.train.checkpoint_steps). A killed run
#      resumes: run this script again and each model goes on from its last checkpoint;
#   2. commit-ready float16 copies in suite/models/, suite/seeds/ and, for the ladder's checkpoints
#      (those with a wikipedia-test loss in [4.45, 4.70], every other one where they crowd; see
#      docs/bundled-suite.md), suite/checkpoints/ (suite/export.py);
#   3. everything made from the weights: suite/build_data.sh (the prefix files, the default and
#      split datasets, the leaderboard, the targets, the tables) and suite/build_ladder.sh (every
#      ladder point's 0-shot runs, its dataset, suite/ladder.{md,png}).
#
#   bash suite/rebuild.sh                      # corpus: ../shared/data/corpus
#   bash suite/rebuild.sh my_texts/ more.jsonl # any text/jsonl/tsv files or folders
set -euo pipefail
cd "$(dirname "$0")/.."
export HF_HUB_OFFLINE=1
if [ "$#" -eq 0 ]; then set -- ../shared/data/corpus; fi
train=(python3 -m suite.train --corpus "$@" --out build/suite --tokens 7864320 --threads 1 --split-digits
       --arithmetic-docs 43000 --results-dir build/suite/results)
mkdir -p build
"${train[@]}" --sizes 16x2x1 --bench-steps 1 > build/suite-data.log 2>&1  # the token cache both processes share
# Two single-thread processes of about 3 hours each (v4 times, per model: docs/bundled-suite.md).
( "${train[@]}" --sizes 160x5x5 && "${train[@]}" --sizes 160x5x5 --init-seed 1235 \
  && "${train[@]}" --sizes 16x2x1,32x2x2,48x2x2 ) > build/suite-a.log 2>&1 &
( "${train[@]}" --sizes 128x4x4 && "${train[@]}" --sizes 128x4x4 --init-seed 1235 \
  && "${train[@]}" --sizes 64x3x2,96x3x3 ) > build/suite-b.log 2>&1 &
wait -n && wait -n || { echo "training failed: see build/suite-{a,b}.log (rerun to resume)" >&2; exit 1; }
"${train[@]}" --report-only --results-dir suite
rm -rf suite/models suite/seeds suite/checkpoints
python3 -m suite.export build/suite/models suite/models --suite-json suite/suite.json
python3 -m suite.export build/suite/seeds suite/seeds --suite-json suite/suite.json
export_steps() { python3 -m suite.export "build/suite/checkpoints/$1" "suite/checkpoints/$1" --suite-json suite/suite.json --only "${@:2}"; }
# The committed v4 ladder also holds step3840 of the retrained 336K, 793K and 1.5M: retrained on
# another machine, they ended elsewhere than the v3 models (docs/bundled-suite.md). Trained in one
# run from scratch, step3840 is the final model itself, so it is not exported twice here.
export_steps suite-1.5m step2400 step2880 step3360
export_steps suite-0.79m step2880 step3360
export_steps suite-0.79m-seed1235 step2640 step2880 step3120 step3360 step3600
export_steps suite-0.34m step3360 step3600
bash suite/build_data.sh
bash suite/build_ladder.sh
