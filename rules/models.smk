rule sft:
    input:
        train="results/dataset/train/data.parquet",
        base=lambda w: sft_inputs(w.run),
    output:
        directory("results/models/{run}"),
    log:
        "results/logs/sft/{run}.log",
    benchmark:
        "results/benchmarks/sft/{run}.tsv"
    conda:
        "../envs/models.yaml"
    threads: workflow.cores
    params:
        run=lambda w: config["sft"][w.run],
        editor=lambda w: sft_editor(w.run),
        checkpoints=lambda w: f"results/checkpoints/sft/{w.run}",
    script:
        "../workflow_scripts/sft.py"


rule infer:
    input:
        bench="results/dataset/bench/data.parquet",
        model=lambda w: model_inputs(w.model),
    output:
        "results/eval/{model}/outputs.parquet",
    log:
        "results/logs/infer/{model}.log",
    benchmark:
        "results/benchmarks/infer/{model}.tsv"
    conda:
        "../envs/models.yaml"
    threads: workflow.cores
    params:
        config=lambda w: model_config(w.model),
    script:
        "../workflow_scripts/infer.py"
