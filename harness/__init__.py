"""The challenge's library. Its one rule is the layout: scoring needs numpy only, models need torch.

    data/     what both sides share: the dataset file (dataset, safe_pickle, files), the prefixes
              and their answers (prefixes), tokenizers (tokenizer), an emergence study's data (study)
    scoring/  numpy (and scipy), never torch: strategies run and scored on a laptop from a dataset
              file (registry, evaluate, top1, metrics, stats, tasks, learned, leaderboard, report,
              blind), and the analyses of results already computed (emergence_law, forecast,
              forecast_report, drafting)
    models/   torch and transformers: which models a command names (suites), running them over
              prefixes (inference, resume_cache), finetuning (finetune), drafting (drafting),
              accelerate's process group (processes)
    cli.py    what every entry point does alike: one-line errors and warnings, exit codes

Imports go one way: models/ may use scoring/ and data/, scoring/ uses data/, data/ uses neither
(tests/test_layout.py checks it, and that nothing on the scoring side imports torch).
`challenge.py`, `blind_test.py`, `preprocess_train.py` and `predict_emergence.py` are the entry
points; nothing imports them.
"""


class InputError(Exception):
    """Bad input (a dataset, prefix file, model suite or flag): the message is one line naming it."""


def one_line(text: object) -> str:
    """`text` on one line: some of CPython's and numpy's messages hold newlines."""
    return " ".join(str(text).split())


def plural(count: int, one: str, many: str) -> str:
    """`one` or `many` as `count` asks: "1 prefix", "2 prefixes"."""
    return one if count == 1 else many
