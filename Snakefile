# MotionEdit: videos -> motion-editing triplets (input frame, instruction, target frame).
# The stages and their tables are described in docs/architecture.md; every setting is in
# config.yaml and documented in schemas/config.schema.yaml.


configfile: "config.yaml"


include: "rules/common.smk"
include: "rules/sources.smk"
include: "rules/frames.smk"
include: "rules/prefilter.smk"
include: "rules/judge.smk"
include: "rules/dataset.smk"


rule all:
    default_target: True
    input:
        rules.dataset.output,
