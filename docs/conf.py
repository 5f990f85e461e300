"""Sphinx configuration for the jaxinit documentation (`make docs`).

Three things are computed at build time rather than committed, so that pages
and modules added by later work appear without editing this file:

- the table of contents of ``index.md``: the pages in ``GUIDES`` and
  ``REFERENCE`` that exist, in that order, then every other page under
  ``docs/`` (a new page is never an orphan, a missing one never an error);
- ``notebooks/``: copies of the repository's ``notebooks/*.ipynb``, rendered
  from their committed outputs (never executed here);
- ``api/``: one page per public module (``MODULES`` that import), listing every
  name of its ``__all__`` through autosummary.
"""

import importlib
import shutil
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))

import jaxinit  # noqa: E402

project = "jaxinit"
author = "the jaxinit authors"
copyright = "the jaxinit authors"
release = jaxinit.__version__
version = release

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
]

# Generated: api/ and notebooks/ (written below), never committed.
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
html_theme = "sphinx_book_theme"
html_title = f"jaxinit {release}"
html_theme_options = {"show_toc_level": 2}

myst_enable_extensions = ["colon_fence", "dollarmath"]
myst_heading_anchors = 3
nb_execution_mode = "off"  # notebooks show their committed outputs

autosummary_generate = True
autodoc_typehints = "description"
autodoc_member_order = "bysource"
napoleon_google_docstring = True
napoleon_numpy_docstring = False

# The table of contents, in reading order. A name that has no page is skipped.
GUIDES = [
    "getting_started",
    "torch_to_jaxinit",
    "differences",
    "layout",
    "porting",
    "porting_equinox",
    "check_a_port",
    "conversion_limits",
    "scale",
    "sharding",
    "fast_paths",
    "command_line",
]
REFERENCE = ["errors", "numerics", "determinism", "versions", "benchmarks"]
MODULES = ["jaxinit", "jaxinit.torch_defaults", "jaxinit.flax", "jaxinit.equinox"]
# Pages reached otherwise (the landing page, the generated sections).
_NOT_IN_LISTS = {"index"}


def _write(path: Path, text: str) -> None:
    """Writes ``text`` unless the file already holds it (keeps rebuilds incremental)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _copy_notebooks() -> None:
    target = DOCS / "notebooks"
    sources = sorted((ROOT / "notebooks").glob("*.ipynb"))
    for stale in target.glob("*.ipynb"):
        if stale.name not in {source.name for source in sources}:
            stale.unlink()
    for source in sources:
        copy = target / source.name
        if not copy.exists() or copy.read_bytes() != source.read_bytes():
            target.mkdir(exist_ok=True)
            shutil.copyfile(source, copy)


def _public_modules() -> list[Any]:
    modules = []
    for name in MODULES:
        try:
            modules.append(importlib.import_module(name))
        except ModuleNotFoundError as error:
            if error.name != name:  # the module exists but is broken: say so
                raise
    return modules


def _write_api() -> None:
    modules = _public_modules()
    entries = "\n".join(f"   {module.__name__}" for module in modules)
    _write(
        DOCS / "api" / "index.rst",
        "API reference\n=============\n\n"
        "Every public name of every public module, generated from its ``__all__``.\n\n"
        f".. toctree::\n   :maxdepth: 2\n\n{entries}\n",
    )
    for module in modules:
        title = module.__name__
        names = "\n".join(f"   {name}" for name in sorted(module.__all__))
        _write(
            DOCS / "api" / f"{title}.rst",
            f"{title}\n{'=' * len(title)}\n\n"
            f".. automodule:: {title}\n   :no-members:\n\n"
            f".. currentmodule:: {title}\n\n"
            f".. autosummary::\n   :toctree: generated\n\n{names}\n",
        )


def _toctree(names: list[str]) -> str:
    return "\n".join(name for name in names if (DOCS / f"{name}.md").exists())


def _others() -> str:
    listed = set(GUIDES) | set(REFERENCE) | _NOT_IN_LISTS
    pages = sorted(path.stem for path in DOCS.glob("*.md"))
    return "\n".join(page for page in pages if page not in listed)


def _fill_index(app: Any, docname: str, source: list[str]) -> None:
    """Replaces the ``@toc:...@`` placeholders of index.md with existing pages."""
    if docname != "index":
        return
    others = _others()
    source[0] = (
        source[0]
        .replace("@toc:guides@", _toctree(GUIDES))
        .replace("@toc:reference@", _toctree(REFERENCE) + "\n" + others)
    )


def setup(app: Any) -> None:
    """Generates the notebook copies and API pages, and fills the index."""
    _copy_notebooks()
    _write_api()
    app.connect("source-read", _fill_index)
