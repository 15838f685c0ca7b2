"""Running the workflow on a cluster: the Slurm profile written from the cluster's own
facts (``python -m motionedit.cluster slurm-profile``).

- ``slurm_facts``: what ``sinfo``, ``scontrol`` and ``sacctmgr`` say (partitions, GPUs,
  accounting, MinJobAge, the account);
- ``slurm_profile``: the Snakemake profile those facts give, and writing it without
  overwriting a user's edits.

The package imports only the standard library: it runs on login nodes with nothing else.
"""
