"""Shared code of the challenge: dataset I/O, prefixes, tokenizers, inference and scoring.

`challenge.py`, `preprocess_train.py` and `blind_test.py` are the entry points; each concept lives in exactly
one module here:

- `dataset_io`: the pickle format (safe loading, validation, atomic writing), its JSON sidecar,
  and preprocessing's resume cache;
- `prefixes`: the prefix sets (Wikipedia openings, GLUE RTE prompts, a user's .txt/.jsonl);
- `tokenizer`: a model's tokenizer, with the `tokenizers` package alone (encoding and decoding);
- `inference`: running a model suite over prefixes into a float16 probability tensor (torch),
  `run_suite`;
- `scoring`: top-1 agreement, bootstrap intervals and strategy-output checks (numpy only);
- `learned`: how learned strategies are fitted and scored on prefixes they did not see (numpy only);
- `blind`: the blind test's public file, private answers and predictions CSVs (numpy only);
- `report`: the pictures of `challenge.py --report` (matplotlib, imported only when drawing).
"""


class InputError(Exception):
    """Bad input (a dataset, prefix file, model suite or flag): the message is one line naming it."""


def plural(count: int, one: str, many: str) -> str:
    """`one` or `many` as `count` asks: "1 prefix", "2 prefixes"."""
    return one if count == 1 else many
