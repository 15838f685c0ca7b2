# MotionEdit: videos -> motion-editing triplets (input frame, instruction, target frame),
# editors fine-tuned on them, their edits of the benchmark, and the scores and report.
# The stages and their tables are described in docs/architecture.md; every setting is in
# config.yaml and documented in schemas/config.schema.yaml.


configfile: "config.yaml"


report: "report/workflow.rst"


include: "rules/common.smk"
include: "rules/sources.smk"
include: "rules/frames.smk"
include: "rules/prefilter.smk"
include: "rules/judge.smk"
include: "rules/dataset.smk"
include: "rules/weights.smk"
include: "rules/models.smk"
include: "rules/evaluate.smk"
include: "rules/report.smk"


rule all:
    default_target: True
    input:
        [rules.dataset.output, rules.report_dataset.output]
        if mining_needed(config)
        else [],
        expand("results/train/{nft}", nft=config["train"]),
        rules.report_training.output if config["train"] else [],
        [rules.summarize.output, rules.report_benchmark.output]
        if config["models"]
        else [],
