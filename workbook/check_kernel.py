"""The kernel side of the step checks: code shipped as source into the student's kernel.

:func:`workbook.checks.inspection_snippet` sends these functions' source to the student's
kernel, where they build the JSON digest of the student's objects. They are real, linted
code, but self-contained: imports inside each function, no module globals, because only
their source travels.
"""

from __future__ import annotations

import inspect
import json
import textwrap


def _k_main(user_ns, request):
    """Entry point in the kernel: the digest for ``request`` from the namespace ``user_ns``."""
    digest = {"step": request["step"], "values": {}, "function": None}
    for label, path in request["values"]:
        digest["values"][label] = _k_resolve_and_describe(user_ns, path, request["max_values"])
    if request.get("function"):
        digest["function"] = _k_function_report(user_ns, request["function"], request)
    return digest


def _k_error(exc):
    text = str(exc)
    if len(text) > 300:
        text = text[:300] + "..."
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _k_resolve_and_describe(user_ns, path, max_values):
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
        return _k_describe(value, max_values)
    except Exception as exc:  # noqa: BLE001 - report, never crash the check
        return {"kind": "error", "where": shown, "error": _k_error(exc)}


def _k_type_name(value):
    cls = type(value)
    module = getattr(cls, "__module__", "") or ""
    if module in ("builtins", "__main__"):
        return cls.__qualname__
    return f"{module}.{cls.__qualname__}"


def _k_describe(value, max_values):
    """A JSON-able description of ``value``: kind, type and (for data) its contents."""
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
        out.update(
            kind="tensor",
            shape=list(t.shape),
            dtype=str(t.dtype),
            device=str(t.device),
            requires_grad=bool(value.requires_grad),
            floating=bool(t.is_floating_point()),
        )
        if t.is_complex():
            return out
        t = t.to("cpu")
        flat = t.reshape(-1)
        stride = max(1, math.ceil(flat.numel() / max_values))
        flat = flat[::stride]
        if t.is_floating_point():
            array = flat.to(torch.float32).numpy().astype("<f4")
            out["encoding"] = "float32"
        else:
            array = flat.to(torch.int64).numpy().astype("<i8")
            out["encoding"] = "int64"
        out["stride"] = stride
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
        report["calls"].append(_k_call(func, phrase, k, request["max_values"]))
    return report


def _k_globals_used(func, allowed):
    """Globals ``func`` reads beyond ``allowed``: as the course's check_global_vars does.

    inspect.getclosurevars only looks at the function's own code; comprehensions and
    lambdas have code objects of their own (Python 3.11), so those are walked too.
    """
    import contextlib
    import dis
    import inspect
    import types

    names = set()
    with contextlib.suppress(TypeError, ValueError):
        names.update(inspect.getclosurevars(func).globals)
    stack = [c for c in func.__code__.co_consts if isinstance(c, types.CodeType)]
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


def _k_call(func, phrase, k, max_values):
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
        call["result"] = _k_describe(result, max_values)
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
    _k_repr,
    _k_cell,
    _k_function_report,
    _k_globals_used,
    _k_comments,
    _k_call,
)

# The snippet: one throw-away function (deleted afterwards) execs the checker's code in a
# private scope with the real builtins and hands it the student's namespace.
_SNIPPET = """\
def __workbook_inspect__():
    import builtins
    scope = {{"__builtins__": builtins, "__name__": "__workbook_check__"}}
    builtins.exec({body}, scope)
    return scope["_k_main"](builtins.globals(), scope["json"].loads({request}))
try:
    __workbook_result__ = __workbook_inspect__()
finally:
    del __workbook_inspect__
"""


def _kernel_body() -> str:
    """The checker's source: ``json`` and every kernel-side function."""
    parts = ["import json"]
    parts += [textwrap.dedent(inspect.getsource(f)) for f in _KERNEL_FUNCTIONS]
    return "\n\n".join(parts)


def snippet(request: dict) -> str:
    """Source that runs the checker on ``request`` and binds ``__workbook_result__``."""
    return _SNIPPET.format(body=repr(_kernel_body()), request=repr(json.dumps(request)))
