# Figures for `snakemake --report results/report.html`, which gathers them with the tables.


rule report_benchmark:
    input:
        bench=BENCH_TABLE,
        scores=expand("results/eval/{model}/scores.parquet", model=config["models"]),
        per_category="results/eval/per_category.csv",
    output:
        samples=report(
            "results/report/samples.png",
            caption="../report/samples.rst",
            category="1. Benchmark",
            labels={"figure": "Benchmark samples"},
        ),
        mas_by_category=report(
            "results/report/mas_by_category.png",
            caption="../report/mas_by_category.rst",
            category="1. Benchmark",
            labels={"figure": "MAS per motion category"},
        ),
    log:
        "results/logs/report/benchmark.log",
    conda:
        conda_env("eval")
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        models=list(config["models"]),
        samples=config["report"]["samples"],
    script:
        "../workflow_scripts/report_benchmark.py"


rule report_training:
    input:
        expand("results/train/{nft}", nft=config["train"]),
    output:
        mas_curves=report(
            "results/report/mas_curves.png",
            caption="../report/mas_curves.rst",
            category="2. Training",
            labels={"figure": "MAS against training step"},
        ),
        reward_curves=report(
            "results/report/reward_curves.png",
            caption="../report/reward_curves.rst",
            category="2. Training",
            labels={"figure": "Training reward"},
        ),
    log:
        "results/logs/report/training.log",
    conda:
        conda_env("eval")
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        runs=list(config["train"]),
    script:
        "../workflow_scripts/report_training.py"


rule report_dataset:
    input:
        stats="results/dataset/stats.json",
        train="results/dataset/train/data.parquet",
        bench="results/dataset/bench/data.parquet",
    output:
        funnel=report(
            "results/report/funnel.png",
            caption="../report/funnel.rst",
            category="3. Dataset",
            labels={"figure": "Funnel"},
        ),
        categories=report(
            "results/report/categories.png",
            caption="../report/categories.rst",
            category="3. Dataset",
            labels={"figure": "Motion categories"},
        ),
        motion=report(
            "results/report/dataset_motion.csv",
            caption="../report/dataset_motion.rst",
            category="3. Dataset",
            labels={"table": "Motion magnitude"},
        ),
        motion_md="results/report/dataset_motion.md",
    log:
        "results/logs/report/dataset.log",
    conda:
        conda_env("eval")
    resources:
        mem_mb=4000,
        runtime=30,
    script:
        "../workflow_scripts/report_dataset.py"
