"""Engine benchmark: load times, warm ``top_k`` overhead vs the notebook, batch throughput.

Prints, in one run and side by side:
1. cold load from the GGUF (dequantize + write a cache, in a temporary cache dir) vs a load
   from the safetensors cache;
2. warm next-token latency of ``LanguageModel.top_k`` vs the bare transformers code the
   notebook runs (tokenize, forward under ``no_grad``, softmax, ``topk``), and their ratio;
3. throughput of ``top_k_batch`` for 1/8/32 phrases vs the same phrases one by one.

Run it with ``python -m bench engine`` (or ``make bench``).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench._common import machine, median_seconds
from lm_engine import EngineConfig, LanguageModel, load_model, resolve
from lm_engine.loaders import load_pretrained
from lm_engine.registry import clear_loaded_models

PHRASE = "This weekend I plan to"
LONG_PHRASE = "In a shocking finding, scientists discovered a herd of unicorns living in"
PHRASES = [
    "This weekend I plan to",
    "To be or not to",
    "For God so loved the",
    "In a shocking finding, scientists discovered a herd of unicorns living in",
    "The capital of France is",
    "Once upon a time there was a",
    "My favourite programming language is",
    "The cat sat on the",
]
PHRASES = (PHRASES * 4)[:32]


def bench_fresh_process() -> float:
    """Seconds for a new Python process to import lm_engine and load the cached model."""
    code = "import lm_engine; lm_engine.load_model(device='cpu')"
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - start


def bench_loads(config: EngineConfig) -> tuple[float, float]:
    """(cold GGUF load, cache load) in seconds; the cold one uses a throw-away cache dir."""
    device = torch.device("cpu")
    with tempfile.TemporaryDirectory() as tmp:
        cold_config = replace(config, cache_dir=Path(tmp))
        start = time.perf_counter()
        source = resolve(config=cold_config)
        load_pretrained(source, device, torch.float32)
        cold = time.perf_counter() - start
    resolve(config=config)  # make sure the shared cache exists before timing it
    clear_loaded_models()
    start = time.perf_counter()
    load_model(device="cpu", config=config)
    cached = time.perf_counter() - start
    return cold, cached


def bench_latency(lm: LanguageModel, phrase: str, repeat: int = 30) -> tuple[float, float]:
    """(bare notebook code, engine top_k) median seconds for one next-token table."""
    tokenizer, model = lm.tokenizer, lm.model

    def bare() -> None:
        input_ids = tokenizer(phrase, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            logits = model(input_ids).logits  # (1, n, V)
        probabilities = torch.softmax(logits[0, -1], dim=-1)  # (V,)
        torch.topk(probabilities, 10)

    def engine() -> None:
        lm.top_k(phrase, k=10)

    for fn in (bare, engine):  # warm-up: first calls allocate
        fn()
        fn()
    # Interleave the two so background load on the shared machine hits both alike.
    bare_times, engine_times = [], []
    for _ in range(repeat):
        bare_times.append(median_seconds(bare, 1))
        engine_times.append(median_seconds(engine, 1))
    return statistics.median(bare_times), statistics.median(engine_times)


def bench_batch(lm: LanguageModel, sizes=(1, 8, 32), repeat: int = 3) -> list[tuple]:
    """(size, batched seconds, one-by-one seconds) per batch size."""
    rows = []
    for size in sizes:
        phrases = PHRASES[:size]
        lm.top_k_batch(phrases, 10)
        batched = median_seconds(lambda p=phrases: lm.top_k_batch(p, 10), repeat)
        single = median_seconds(lambda p=phrases: [lm.top_k(x, 10) for x in p], repeat)
        rows.append((size, batched, single))
    return rows


def main() -> None:
    """Run all three measurements and print them as one report."""
    config = EngineConfig.from_env()
    print(f"machine: {machine()}")
    cold, cached = bench_loads(config)
    print("\n1. model load (smollm2-135m, CPU float32)")
    print(f"   from GGUF (dequantize + write cache): {cold:6.2f} s")
    print(f"   from safetensors cache:               {cached:6.2f} s   (target < 2 s)")
    print(f"   new process, import + cache load:     {bench_fresh_process():6.2f} s")
    lm = load_model(device="cpu", config=config)
    print("\n2. warm next-token latency, k=10 (median of 30, interleaved)")
    print("   phrase (tokens)            notebook code   LanguageModel.top_k   ratio")
    for phrase in (PHRASE, LONG_PHRASE):
        bare, engine = bench_latency(lm, phrase)
        label = f"{phrase[:20]}... ({lm.encode(phrase).shape[-1]})"
        print(
            f"   {label:<26} {bare * 1000:8.1f} ms     {engine * 1000:8.1f} ms          "
            f"{engine / bare:5.2f}x"
        )
    print("   (notebook code = tokenize, forward under no_grad, softmax, topk; target <= 0.9x)")
    print("\n3. top_k throughput, batched vs one by one (median of 3)")
    print("   phrases   top_k_batch          one by one           speed-up")
    for size, batched, single in bench_batch(lm):
        print(
            f"   {size:7d}   {size / batched:6.1f} phrases/s   {size / single:6.1f} phrases/s   "
            f"{single / batched:5.2f}x"
        )
    print("   (target for 32 phrases: >= 5x)")


if __name__ == "__main__":
    main()
