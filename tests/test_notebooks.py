"""The notebooks run top to bottom (outputs are not compared), each well under 60 s."""

import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
for _module in ("matplotlib", "sklearn", "optax", "flax", "scipy"):
    pytest.importorskip(_module)

NOTEBOOKS = sorted((Path(__file__).parent.parent / "notebooks").glob("*.ipynb"))
# Notebooks 2, 4 and 5 port a torch model; notebook 1 only overlays torch when it
# is there. Notebook 4 needs equinox, notebook 5 transformers.
NEEDS_TORCH = {"02_flax", "04_equinox", "05_check_a_port"}
# The budget is 60 s on 2 CPU cores; the timeout only stops a notebook that hangs.
TIMEOUT_S = 300


def test_there_are_notebooks() -> None:
    assert [path.name[:3] for path in NOTEBOOKS] == ["01_", "02_", "03_", "04_", "05_"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda path: path.stem)
def test_notebook_runs(path: Path) -> None:
    if path.stem in NEEDS_TORCH:
        pytest.importorskip("torch")
    if path.stem == "04_equinox":
        pytest.importorskip("equinox")
    if path.stem == "05_check_a_port":
        pytest.importorskip("transformers")
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        timeout=TIMEOUT_S,
        kernel_name="python3",
        resources={"metadata": {"path": str(path.parent)}},
    )
    started = time.perf_counter()
    client.execute()  # raises CellExecutionError, with the cell and traceback
    print(f"{path.name}: {time.perf_counter() - started:.1f} s")
