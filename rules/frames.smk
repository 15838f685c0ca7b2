rule frames:
    input:
        manifest="results/videos/{src}/{shard}.parquet",
    output:
        table="results/frames/{src}/{shard}.parquet",
        frames=directory("results/frames/{src}/{shard}"),
    params:
        frames=config["frames"],
    log:
        "results/logs/frames/{src}/{shard}.log",
    benchmark:
        "results/benchmarks/frames/{src}/{shard}.tsv"
    conda:
        "../envs/mining.yaml"
    script:
        "../workflow_scripts/frames.py"
