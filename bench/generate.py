"""Generation benchmark: tokens per second of ``generate`` with the KV cache vs without.

Without the cache every step reruns the model over the prompt and everything generated so
far; with it, each step feeds one new token and reuses the attention keys/values of the
earlier ones. Both produce the same tokens (``tests/test_sampling.py`` checks it); this
measures what the cache saves for 32 new tokens, with a short and a long prompt, greedy
and beam search.

Run it with ``python -m bench generate`` (or ``make bench`` for every benchmark).
"""

from __future__ import annotations

import statistics
import time

from bench._common import machine
from lm_engine import load_model
from lm_engine.sampling import generate

NEW_TOKENS = 32
SHORT = "This weekend I plan to"
LONG = (
    "In a shocking finding, scientists discovered a herd of unicorns living in a remote, "
    "previously unexplored valley in the Andes Mountains. Even more surprising to the "
    "researchers was the fact that the unicorns spoke perfect English. "
) * 4


def _rate(lm, phrase: str, strategy: str, use_cache: bool, repeat: int) -> tuple[float, int]:
    """(median tokens per second, tokens generated) over ``repeat`` runs."""
    rates = []
    count = 0
    for _ in range(repeat):
        start = time.perf_counter()
        result = generate(
            lm, phrase, strategy, max_new_tokens=NEW_TOKENS, num_beams=3, use_cache=use_cache
        )
        elapsed = time.perf_counter() - start
        count = len(result.tokens)
        rates.append(count / elapsed)
    return statistics.median(rates), count


def main(repeat: int = 3) -> None:
    """Print tokens/s with and without the KV cache for each prompt and strategy."""
    lm = load_model(device="cpu")
    print(f"machine: {machine()}; model {lm.name}, CPU float32")
    print(f"generate(..., max_new_tokens={NEW_TOKENS}), median of {repeat} runs\n")
    print(f"{'prompt':<22}{'strategy':<10}{'tokens':>7}{'KV cache':>12}{'recompute':>12}{'x':>7}")
    for name, phrase in (("short", SHORT), ("long", LONG)):
        n = lm.encode(phrase).shape[-1]
        for strategy in ("greedy", "beam"):
            generate(lm, phrase, strategy, max_new_tokens=2, num_beams=3)  # warm-up
            cached, count = _rate(lm, phrase, strategy, True, repeat)
            full, _ = _rate(lm, phrase, strategy, False, repeat)
            label = f"{name} ({n} tokens)"
            shown = strategy if strategy == "greedy" else "beam x3"
            print(
                f"{label:<22}{shown:<10}{count:>7}{cached:>9.1f} t/s{full:>9.1f} t/s"
                f"{cached / full:>6.1f}x"
            )


if __name__ == "__main__":
    main()
