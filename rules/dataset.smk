rule dataset:
    input:
        manifests=per_shard("results/videos/{src}/{shard}.parquet"),
        frames=per_shard("results/frames/{src}/{shard}.parquet"),
        prefilter=per_shard("results/prefilter/{src}/{shard}.parquet"),
        judge=per_shard("results/judge/{src}/{shard}.parquet"),
        instructions=per_shard("results/instructions/{src}/{shard}.parquet"),
    output:
        train_meta="results/dataset/train/metadata.jsonl",
        train_table="results/dataset/train/data.parquet",
        train_images=directory("results/dataset/train/images"),
        bench_meta="results/dataset/bench/metadata.jsonl",
        bench_table="results/dataset/bench/data.parquet",
        bench_images=directory("results/dataset/bench/images"),
        stats="results/dataset/stats.json",
    log:
        "results/logs/dataset/dataset.log",
    benchmark:
        "results/benchmarks/dataset/dataset.tsv"
    conda:
        conda_env("mining")
    resources:
        mem_mb=16000,
        runtime=60,
    params:
        dataset=config["dataset"],
        seed=config["seed"],
        flow_backend=config["flow"]["backend"],
    script:
        "../workflow_scripts/dataset.py"


# A train or benchmark split made elsewhere (datasets.<role>: hub or local), checked row
# by row and written in the layout of the mined splits.
rule import_dataset:
    input:
        local_dataset_files,
    output:
        table="results/datasets/{role}/data.parquet",
        meta="results/datasets/{role}/metadata.jsonl",
        images=directory("results/datasets/{role}/images"),
        summary="results/datasets/{role}/import.json",
    log:
        "results/logs/import_dataset/{role}.log",
    benchmark:
        "results/benchmarks/import_dataset/{role}.tsv"
    conda:
        conda_env("mining")
    resources:
        mem_mb=8000,
        runtime=120,
    params:
        spec=lambda w: config["datasets"][w.role],
    script:
        "../workflow_scripts/import_dataset.py"
