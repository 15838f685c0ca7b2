rule unimatch_weights:
    output:
        UNIMATCH_WEIGHTS,
    log:
        "results/logs/unimatch_weights.log",
    conda:
        conda_env("mining")
    resources:
        mem_mb=1000,
        runtime=30,
    script:
        "../workflow_scripts/unimatch_weights.py"
