rule evaluate:
    input:
        bench=BENCH_TABLE,
        outputs="results/eval/{model}/outputs.parquet",
        weights=flow_weights(EVAL_FLOW),
    output:
        scores="results/eval/{model}/scores.parquet",
        raw="results/eval/{model}/scores.raw.jsonl",
    log:
        "results/logs/evaluate/{model}.log",
    benchmark:
        "results/benchmarks/evaluate/{model}.tsv"
    conda:
        conda_env("eval")
    threads: workflow.cores
    resources:
        gpu=flow_gpus(EVAL_FLOW),
        mem_mb=8000,
        runtime=240,
        mllm=mllm_jobs(config["evaluate"]["generative"]),
    params:
        flow=EVAL_FLOW,
        metrics=config["metrics"],
        generative=config["evaluate"]["generative"],
        pricing=mllm_pricing(config["evaluate"]["generative"]),
    script:
        "../workflow_scripts/evaluate.py"


rule summarize:
    input:
        expand("results/eval/{model}/scores.parquet", model=config["models"]),
    output:
        summary=report(
            "results/eval/summary.csv",
            caption="../report/summary.rst",
            category="1. Benchmark",
            labels={"table": "Table 1 (all samples)"},
        ),
        summary_md="results/eval/summary.md",
        per_category=report(
            "results/eval/per_category.csv",
            caption="../report/per_category.rst",
            category="1. Benchmark",
            labels={"table": "Table 1 per motion category"},
        ),
        per_category_md="results/eval/per_category.md",
        winrate=report(
            "results/eval/winrate.csv",
            caption="../report/winrate.rst",
            category="1. Benchmark",
            labels={"table": "Pairwise win rates"},
        ),
    log:
        "results/logs/summarize.log",
    conda:
        conda_env("eval")
    resources:
        mem_mb=4000,
        runtime=30,
    params:
        models=list(config["models"]),
        paper={m: spec.get("paper") for m, spec in config["models"].items()},
        settings={k: config["evaluate"][k] for k in ("win_rate", "bootstrap")},
        seed=config["seed"],
    script:
        "../workflow_scripts/summarize.py"
