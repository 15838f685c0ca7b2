rule fetch:
    output:
        manifest="results/videos/{src}/{shard}.parquet",
        videos=directory("results/videos/{src}/{shard}"),
    log:
        "results/logs/fetch/{src}/{shard}.log",
    benchmark:
        "results/benchmarks/fetch/{src}/{shard}.tsv"
    conda:
        "../envs/mining.yaml"
    params:
        source=lambda wildcards: SOURCES[wildcards.src],
        video=config["video"],
    script:
        "../workflow_scripts/fetch.py"
