rule sft:
    input:
        train=TRAIN_TABLE,
        base=lambda w: sft_inputs(w.run),
    output:
        directory("results/models/{run}"),
    log:
        "results/logs/sft/{run}.log",
    benchmark:
        "results/benchmarks/sft/{run}.tsv"
    conda:
        conda_env("models")
    threads: workflow.cores
    resources:
        gpu=lambda w: editor_gpus(config["sft"][w.run]["editor"]),
        mem_mb=lambda w: editor_memory(config["sft"][w.run]["editor"]),
        runtime=1440,
    params:
        run=lambda w: config["sft"][w.run],
        editor=lambda w: training_editor("sft", w.run),
        checkpoints=lambda w: f"results/checkpoints/sft/{w.run}",
    script:
        "../workflow_scripts/sft.py"


rule train:
    input:
        train=TRAIN_TABLE,
        bench=BENCH_TABLE,
        base=lambda w: train_inputs(w.nft),
        weights=flow_weights(EVAL_FLOW),
    output:
        directory("results/train/{nft}"),
    log:
        "results/logs/train/{nft}.log",
    benchmark:
        "results/benchmarks/train/{nft}.tsv"
    conda:
        conda_env("models")
    threads: workflow.cores
    resources:
        mem_mb=lambda w: editor_memory(config["train"][w.nft]["editor"]),
        runtime=2880,
        gpu=lambda w: config["train"][w.nft]["gpus"] * config["train"][w.nft]["nodes"],
        # One task per machine; the job starts them itself with srun (`mpi`: Snakemake
        # does not wrap it in a one-task srun step; "" for one machine, where there is
        # nothing to start). tasks_per_gpu 0: no --ntasks-per-gpu for a GPU job.
        nodes=lambda w: config["train"][w.nft]["nodes"],
        tasks=lambda w: config["train"][w.nft]["nodes"],
        tasks_per_gpu=0,
        mpi=lambda w: "srun" if config["train"][w.nft]["nodes"] > 1 else "",
    params:
        run=lambda w: config["train"][w.nft],
        editor=lambda w: training_editor("train", w.nft),
        # What the rewards and the held-out MAS read; changing it retrains. The motion
        # reward measures flow as the benchmark's MAS does (evaluate.flow_backend).
        config={
            "flow": EVAL_FLOW,
            "metrics": config["metrics"],
            "rewards": config["rewards"],
        },
        state_dir=lambda w: f"results/checkpoints/train/{w.nft}",
    script:
        "../workflow_scripts/train.py"


rule infer:
    input:
        bench=BENCH_TABLE,
        model=lambda w: model_inputs(w.model),
    output:
        "results/eval/{model}/outputs.parquet",
    log:
        "results/logs/infer/{model}.log",
    benchmark:
        "results/benchmarks/infer/{model}.tsv"
    conda:
        conda_env("models")
    threads: workflow.cores
    resources:
        gpu=lambda w: model_gpus(w.model),
        mem_mb=lambda w: model_memory(w.model),
        runtime=720,
    params:
        config=lambda w: model_config(w.model),
    script:
        "../workflow_scripts/infer.py"
