"""The given setup cell: imports, the ``check_global_vars`` helper, and the course's model.

The setup cell is the notebook's first cell, provided whole and not graded; its code names
the model the app runs (``Settings.model_name``, by default :data:`DEFAULT_MODEL`).
"""

from __future__ import annotations

from workbook.exercise.graded_steps import Step

DEFAULT_MODEL = "smollm2-135m"


_SETUP_TEMPLATE = '''\
# Setup (given): imports, a helper for step 6, and the course's language model.
#
# Running this notebook somewhere else (e.g. Colab)? Replace the lines that use lm_engine
# and src with a model from the Hugging Face Hub, for example:
#     tokenizer = AutoTokenizer.from_pretrained("distilgpt2", add_prefix_space=True)
#     model = AutoModelForCausalLM.from_pretrained("distilgpt2")
# (GPT-2-family tokenizers need add_prefix_space=True.)
import dis

import pandas as pd
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

import lm_engine


def check_global_vars(func, allowed_globals):
    """Raise an AssertionError naming every global variable `func` uses beyond `allowed_globals`.

    The most common bug when turning notebook code into a function is silently reading a
    global variable instead of a value computed inside the function.
    """
    # Read the bytecode for the names the function really loads as globals: an attribute
    # such as `batch.input_ids` is not a global, even if a global `input_ids` exists.
    used_globals = set()
    codes = [func.__code__]  # the function, then the comprehensions and lambdas inside it
    while codes:
        code = codes.pop()
        for instruction in dis.get_instructions(code):
            if instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME"):
                if instruction.argval in func.__globals__:  # not a builtin such as len
                    used_globals.add(instruction.argval)
        codes.extend(const for const in code.co_consts if isinstance(const, type(code)))
    disallowed = sorted(name for name in used_globals if name not in allowed_globals)
    assert not disallowed, (
        f"{{func.__name__}} uses global variables it should not: {{', '.join(disallowed)}}"
    )


MODEL_NAME = {model_name!r}
src = lm_engine.resolve(MODEL_NAME)  # where this model's files are on this server
tokenizer = AutoTokenizer.from_pretrained(src.path, **src.tokenizer_kwargs)
tokenizer.pad_token = tokenizer.eos_token
# Running this cell again keeps the model already loaded: a second copy would not fit in
# the memory your kernel may use.
if "model" not in globals() or getattr(model, "name_or_path", None) != src.path:
    model = AutoModelForCausalLM.from_pretrained(src.path)
model.eval()

print(f"The vocabulary has {{len(tokenizer):,}} strings.")
print(f"The model has {{sum(p.numel() for p in model.parameters()):,}} parameters.")
'''


def setup_code(model_name: str = DEFAULT_MODEL) -> str:
    """The given setup cell, loading ``model_name`` (an lm_engine name, hub id or folder)."""
    return _SETUP_TEMPLATE.format(model_name=model_name)


_SETUP_INSTRUCTIONS = """\
This cell is given: run it first. It imports `torch`, the tokenizer and model classes from
`transformers` and `pandas`, defines a helper `check_global_vars` for step 6, loads the
course's tokenizer and model, and prints the vocabulary size and the number of parameters.

`check_global_vars(func, allowed_globals)` fails, naming the variables, when a function reads
a global variable it should not. That is the most common bug when turning notebook code
into a function: the function silently uses a value left over from an earlier cell instead
of one computed inside it.
"""


def setup_step(model_name: str) -> Step:
    code = setup_code(model_name)
    return Step(
        id="setup",
        number=0,
        title="Setup",
        instructions=_SETUP_INSTRUCTIONS,
        starter_code=code,
        defines=("torch", "pd", "tokenizer", "model", "check_global_vars"),
        check=None,
        solution=code,
        given=True,
    )
