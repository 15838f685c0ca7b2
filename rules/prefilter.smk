rule prefilter:
    input:
        frames="results/frames/{src}/{shard}.parquet",
        weights=flow_weights(config["flow"]),
    output:
        table="results/prefilter/{src}/{shard}.parquet",
    log:
        "results/logs/prefilter/{src}/{shard}.log",
    benchmark:
        "results/benchmarks/prefilter/{src}/{shard}.tsv"
    conda:
        "../envs/mining.yaml"
    params:
        prefilter=config["prefilter"],
        flow=config["flow"],
    script:
        "../workflow_scripts/prefilter.py"
