rule frames:
    input:
        manifest="results/videos/{src}/{shard}.parquet",
    output:
        table="results/frames/{src}/{shard}.parquet",
        frames=directory("results/frames/{src}/{shard}"),
    log:
        "results/logs/frames/{src}/{shard}.log",
    benchmark:
        "results/benchmarks/frames/{src}/{shard}.tsv"
    conda:
        "../envs/mining.yaml"
    params:
        frames=config["frames"],
    script:
        "../workflow_scripts/frames.py"
