"""Sphinx configuration of the smartbkg documentation.

Build locally (from the repository root)::

    pip install -e ".[docs]"
    python -m sphinx -W --keep-going -n -b html docs docs/_build/html

Three parts are made at build time, so that nothing is copied by hand:

* the API reference, by autosummary from the docstrings of every module of ``smartbkg``
  (``docs/api/``, git-ignored);
* the notebooks, copied with their committed outputs from ``notebooks/*.ipynb`` into
  ``docs/notebooks/`` (git-ignored) and rendered by myst-nb without executing them;
* the benchmark tables, read from ``benchmarks/results/*.json`` by the ``benchmark-results``
  directive of ``docs/_ext/smartbkg_docs.py``.
"""

import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(DOCS / "_ext"))

import smartbkg  # noqa: E402  (after the path set-up)

project = "smartbkg"
author = "the smartbkg developers"
copyright = "the smartbkg developers"
release = version = smartbkg.__version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "myst_nb",
    "smartbkg_docs",
]

source_suffix = {".rst": "restructuredtext"}
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store", "**.ipynb_checkpoints"]
templates_path = ["_templates"]
html_theme = "furo"
html_title = f"smartbkg {release}"

# ----------------------------------------------------------------------------- API reference
autosummary_generate = True
autosummary_imported_members = False
autodoc_default_options = {"members": True, "show-inheritance": True, "member-order": "bysource",
                           "ignore-module-all": True}
autodoc_typehints = "description"
autodoc_inherit_docstrings = False      # methods inherited from torch / PyG keep their own docs
napoleon_google_docstring = True
napoleon_numpy_docstring = False
napoleon_use_rtype = False

# ----------------------------------------------------------------------------- notebooks (myst-nb)
nb_execution_mode = "off"          # render the committed outputs; CI executes the notebooks itself
nb_merge_streams = True
myst_heading_anchors = 3
myst_enable_extensions = ["dollarmath"]

# ----------------------------------------------------------------------------- cross-references
# Broken references are errors (-n). Only types of other projects may stay unresolved: there is no
# network at build time, hence no intersphinx.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(torch|numpy|np|pyarrow|pa|h5py|pyhepmc|awkward|ak|torch_geometric|optuna|yaml|"
               r"sklearn|tqdm|pythia8mc|pythia8|particle|tensorboard|concurrent|multiprocessing|"
               r"collections|typing|pathlib|os|io|logging|dataclasses|enum|argparse|json|csv|numbers)(\..*)?"),
]
nitpick_ignore = [("py:class", "Optimizer")]   # torch.optim.Optimizer, annotated by its short name
