"""examples/lectures-1-3.ipynb, executed by Jupyter's own executor (nbclient), so it never rots."""

from pathlib import Path

from conftest import missing

NOTEBOOK = Path(__file__).parent.parent / "examples" / "lectures-1-3.ipynb"


def test_the_lectures_notebook_runs(tmp_path):
    try:
        import nbclient
        import nbformat
    except ImportError:
        missing("needs the notebook extra: pip install -e '.[notebook]'")
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbclient.NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
                            ).execute()
    outputs = {i: c.get("outputs", []) for i, c in enumerate(nb.cells) if c.cell_type == "code"}
    assert all(o["output_type"] != "error" for out in outputs.values() for o in out)
    figures = [o for out in outputs.values() for o in out if "image/png" in o.get("data", {})]
    assert len(figures) >= 3  # the counts table, the loss curve, a diagnostics figure
    text = "".join(o.get("text", "") + str(o.get("data", {}).get("text/plain", "")) for out in outputs.values()
                   for o in out)
    assert "train" in text and "val" in text
