rule unimatch_weights:
    output:
        UNIMATCH_WEIGHTS,
    log:
        "results/logs/unimatch_weights.log",
    conda:
        "../envs/mining.yaml"
    script:
        "../workflow_scripts/unimatch_weights.py"
