"""Generating text from a language model.

The prompt runs through the model once (one forward over its T tokens);
then each new token costs one single-step forward from the carried state::

    logits_t, state = model(token_{t-1} (1, B), state)
    p = softmax((logits_t - max) / τ)      temperature τ (τ → 0: greedy)
    top-k:  keep the k largest p           top-p: keep the smallest set of the
                                           largest p whose sum reaches p_top
    token_t ~ p (renormalised over what is kept)

The draw is inverse-CDF sampling, u ~ U(0, 1) from the seeded host stream:
token = #{v : cdf_v < u · cdf_V}, so a seed fixes the text on every backend.
"""

from __future__ import annotations

from typing import Any

from .. import backend as B
from ..backend import Array, Generator
from ..data.vocab import Vocab
from ..losses import softmax
from ..nn.module import Module


def filter_probs(probs: Array, top_k: int | None = None, top_p: float | None = None) -> Array:
    """Zero all but the top-k / nucleus (top-p) entries of each row of probs (B, V)."""
    xp = B.namespace(probs)
    V = probs.shape[-1]
    if top_k is not None:
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(f"top_k: expected a positive int, got {top_k!r}")
        if top_k < V:
            ranked = xp.sort(probs, axis=-1, descending=True)               # (B, V)
            kth = ranked[:, top_k - 1:top_k]                                # (B, 1)
            probs = xp.where(probs >= kth, probs, 0.0)
    if top_p is not None:
        if not 0.0 < top_p <= 1.0:
            raise ValueError(f"top_p: expected a value in (0, 1], got {top_p!r}")
        ranked = xp.sort(probs, axis=-1, descending=True)                   # (B, V)
        total = xp.sum(ranked, axis=-1, keepdims=True)                      # (B, 1)
        before = xp.cumulative_sum(ranked, axis=-1) - ranked                # mass above
        kept = xp.where(before < top_p * total, ranked, xp.inf)             # (B, V)
        threshold = xp.min(kept, axis=-1, keepdims=True)                    # (B, 1)
        probs = xp.where(probs >= threshold, probs, 0.0)
    return probs


def draw(probs: Array, generator: Generator) -> Array:
    """One index per row of probs (B, V) (unnormalised is fine), by inverse CDF."""
    xp = B.namespace(probs)
    cdf = xp.cumulative_sum(probs, axis=-1)                                 # (B, V)
    u = B.backend_of(probs).asarray(generator.host.random(probs.shape[0]),
                                    dtype=probs.dtype)                      # (B,)
    below = cdf < u[:, None] * cdf[:, -1:]                                  # (B, V)
    idx = xp.sum(xp.astype(below, xp.int64), axis=-1)                       # (B,)
    return xp.minimum(idx, probs.shape[-1] - 1)


def next_token(logits: Array, temperature: float = 1.0, top_k: int | None = None,
               top_p: float | None = None, generator: Generator | None = None) -> Array:
    """logits (B, V) -> token ids (B,): greedy when temperature is 0 (or below the
    dtype's smallest normal number, e.g. 1e-40 in float32)."""
    xp = B.namespace(logits)
    if temperature < 0:
        raise ValueError(f"temperature: expected a value >= 0, got {temperature!r}")
    if temperature < xp.finfo(logits.dtype).smallest_normal:
        return xp.argmax(logits, axis=-1)          # 0 or too small to divide by: greedy
    # d = z - max ≤ 0 before dividing, so a tiny τ gives the argmax probability 1 (never
    # +inf - inf = NaN); d is floored at -10⁴τ so d/τ ≥ -10⁴ cannot overflow (exp → 0)
    d = logits - xp.max(logits, axis=-1, keepdims=True)                     # (B, V) ≤ 0
    scaled = xp.maximum(d, -1e4 * temperature) / temperature                # (B, V)
    probs = filter_probs(softmax(scaled), top_k, top_p)
    return draw(probs, generator or B.default_generator())


def generate(model: Module, prompt_ids: list[int], length: int, temperature: float = 1.0,
             top_k: int | None = None, top_p: float | None = None,
             seed: int | None = None, state: Any = None) -> list[int]:
    """``length`` new token ids after ``prompt_ids`` (at least one token)."""
    if not prompt_ids:
        raise ValueError("prompt: expected at least one token, got none")
    if not isinstance(length, int) or length < 0:
        raise ValueError(f"length: expected an int >= 0, got {length!r}")
    gen = Generator(seed)
    be = model.backend
    was_training = model.training
    model.eval()
    try:
        ids = be.asarray([[int(i)] for i in prompt_ids])                     # (T, 1)
        logits, state = model(ids, state)                                   # (T, 1, V)
        last = logits[-1, ...]                                              # (1, V)
        out: list[int] = []
        for i in range(length):
            tok = next_token(last, temperature, top_k, top_p, gen)          # (1,)
            out.append(int(B.to_scalar(tok[0])))
            if i + 1 < length:                                              # one step each
                logits, state = model(be.xp.reshape(tok, (1, 1)), state)    # (1, 1, V)
                last = logits[0, ...]
    finally:
        model.train(was_training)
    return out


def sample(model: Module, vocab: Vocab, prompt: str = "", length: int = 200,
           temperature: float = 1.0, top_k: int | None = None, top_p: float | None = None,
           seed: int | None = None) -> str:
    """Prompt + generated text. An empty prompt starts from a newline (or token 0)."""
    if prompt:
        ids = vocab.encode(prompt)
    else:
        ids = [vocab.stoi["\n"]] if "\n" in vocab else [0]
    new = generate(model, ids, length, temperature, top_k, top_p, seed)
    sep = " " if vocab.level == "word" and prompt and new else ""
    return prompt + sep + vocab.decode(new)
