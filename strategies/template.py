"""Template for your own strategy: copy this file, rename the function, and run

    python challenge.py --strategy path/to/your_file.py:my_strategy

or put the copy in strategies/ with `@register("my-name")` above the function so that it joins
the leaderboard of `python challenge.py` and `--list`.

The API is the original challenge's, so functions written for it run unchanged:

    sentences            list of N prefixes (str)
    model_names          names of the M-1 input models, smallest to largest; each is a str that
                         also carries the model's size from the dataset's sidecar (None where
                         the sidecar does not say): `name.non_embedding_params`, `name.total_params`
    target_model_name    name of the model whose top-1 token you predict (its probabilities are hidden)
    probs_per_sentences  read-only numpy float16 array (N, M-1, V): probs_per_sentences[i, j, k]
                         is input model j's probability of token k after prefix i; V is the
                         tokenizer size. Copy it (`.astype(np.float32)`) to compute in place.

Return one integer token id in [0, V) per sentence (a list or a 1-D integer array).
Work on the whole array at once with numpy: it is far faster than a loop per sentence.
Randomness: challenge.py seeds `random` and `numpy.random` with --seed before each strategy.
Token strings: `from strategies import load_tokenizer; load_tokenizer(target_model_name).decode([k])`.

A strategy may also learn (see `my_learned_strategy` below): mark a fit function with `@learned`
(or `@register("name", learned=True)`). It receives a `harness.learned.TrainingSplit` with the
training prefixes' `sentences`, `model_names`, `target_model_name`, `probs_per_sentences` (the
input models), `target_probs` (N, V) and `target_top1` (N,), and returns an ordinary strategy
as above, which then predicts prefixes it never saw from the input models alone:

    python challenge.py --train data/wikipedia-train.pkl --dataset data/wikipedia-test.pkl \
        --strategy path/to/your_file.py:my_learned_strategy

Without --train, challenge.py scores it by K-fold cross-validation by prefix (--folds, default 5).
"""

import numpy as np

from strategies import learned


def my_strategy(sentences, model_names, target_model_name, probs_per_sentences):
    """Extrapolate each token's log-probability linearly from the two largest input models."""
    log_probs = np.log(probs_per_sentences[:, -2:].astype(np.float32) + 1e-9)
    extrapolated = 2 * log_probs[:, 1] - log_probs[:, 0]
    return extrapolated.argmax(axis=1)


@learned
def my_learned_strategy(train):
    """Learned: trust the input model whose top-1 agrees with the target most often in training."""
    agreement = (train.probs_per_sentences.argmax(axis=2) == train.target_top1[:, None]).mean(axis=0)
    best = int(agreement.argmax())

    def predict(sentences, model_names, target_model_name, probs_per_sentences):
        return probs_per_sentences[:, best].argmax(axis=1)
    return predict
