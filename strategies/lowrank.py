"""`lowrank`: the strongest built-in learned baseline, the `loglinear-ce` pool plus a learned correction.

    logits_i = sum_j w_j log p_ij  +  U tanh(W phi_i + b)       (rank R = 64)
    phi_i    = [c_i,L,  c_i,L - c_i,L-1] / 5,  c_i,j = log p_ij - mean_k log p_ijk

w is `loglinear-ce`'s (Newton, on the whole training split); phi is the largest input model's
log-probabilities, centred over the vocabulary, and their difference from the second largest's.
U and W are fitted with AdamW to the target's whole distribution (cross-entropy, so the fit
minimizes KL(target || prediction)), and ENSEMBLE fits from different seeds are averaged, as
distributions: averaging independent fits is worth a good part of what the correction brings (fitted
on wikipedia-train, KL on wikipedia-test: the pool 0.152, one fit 0.139-0.146 depending on the
settings, ten averaged 0.136).

The number of epochs (0, the pool alone, where no correction helps) and, when WEIGHT_DECAYS has several,
the weight decay are chosen by CV_FOLDS-fold cross-validation inside the training split only, each
fold scored by the mean cross-entropy of a CV_ENSEMBLE-fit average. Below MIN_PREFIXES training
prefixes it is the pool alone (`loglinear-ce`).
Every seed (torch's init and minibatch order per fit, the folds) is drawn from numpy's global
generator, which the engine seeds with --seed before the fit: the same --seed, the same fits.

The fit needs torch; prediction is numpy (float64, row by row in effect, so guesses do not depend
on the chunk size). Without torch the strategy is skipped with a note (`requires`), and the rest of
the scoring side never imports it. Fit memory grows with N x V: the training split's pool logits,
features and target, each fold's copies, and the weights with AdamW's state (peak 0.5 GB for 1,000
prefixes of the bundled suite, 2.2-3.4 GB at Pythia's vocabulary: benchmarks/RESULTS.md).
"""

from __future__ import annotations

import numpy as np

from harness.scoring.metrics import as_float32
from strategies import register
from strategies.loglinear import blocks, fit_pool, log_probs, pooled_logits, pooled_softmax

RANK = 64
LEARNING_RATE = 3e-3
BATCH = 100
# AdamW's decoupled weight decay, "strong": the fit has far more weights than prefixes. 3-fold CV on
# wikipedia-train preferred 10 to 1 (cross-entropy 5.1269 against 5.1289, on two seeds of the folds), so
# the grid is that one value, which halves the fit's time; a longer grid is a longer tuple.
WEIGHT_DECAYS = (10.0,)
EPOCHS = (0, 10, 20, 40)  # checkpoints of one run, so the longest costs no more than itself; 0: the pool alone
ENSEMBLE = 10
CV_FOLDS, CV_ENSEMBLE = 3, 2
# Below this many training prefixes, the pool alone, without cross-validating a correction: on the
# bundled data/wikipedia.pkl (88 training prefixes per fold) 3-fold CV chose no correction in every fold,
# and on a 40-prefix file at Pythia's vocabulary the CV alone took 25 s.
MIN_PREFIXES = 200
FEATURE_SCALE = 5.0


def features(logp: np.ndarray) -> np.ndarray:
    """phi (prefixes, 2V) float32 from log-probabilities (models, prefixes, V): the largest model's,
    centred over the vocabulary, and their difference from the second largest's, over FEATURE_SCALE."""
    centred = logp[-2:] - logp[-2:].mean(axis=2, keepdims=True)
    return np.concatenate([centred[-1], centred[-1] - centred[0]], axis=1) / np.float32(FEATURE_SCALE)


def training_arrays(train, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(pool logits float32, phi float16, target float16 with rows summing to 1) of every training prefix."""
    pooled, phi, target = [], [], []
    for chunk in train.chunks():
        for rows in blocks(chunk.probs_per_sentences):
            logp = log_probs(chunk.probs_per_sentences[rows])
            pooled.append(pooled_logits(logp, weights))
            phi.append(features(logp).astype(np.float16))
            t = as_float32(chunk.target_probs[rows])
            target.append((t / t.sum(axis=1, keepdims=True)).astype(np.float16))
    return np.concatenate(pooled), np.concatenate(phi), np.concatenate(target)


def fit_one(pooled, phi, target, weight_decay: float, epochs: int, seed: int, checkpoints=(), validation=None):
    """One AdamW fit of (W, b, U) on the rows given, as numpy float64 arrays; with `validation`
    (pooled, phi) also the validation prefixes' predicted distributions at each epoch in `checkpoints`."""
    import torch

    torch.manual_seed(seed)
    hidden = torch.nn.Linear(phi.shape[1], RANK)
    correction = torch.nn.Linear(RANK, pooled.shape[1], bias=False)
    torch.nn.init.zeros_(correction.weight)  # start from the pool itself
    parameters = [*hidden.parameters(), *correction.parameters()]
    optimizer = torch.optim.AdamW(parameters, lr=LEARNING_RATE, weight_decay=weight_decay)
    pooled_t, phi_t, target_t = (torch.from_numpy(a) for a in (pooled, phi, target))
    order = torch.Generator().manual_seed(seed)
    snapshots = [predict(params(hidden, correction), *validation)] if 0 in checkpoints else []
    for epoch in range(1, epochs + 1):
        for batch in torch.randperm(len(pooled), generator=order).split(BATCH):
            logits = pooled_t[batch] + correction(torch.tanh(hidden(phi_t[batch].float())))
            loss = -(target_t[batch].float() * torch.log_softmax(logits, dim=1)).sum(dim=1).mean()
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
        if epoch in checkpoints:
            snapshots.append(predict(params(hidden, correction), *validation))
    return params(hidden, correction), snapshots


def params(hidden, correction) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    return tuple(p.detach().double().numpy().copy() for p in (hidden.weight, hidden.bias, correction.weight))


def predict(fitted: tuple[np.ndarray, np.ndarray, np.ndarray], pooled: np.ndarray, phi: np.ndarray) -> np.ndarray:
    """softmax(pooled + U tanh(W phi + b)) as float64 (prefixes, V)."""
    W, b, U = fitted
    logits = pooled + np.tanh(phi.astype(np.float64) @ W.T + b) @ U.T
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    return logits / logits.sum(axis=1, keepdims=True)


def cross_entropy(predicted: np.ndarray, target: np.ndarray) -> float:
    """Mean over prefixes of -sum_x t(x) log q(x): KL(t || q) plus the target's entropy, which does not depend on q."""
    return float(-(target.astype(np.float64) * np.log(np.maximum(predicted, 2.0**-24))).sum(axis=1).mean())


def choose_hyperparameters(pooled, phi, target, rng: np.random.Generator) -> tuple[float, int, dict]:
    """(weight decay, epochs) with the lowest cross-validated cross-entropy of a CV_ENSEMBLE-fit average
    (CV_FOLDS folds of the training split, never anything else), and every candidate's score."""
    n = len(pooled)
    folds = np.array_split(rng.permutation(n), min(CV_FOLDS, n))
    scores = {}
    for decay in WEIGHT_DECAYS:
        totals = np.zeros(len(EPOCHS))
        for fold in folds:
            rest = np.setdiff1d(np.arange(n), fold)
            averaged = [0.0] * len(EPOCHS)
            for _ in range(CV_ENSEMBLE):
                _, snapshots = fit_one(
                    pooled[rest],
                    phi[rest],
                    target[rest],
                    decay,
                    max(EPOCHS),
                    int(rng.integers(2**31)),
                    EPOCHS,
                    (pooled[fold], phi[fold]),
                )
                averaged = [a + s / CV_ENSEMBLE for a, s in zip(averaged, snapshots)]
            totals += [cross_entropy(a, target[fold]) * len(fold) / n for a in averaged]
        scores.update({(decay, epochs): float(total) for epochs, total in zip(EPOCHS, totals)})
    decay, epochs = min(scores, key=scores.get)
    return decay, epochs, scores


@register("lowrank", learned=True, requires=("torch",))
def fit_lowrank(train):
    """Learned: the loglinear-ce pool plus a rank-64 correction U tanh(W phi) to its logits, 10 fits averaged."""
    weights = fit_pool(train, "distribution")  # loglinear-ce's pool
    if len(train) < MIN_PREFIXES:  # too few prefixes to learn a correction: the pool alone
        return predictor(weights, [], WEIGHT_DECAYS[0], 0, {})
    pooled, phi, target = training_arrays(train, weights)
    rng = np.random.default_rng(np.random.randint(2**31))  # from --seed: the engine seeds numpy before a fit
    decay, epochs, scores = choose_hyperparameters(pooled, phi, target, rng)
    # epochs 0: cross-validation found no correction that helps: the pool alone
    fits = [
        fit_one(pooled, phi, target, decay, epochs, int(rng.integers(2**31)))[0]
        for _ in range(ENSEMBLE if epochs else 0)
    ]
    return predictor(weights, fits, decay, epochs, scores)


def predictor(weights: np.ndarray, fits: list, decay: float, epochs: int, scores: dict):
    """The strategy: the mean of the fits' distributions, block by block (the pool's alone without fits)."""

    def lowrank(sentences, model_names, target_model_name, probs_per_sentences):
        if not fits:
            return pooled_softmax(probs_per_sentences, weights)
        out = np.empty((len(probs_per_sentences), probs_per_sentences.shape[2]), dtype=np.float32)
        for rows in blocks(probs_per_sentences):
            logp = log_probs(probs_per_sentences[rows])
            pooled_rows, phi_rows = pooled_logits(logp, weights).astype(np.float64), features(logp).astype(np.float16)
            out[rows] = sum(predict(fitted, pooled_rows, phi_rows) for fitted in fits) / len(fits)
        return out

    lowrank.weights, lowrank.weight_decay, lowrank.epochs, lowrank.cv_scores = weights, decay, epochs, scores
    return lowrank
