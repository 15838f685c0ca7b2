"""MotionEdit-Bench evaluation: per-sample scores of each model's edits, win rates, tables
with bootstrap intervals, and the figures of the report."""
