"""The kernel side of the step checks: code shipped as source into the student's kernel.

:func:`workbook.exercise.inspection.inspection_snippet` sends these functions' source to the
student's kernel, where they build the JSON digest of the student's objects. They are real, linted
code, but self-contained: imports inside each function, no module globals but the cache
``_K_CACHE``, because only their source travels. The server calls :func:`_k_summary` itself
on the engine's reference, so both sides fingerprint tensors with the very same code.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import json
import textwrap

# Kernel-side cache (the sign matrices of _k_signs); the shipped body defines its own.
_K_CACHE: dict = {}


def _k_main(user_ns, request):
    """Entry point in the kernel: the digest for ``request`` from the namespace ``user_ns``."""
    digest = {"step": request["step"], "values": {}, "function": None}
    for label, path in request["values"]:
        digest["values"][label] = _k_resolve_and_describe(user_ns, path, request)
    if request.get("function"):
        digest["function"] = _k_function_report(user_ns, request["function"], request)
    return digest


def _k_error(exc):
    text = str(exc)
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _k_resolve_and_describe(user_ns, path, opts):
    """Follow ``path`` (name, then .attr / [key] steps) and describe what is there."""
    name = path[0][1]
    if name not in user_ns:
        return {"kind": "missing", "where": name}
    value = user_ns[name]
    shown = name
    for step_kind, key in path[1:]:
        try:
            if step_kind == "attr":
                if not hasattr(value, key):
                    return {"kind": "missing", "where": f"{shown}.{key}", "parent": shown}
                value = getattr(value, key)
                shown = f"{shown}.{key}"
            else:
                try:
                    value = value[key]
                except (KeyError, IndexError, TypeError):
                    return {"kind": "missing", "where": f"{shown}[{key!r}]", "parent": shown}
                shown = f"{shown}[{key!r}]"
        except Exception as exc:  # noqa: BLE001 - student objects may raise anything
            return {"kind": "error", "where": shown, "error": _k_error(exc)}
    try:
        return _k_describe(value, opts)
    except Exception as exc:  # noqa: BLE001 - report, never crash the check
        return {"kind": "error", "where": shown, "error": _k_error(exc)}


def _k_type_name(value):
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _k_describe(value, opts):
    """A JSON-able description of ``value``: kind, type and (for data) its contents.

    Floating tensors of at most ``opts["full_limit"]`` elements travel whole (base64
    little-endian float32); larger ones travel as a per-row summary (see :func:`_k_summary`),
    a few hundred numbers instead of megabytes of JSON. Integer tensors (token ids) travel
    whole up to ``opts["int_limit"]`` elements.
    """
    import base64
    import math

    import numpy as np

    out = {"type": _k_type_name(value)}
    try:
        import torch
    except ImportError:  # pragma: no cover - the course's kernels always have torch
        torch = None
    if torch is not None and isinstance(value, torch.Tensor):
        t = value.detach()
        grad_fn = getattr(value, "grad_fn", None)
        out.update(
            kind="tensor",
            shape=list(t.shape),
            dtype=str(t.dtype),
            device=str(t.device),
            requires_grad=bool(value.requires_grad),
            grad_fn=type(grad_fn).__name__ if grad_fn is not None else None,
            floating=bool(t.is_floating_point()),
        )
        if t.is_complex():
            return out
        t = t.to("cpu")
        if t.numel() > opts["full_limit"] and t.is_floating_point():
            out["summary"] = _k_summary(t, opts["sketch"])
            return out
        flat = t.reshape(-1)
        if flat.numel() > opts["int_limit"]:  # a huge integer tensor: its head is enough
            flat = flat[: opts["int_limit"]]
            out["truncated"] = True
        if t.is_floating_point():
            array = flat.to(torch.float32).numpy().astype("<f4")
            out["encoding"] = "float32"
        else:
            array = flat.to(torch.int64).numpy().astype("<i8")
            out["encoding"] = "int64"
        out["data"] = base64.b64encode(array.tobytes()).decode("ascii")
        return out
    try:
        import pandas as pd
    except ImportError:  # pragma: no cover
        pd = None
    if pd is not None:
        styled = False
        try:
            from pandas.io.formats.style import Styler
        except ImportError:  # pragma: no cover - Styler needs jinja2
            Styler = ()
        if Styler and isinstance(value, Styler):
            value, styled = value.data, True
        if isinstance(value, pd.DataFrame):
            columns = {}
            for col in list(value.columns)[:20]:
                cells = []
                for cell in list(value[col])[:200]:
                    cells.append(_k_cell(cell))
                columns[str(col)] = cells
            out.update(
                kind="dataframe",
                styled=styled,
                columns=[str(c) for c in value.columns][:50],
                n_rows=len(value),
                data=columns,
            )
            return out
    if isinstance(value, bool):
        out.update(kind="scalar", value=value)
    elif isinstance(value, int):
        out.update(kind="scalar", value=value if abs(value) < 2**62 else float(value))
    elif isinstance(value, float | np.floating):
        value = float(value)
        out.update(kind="scalar", value=value if math.isfinite(value) else str(value))
    elif isinstance(value, np.integer):
        out.update(kind="scalar", value=int(value))
    elif isinstance(value, str):
        out.update(kind="scalar", value=value[:20000], truncated=len(value) > 20000)
    elif hasattr(value, "keys") and callable(value.keys):
        out.update(kind="mapping", keys=[str(k) for k in list(value.keys())[:50]])
    elif isinstance(value, list | tuple):
        out.update(kind="sequence", length=len(value))
    else:
        out.update(kind="other", repr=_k_repr(value))
    return out


def _k_signs(columns, size):
    """A fixed (columns, size) matrix of +1/-1, the same in every process (no RNG state).

    An integer hash of each (column, projection) pair picks the sign, so the kernel and the
    server build the very same matrix; it is cached because long rows make it large.
    """
    import torch

    key = ("signs", columns, size)
    # Read once into a local: on the server another check's thread may clear the cache
    # between filling it and returning from it.
    signs = _K_CACHE.get(key)
    if signs is None:
        index = torch.arange(columns * size, dtype=torch.int64).reshape(columns, size)
        h = (index * 2654435761 + 97531) % 2147483648
        h = h ^ (h >> 15)
        h = (h * 2246822519) % 2147483648
        h = h ^ (h >> 13)
        signs = ((h >> 7) & 1).to(torch.float32) * 2 - 1  # (columns, size)
        if len(_K_CACHE) > 8:
            _K_CACHE.clear()
        _K_CACHE[key] = signs
    return signs


def _k_summary(tensor, size):
    """A per-row fingerprint of a floating tensor: rows are its last dimension.

    For each row: mean, root mean square, max (and where), min, and ``size`` projections on
    fixed random signs divided by sqrt(columns). The projections of a difference estimate
    its root mean square (a Johnson-Lindenstrauss sketch), so two summaries tell whether two
    rows agree within a tolerance without either side seeing the other's values.
    """
    import math

    import torch

    t = tensor.detach().to("cpu", torch.float32)
    columns = int(t.shape[-1]) if t.dim() else 1
    rows = t.reshape(-1, columns) if columns else t.reshape(0, 1)  # (R, C)
    out = {"rows": int(rows.shape[0]), "columns": columns}
    if rows.numel() == 0:
        return out
    if rows.shape[0] > 2048:  # nobody's phrase is that long: summarise the first rows only
        rows, out["rows_truncated"] = rows[:2048], True
    finite = torch.isfinite(rows)
    out["nonfinite"] = int((~finite).sum())
    if out["nonfinite"]:
        rows = torch.where(finite, rows, torch.zeros_like(rows))
    out["mean"], out["rms"] = [], []
    for start in range(0, rows.shape[0], 64):  # float64 sums, a few rows at a time
        wide = rows[start : start + 64].double()
        out["mean"] += wide.mean(dim=1).tolist()
        out["rms"] += wide.square().mean(dim=1).sqrt().tolist()
    top = rows.max(dim=1)
    out["max"] = top.values.tolist()
    out["argmax"] = top.indices.tolist()
    out["min"] = rows.min(dim=1).values.tolist()
    # Very wide rows (a flattened tensor) are sketched on evenly strided columns, so the
    # sign matrix stays small (both sides stride alike).
    stride = -(-columns // 262144)
    sampled = rows[:, ::stride]
    signs = _k_signs(int(sampled.shape[1]), size)
    sketch = (sampled @ signs) / math.sqrt(sampled.shape[1])  # (R, size)
    out["sketch"] = sketch.tolist()
    return out


def _k_repr(value):
    try:
        text = repr(value)
    except Exception as exc:  # noqa: BLE001 - a broken __repr__ is the student's business
        return f"<repr failed: {type(exc).__name__}>"
    return text if len(text) <= 200 else text[:200] + "..."


def _k_cell(cell):
    """One table cell as JSON: strings stay strings, numbers (even 0-d tensors) become floats."""
    import math

    if isinstance(cell, str):
        return cell[:1000]
    if isinstance(cell, bool):
        return {"other": repr(cell)}
    if isinstance(cell, int | float):
        value = float(cell)
    else:
        try:
            size = cell.numel() if hasattr(cell, "numel") else getattr(cell, "size", None)
            if size != 1:
                return {"other": _k_repr(cell)}
            value = float(cell.item() if hasattr(cell, "item") else cell)
        except Exception:  # noqa: BLE001 - any odd cell is reported as "other"
            return {"other": _k_repr(cell)}
    return value if math.isfinite(value) else {"other": str(value)}


def _k_function_report(user_ns, spec, request):
    """Step 6: call the student's function on unseen inputs; read its globals and comments."""
    import inspect

    name = spec["name"]
    if name not in user_ns:
        return {"kind": "missing"}
    func = user_ns[name]
    if not inspect.isfunction(func):
        return {"kind": "not_function", "type": _k_type_name(func)}
    report = {"kind": "function", "calls": []}
    try:
        report["parameters"] = list(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        report["parameters"] = None
    report["globals_used"] = _k_globals_used(func, spec["allowed_globals"])
    report["comments"] = _k_comments(func)
    for phrase, k in spec["calls"]:
        report["calls"].append(_k_call(func, phrase, k, request))
    return report


def _k_globals_used(func, allowed):
    """Globals ``func`` really reads beyond ``allowed``, as the setup cell's helper counts them.

    Walks the bytecode of the function and of every code object inside it (comprehensions,
    lambdas, nested functions) for global loads. Attribute names (``batch.input_ids``) are
    not loads of a global, whatever globals exist with the same name.
    """
    import dis
    import types

    names = set()
    stack = [func.__code__]
    while stack:
        code = stack.pop()
        for instruction in dis.get_instructions(code):
            name = instruction.argval
            loads = instruction.opname in ("LOAD_GLOBAL", "LOAD_NAME")
            if loads and isinstance(name, str) and name in func.__globals__:
                names.add(name)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    return sorted(n for n in names if n not in allowed)


def _k_comments(func):
    """The ``#`` comments in the function's source, or None if the source is unavailable."""
    import inspect
    import io
    import textwrap
    import tokenize

    try:
        source = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError):
        return None
    comments = []
    try:
        for token in tokenize.generate_tokens(io.StringIO(source).readline):
            if token.type == tokenize.COMMENT:
                comments.append(token.string[:300])
    except (tokenize.TokenError, SyntaxError):
        return None
    return comments[:100]


def _k_call(func, phrase, k, opts):
    """Call ``func(phrase, k)`` capturing stdout, stderr and rich displays."""
    import contextlib
    import io

    call = {"phrase": phrase, "k": k}
    stdout, stderr = io.StringIO(), io.StringIO()
    displays = []
    publisher, had_own = None, False
    try:
        from IPython import get_ipython

        shell = get_ipython()
        publisher = getattr(shell, "display_pub", None)
    except ImportError:
        publisher = None
    if publisher is not None:
        had_own = "publish" in vars(publisher)
        original = publisher.publish

        def record(data=None, *args, **kwargs):
            displays.append(sorted(data or {}))

        publisher.publish = record
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            result = func(phrase, k)
        call["result"] = _k_describe(result, opts)
    except Exception as exc:  # noqa: BLE001 - the student's function may raise anything
        call["error"] = _k_error(exc)
    finally:
        if publisher is not None:
            if had_own:
                publisher.publish = original
            else:
                del publisher.publish
    call["stdout"] = stdout.getvalue()[:2000]
    call["displays"] = len(displays)
    return call


_KERNEL_FUNCTIONS = (
    _k_main,
    _k_error,
    _k_resolve_and_describe,
    _k_type_name,
    _k_describe,
    _k_signs,
    _k_summary,
    _k_repr,
    _k_cell,
    _k_function_report,
    _k_globals_used,
    _k_comments,
    _k_call,
)

# The snippet: one throw-away function (deleted afterwards) runs the checker with the real
# builtins (a student may have a variable called ``getattr``) and hands it the student's
# namespace. The checker's code is compiled once per kernel and kept as a private module,
# keyed by a hash of its source, so a check pays for no compilation after the first one
# and a kernel that outlived an upgrade of the app gets the new code.
_SNIPPET = """\
def __workbook_inspect__():
    import builtins
    import sys
    checker = sys.modules.get("__workbook_check__")
    if builtins.getattr(checker, "VERSION", None) != {version!r}:
        import types
        checker = types.ModuleType("__workbook_check__")
        checker.__dict__["__builtins__"] = builtins
        builtins.exec({body}, checker.__dict__)
        checker.VERSION = {version!r}
        sys.modules["__workbook_check__"] = checker
    return checker._k_main(builtins.globals(), checker.json.loads({request}))
try:
    __workbook_result__ = __workbook_inspect__()
finally:
    del __workbook_inspect__
"""


@functools.cache
def _kernel_body() -> str:
    """The checker's source: ``json``, its cache and every kernel-side function."""
    parts = ["import json", "_K_CACHE = {}"]
    parts += [textwrap.dedent(inspect.getsource(f)) for f in _KERNEL_FUNCTIONS]
    return "\n\n".join(parts)


def snippet(request: dict) -> str:
    """Source that runs the checker on ``request`` and binds ``__workbook_result__``."""
    body = _kernel_body()
    version = hashlib.sha256(body.encode()).hexdigest()[:16]
    return _SNIPPET.format(body=repr(body), version=version, request=repr(json.dumps(request)))
