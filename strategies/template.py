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

Return either
- one integer token id in [0, V) per sentence (a list or a 1-D integer array), as the original; or
- one distribution per sentence: an (N, V) array of non-negative floats (float16, float32 or
  float64), each row summing to 1 within harness.data.dataset.ROW_SUM_TOLERANCE (0.02), as
  `my_distribution_strategy` below. Its top-1 (the argmax, the first on ties) is scored like a
  guess, and the distribution also on the metrics that need one: top-5, log-loss of the target's
  top-1, KL(target || prediction), alpha = 1 - TV (the acceptance rate of speculative decoding
  with it as the drafter) and expected tokens per target pass. A strategy returning ids shows "—"
  there, so return the distribution whenever the strategy has one.
Work on the whole array at once with numpy: it is far faster than a loop per sentence.

The harness calls a strategy on chunks of prefixes (about 128 MB of probabilities each: ~190
prefixes of 7 models at Pythia's vocabulary), so memory stays bounded however many prefixes a
dataset has. A chunk is just fewer sentences: the same function works unchanged, as long as each
guess depends on its own prefix only. A strategy that needs every prefix at once (statistics over
the whole dataset) can say so with `@whole_array` (or `@register("name", whole_array=True)`); it
then gets the whole (N, M-1, V) array in one call, N x (M-1) x V x 2 bytes (6 GB for 10,000
prefixes of 7 models at Pythia's vocabulary).
Drafting: challenge.py prices each strategy as the target's drafter in speculative decoding, at the
cost of the input models it reads; say which with `my_strategy.reads = (-2, -1)` (indices into
model_names, negative from the largest; `@register("name", reads=(-2, -1))` does the same), or it is
charged for all of them. A strategy that needs a package beyond numpy names it with
`@register("name", requires=("torch",))`: where it is missing, the default run skips it with a note.
Randomness: challenge.py seeds `random` and `numpy.random` with --seed once before each strategy
and keeps each strategy's own state from chunk to chunk, so its guesses do not depend on the chunks.
Token strings: `from strategies import load_tokenizer; load_tokenizer(target_model_name).decode([k])`.

A strategy may also learn (see `my_learned_strategy` below): mark a fit function with `@learned`
(or `@register("name", learned=True)`). It receives a `harness.scoring.top1.learned.TrainingSplit`: the
training prefixes' `sentences`, `model_names`, `target_model_name` and `target_top1` (N,), and
their probabilities chunk by chunk, so a fit's memory is bounded by the chunk:

    for chunk in train.chunks():   # chunk.probs_per_sentences (C, M-1, V), chunk.target_probs (C, V),
        ...                        # chunk.target_top1 (C,), chunk.sentences

(`train.probs_per_sentences` and `train.target_probs` give every prefix at once, as in earlier
versions, but hold N x M x V x 2 bytes: small datasets only.) It returns an ordinary strategy as
above, which then predicts prefixes it never saw, chunk by chunk, from the input models alone:

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


def my_distribution_strategy(sentences, model_names, target_model_name, probs_per_sentences):
    """The same extrapolation as a distribution: softmax of the extrapolated log-probabilities."""
    log_probs = np.log(probs_per_sentences[:, -2:].astype(np.float32) + 1e-9)
    extrapolated = 2 * log_probs[:, 1] - log_probs[:, 0]
    probs = np.exp(extrapolated - extrapolated.max(axis=1, keepdims=True))  # the largest is exp(0): no overflow
    return probs / probs.sum(axis=1, keepdims=True)  # (N, V), rows summing to 1


@learned
def my_learned_strategy(train):
    """Learned: trust the input model whose top-1 agrees with the target most often in training."""
    agreeing = 0
    for chunk in train.chunks():  # one chunk of training prefixes at a time
        agreeing = agreeing + (chunk.probs_per_sentences.argmax(axis=2) == chunk.target_top1[:, None]).sum(axis=0)
    best = int(np.argmax(agreeing))

    def predict(sentences, model_names, target_model_name, probs_per_sentences):
        return probs_per_sentences[:, best].argmax(axis=1)

    return predict
