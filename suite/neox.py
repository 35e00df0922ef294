"""The GPT-NeoX configuration Pythia uses, at any shape: the one place a suite, test or benchmark model is defined.

Pythia's recipe (its published config.json files): feed-forward 4 x hidden, GELU, rotary embeddings
on a quarter of each head (theta 10,000), parallel attention and MLP residuals, untied input and
output embeddings, no dropout, `<|endoftext|>` = 0 as BOS and EOS, `<|padding|>` = 1. Only the
shape, the embedding rows and the context length differ between the models built here.
"""

from __future__ import annotations

from transformers import GPTNeoXConfig


def neox_config(hidden: int, layers: int, heads: int, vocab_size: int, context: int) -> GPTNeoXConfig:
    """A Pythia-style GPT-NeoX config: `vocab_size` embedding rows (Pythia pads its tokenizer's ids
    to a multiple of 128), `context` positions."""
    return GPTNeoXConfig(
        vocab_size=vocab_size,
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        intermediate_size=4 * hidden,
        hidden_act="gelu",
        rope_parameters={"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": 0.25},
        max_position_embeddings=context,
        initializer_range=0.02,
        layer_norm_eps=1e-5,
        use_parallel_residual=True,
        tie_word_embeddings=False,
        attention_dropout=0.0,
        hidden_dropout=0.0,
        bos_token_id=0,
        eos_token_id=0,
        pad_token_id=1,
    )
