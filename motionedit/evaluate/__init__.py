"""MotionEdit-Bench evaluation: per-sample scores of each model's edits, win rates, tables
with bootstrap intervals, and the figures of the report.

What lives here:

- ``metrics.py``: the registry of metrics, the columns each writes per sample and what
  Table 1 prints of them; torch-free;
- ``scores.py``: one model's ``scores.parquet`` (MAS, and the generative scores of
  ``generative.py`` when an MLLM is configured);
- ``winrate.py``, ``tables.py``, ``summary.py``: pairwise win rates, Table 1 overall and per
  category with bootstrap intervals, and the `summarize` stage that writes them;
- ``figures.py``, ``report.py``: the report's figures and what goes into them.
- ``paper.py``: the paper's published Table 1 (``paper_table1.csv``), printed beside ours;
  torch- and pandas-free.
"""
