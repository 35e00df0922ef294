"""Shared code of the challenge: dataset I/O, prefixes, tokenizers, inference and scoring.

`challenge.py`, `preprocess_train.py`, `blind_test.py` and `predict_emergence.py` are the entry points;
each concept lives in exactly one module here. The rule the layout is moving to: three folders,
`data/` (what both sides share: files and the questions asked), `analysis/` (numpy and scipy, never
torch: what runs on a laptop from results already computed) and `models/` (torch and transformers).
The forecasting modules live there already:

- `data/study`: an emergence study's task data (test, validation, finetuning pool) and results file;
- `analysis/emergence_law`, `analysis/forecast`, `analysis/forecast_report`: the law, its fit,
  bootstrap and backtest, the table and the pictures of predict_emergence.py;
- `models/suites`: which models a command names (Pythia, the bundled suite, hub ids), checked before
  torch loads; `models/processes`: joining and leaving accelerate's process group;
  `models/finetune`: the study's runs (finetuning, scoring, pretraining loss).

The modules below are still flat:

- `dataset`: the pickle format (validation, writing), its JSON sidecar, and model names;
- `safe_pickle`: loading a pickle without running code from it, in memory bounded by the file;
- `files`: atomic writes, output paths checked before work, user text files;
- `resume_cache`: preprocessing's per-model cache, beside `inference`;
- `prefixes`: the prefix sets and their gold answers (Wikipedia openings, GLUE RTE prompts, copying,
  arithmetic, a user's .txt/.jsonl);
- `tokenizer`: a model's tokenizer, with the `tokenizers` package alone (encoding and decoding);
- `inference`: running a model suite over prefixes into a float16 probability tensor (torch),
  `run_suite`, with each model's scores of the prefixes' answers and the noise ceiling;
- `registry`: what a strategy is, `register`/`learned`/`whole_array`, loading one from a user's file;
- `scoring`: the target view (top-1s, emergent prefixes, float16 ties), scores, bootstrap intervals,
  paired comparisons and strategy-output checks (numpy only);
- `metrics`: top-5, log-loss, KL, alpha and tokens per target pass; their bootstrap and paired tests
  (numpy only);
- `tasks`: task accuracy against scale and "is prediction harder here?" (numpy only);
- `learned`: training splits read chunk by chunk, folds, train/test disjointness (numpy only);
- `evaluate`: the engine: a dataset opened for scoring, strategies run chunk by chunk (with the
  fits of learned ones), `score_dataset`, `predict_dataset`, `show_prefix`, typed results;
- `leaderboard`: what `challenge.py` prints and writes from those results (leaderboard, --show, CSV);
- `blind`: the blind test's public file, private answers and predictions CSVs (numpy only);
- `report`: the pictures of `challenge.py --report` (matplotlib, imported only when drawing);
- `cli`: what every entry point does alike (one-line errors and warnings, exit codes).
"""


class InputError(Exception):
    """Bad input (a dataset, prefix file, model suite or flag): the message is one line naming it."""


def one_line(text: object) -> str:
    """`text` on one line: some of CPython's and numpy's messages hold newlines."""
    return " ".join(str(text).split())


def plural(count: int, one: str, many: str) -> str:
    """`one` or `many` as `count` asks: "1 prefix", "2 prefixes"."""
    return one if count == 1 else many
