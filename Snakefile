# MotionEdit: videos -> motion-editing triplets (input frame, instruction, target frame),
# editors fine-tuned on them, and their edits of the benchmark.
# The stages and their tables are described in docs/architecture.md; every setting is in
# config.yaml and documented in schemas/config.schema.yaml.


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/sources.smk"
include: "rules/frames.smk"
include: "rules/prefilter.smk"
include: "rules/judge.smk"
include: "rules/dataset.smk"
include: "rules/models.smk"


rule all:
    default_target: True
    input:
        rules.dataset.output,
        expand("results/train/{nft}", nft=config["train"]),
        expand("results/eval/{model}/outputs.parquet", model=config["models"]),
