rule fetch:
    output:
        manifest="results/videos/{src}/{shard}.parquet",
        videos=directory("results/videos/{src}/{shard}"),
    log:
        "results/logs/fetch/{src}/{shard}.log",
    benchmark:
        "results/benchmarks/fetch/{src}/{shard}.tsv"
    conda:
        conda_env("mining")
    resources:
        mem_mb=2000,
        runtime=240,
    params:
        source=lambda wildcards: SOURCES[wildcards.src],
        inputs=lambda wildcards: fingerprints(wildcards.src)[int(wildcards.shard)],
        video=config["video"],
    script:
        "../workflow_scripts/fetch.py"
