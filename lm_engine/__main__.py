"""Command line: ``python -m lm_engine info`` and ``python -m lm_engine predict PHRASE -k 5``."""

from __future__ import annotations

import argparse
import sys

from lm_engine.config import EngineConfig
from lm_engine.errors import LMEngineError
from lm_engine.loaders import BUNDLED_MODEL
from lm_engine.registry import load_model


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m lm_engine", description="Inspect the course model and its predictions."
    )
    parser.add_argument("--model", default=BUNDLED_MODEL, help="model name, hub id or folder")
    parser.add_argument("--device", default=None, help="cpu, cuda, mps (default: automatic)")
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("info", help="model, device, vocabulary size, parameters, cache path")
    predict = commands.add_parser("predict", help="table of the k most likely next tokens")
    predict.add_argument("phrase", help='e.g. "To be or not to"')
    predict.add_argument("-k", type=int, default=10, help="how many tokens (default 10)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run the CLI; returns the exit status (1 with a plain message on engine errors)."""
    args = _parser().parse_args(argv)
    config = EngineConfig.from_env()
    try:
        lm = load_model(args.model, args.device, config=config)
        if args.command == "info":
            print(f"model:       {lm.name}")
            print(f"device:      {lm.device}")
            print(f"vocab size:  {lm.vocab_size:,}")
            print(f"parameters:  {lm.num_parameters:,}")
            print(f"max context: {lm.max_context:,} tokens")
            print(f"files:       {lm.source.path if lm.source else '-'}")
            print(f"cache dir:   {config.cache_dir}")
        else:
            table = lm.predict_next_tokens(args.phrase, args.k)
            print(f"phrase: {args.phrase!r}")
            if table.attrs.get("truncated_tokens"):
                print(f"(first {table.attrs['truncated_tokens']} tokens dropped: context limit)")
            shown = table.assign(tokens=table["tokens"].map(repr))
            print(shown.to_string(index=False, float_format=lambda x: f"{x:.4f}"))
    except LMEngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
