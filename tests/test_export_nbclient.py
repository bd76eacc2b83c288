"""The exported notebook re-executes top to bottom with nbclient and gives the same results.

Slow: a real Jupyter kernel (the ``python3`` kernelspec of this virtualenv) loads the real
bundled model. Expected values are computed here with plain ``transformers`` on the same
weights (``lm_engine.resolve``), never written down.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import nbformat
import pytest
from export_data import GOOD_ANSWERS, new_store

from workbook.exercise import content
from workbook.submission.bundle import export_for

ROOT = Path(__file__).resolve().parents[1]
MODEL = content.DEFAULT_MODEL

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def kernel_name() -> str:
    """The ``python3`` kernelspec, which must start this virtualenv's ipykernel."""
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    try:
        spec = KernelSpecManager().get_kernel_spec("python3")
    except NoSuchKernel:
        pytest.skip("no python3 kernelspec: run `python -m ipykernel install --sys-prefix`")
    assert "ipykernel" in " ".join(spec.argv)
    return "python3"


@pytest.fixture(scope="module")
def reference():
    """Shapes and top tokens computed with plain transformers on the course's weights."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    import lm_engine

    source = lm_engine.resolve(MODEL)
    tokenizer = AutoTokenizer.from_pretrained(source.path, **source.tokenizer_kwargs)
    model = AutoModelForCausalLM.from_pretrained(source.path).eval()

    def top(phrase: str, k: int) -> list[str]:
        ids = tokenizer(phrase, return_tensors="pt")["input_ids"]  # (1, n)
        with torch.no_grad():
            logits = model(ids).logits  # (1, n, V)
        best = logits[0, -1].softmax(dim=-1).topk(k).indices  # (k,)
        return [tokenizer.decode(int(i)) for i in best]

    ids = tokenizer(content.START_PHRASE, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        shape = list(model(ids).logits.shape)
    return {
        "shape": shape,
        "top1": top(content.START_PHRASE, 1)[0],
        "top5": {phrase: top(phrase, 5) for phrase in content.STEP6_EXAMPLES},
    }


def _execute(nb, kernel_name: str):
    from nbclient import NotebookClient

    client = NotebookClient(
        nb,
        kernel_name=kernel_name,
        timeout=300,
        resources={"metadata": {"path": str(ROOT)}},  # the kernel imports lm_engine from here
    )
    client.execute()
    return nb


def _stdout(cell) -> str:
    return "".join(
        out.get("text", "") for out in cell.outputs if out.get("output_type") == "stream"
    )


def _errors(nb) -> list[str]:
    return [
        f"{cell.id}: {out.get('ename')}: {out.get('evalue')}"
        for cell in nb.cells
        if cell.cell_type == "code"
        for out in cell.outputs
        if out.get("output_type") == "error"
    ]


def test_exported_notebook_reexecutes_with_the_same_shapes_and_top_tokens(
    tmp_path, kernel_name, reference
):
    store = new_store(tmp_path / "workbook.db")
    user = store.create_user("ana@example.org", "Ana Núñez", "correct horse battery")

    # The student's run: execute the reference solutions and store what the kernel produced.
    solution = nbformat.v4.new_notebook()
    for step in content.steps(MODEL):
        solution.cells.append(nbformat.v4.new_code_cell(step.solution, id=step.id))
    _execute(solution, kernel_name)
    assert _errors(solution) == []
    for step, cell in zip(content.steps(MODEL), solution.cells, strict=True):
        store.save_cell(
            user.id,
            step.id,
            code=step.solution,
            outputs=[dict(out) for out in cell.outputs],
            execution_count=cell.execution_count,
            passed=None if step.given else True,
        )
    for qid, text in GOOD_ANSWERS.items():
        store.save_answer(user.id, qid, text)

    bundle = export_for(store, user.id, model_name=MODEL)
    exported = nbformat.reads(bundle.notebook.decode("utf-8"), as_version=4)
    nbformat.validate(exported)
    exported_cells = {cell.id: cell for cell in exported.cells}

    # Re-execute the exported notebook, plus one probe cell that asks its function.
    rerun = nbformat.reads(bundle.notebook.decode("utf-8"), as_version=4)
    probe = (
        "import json\n"
        f"print(json.dumps({{p: list(predict_next_tokens(p, 5)['tokens']) "
        f"for p in {list(content.STEP6_EXAMPLES)!r}}}))\n"
    )
    rerun.cells.append(nbformat.v4.new_code_cell(probe, id="probe"))
    _execute(rerun, kernel_name)
    assert _errors(rerun) == []
    rerun_cells = {cell.id: cell for cell in rerun.cells}

    # Step 2 prints the logits' shape: the same in the export, the re-run and transformers.
    shape_exported = ast.literal_eval(_stdout(exported_cells["step2"]).strip())
    shape_rerun = ast.literal_eval(_stdout(rerun_cells["step2"]).strip())
    assert shape_exported == shape_rerun == reference["shape"]
    # Step 4 prints the most likely next token: the same line in both, the expected token.
    assert _stdout(exported_cells["step4"]) == _stdout(rerun_cells["step4"])
    assert repr(reference["top1"]) in _stdout(rerun_cells["step4"])
    # predict_next_tokens in the re-executed notebook gives the expected top-5 tokens.
    assert json.loads(_stdout(rerun_cells["probe"])) == reference["top5"]
    # Execution counts run in notebook order in the export.
    counts = [c.execution_count for c in exported.cells if c.cell_type == "code"]
    assert counts == list(range(1, len(counts) + 1))
    store.close()
