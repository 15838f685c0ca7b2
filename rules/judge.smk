rule judge:
    input:
        prefilter="results/prefilter/{src}/{shard}.parquet",
        motion="results/prefilter/{src}/{shard}",
        frames="results/frames/{src}/{shard}.parquet",
        weights=flow_weights(config["flow"]),
    output:
        table="results/judge/{src}/{shard}.parquet",
        raw="results/judge/{src}/{shard}.raw.jsonl",
    log:
        "results/logs/judge/{src}/{shard}.log",
    benchmark:
        "results/benchmarks/judge/{src}/{shard}.tsv"
    conda:
        conda_env("mining")
    resources:
        gpu=flow_gpus(config["flow"]) if config["judge"]["backend"] == "offline" else 0,
        mem_mb=4000,
        runtime=720,
        # `--resources mllm=1` runs one MLLM job at a time, so the quota in `mllm:` holds.
        mllm=mllm_jobs(config["judge"]),
    params:
        config={k: config[k] for k in ("judge", "prefilter", "flow")},
        pricing=mllm_pricing(config["judge"]),
    script:
        "../workflow_scripts/judge.py"


rule rewrite:
    input:
        judge="results/judge/{src}/{shard}.parquet",
    output:
        table="results/instructions/{src}/{shard}.parquet",
        raw="results/instructions/{src}/{shard}.raw.jsonl",
    log:
        "results/logs/rewrite/{src}/{shard}.log",
    benchmark:
        "results/benchmarks/rewrite/{src}/{shard}.tsv"
    conda:
        conda_env("mining")
    resources:
        mem_mb=2000,
        runtime=240,
        mllm=mllm_jobs(config["rewrite"]),
    params:
        config={"rewrite": config["rewrite"]},
        pricing=mllm_pricing(config["rewrite"]),
    script:
        "../workflow_scripts/rewrite.py"
