"""Everything the results folder knows about one pair id (``motionedit.inspect``), runnable
as ``python workflow_scripts/inspect_pair.py PAIR_ID`` from a workflow's working directory.

Not a Snakemake job: a command for a person asking why a pair was kept or dropped.
"""

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
# The repository's motionedit/ package, whichever environment (venv, conda) runs this. The
# script's own folder goes: its job scripts (dataset.py, evaluate.py, train.py, ...) would
# shadow any library module of the same name that a dependency imports.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != HERE]
sys.path.insert(0, str(HERE.parent))

from motionedit.inspect import main

sys.exit(main())
