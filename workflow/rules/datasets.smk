# Imported subjects: `format: nerface | adnerf | hfagp` in config.yaml, `dataset:` the folder.
# One rule per kind of import (fixed outputs; see hfagp/datasets/workflow.py). The ruleorder
# lines make an import win over the stage that would otherwise compute the same artifact
# (e.g. NeRFace's own expression coefficients instead of our fit).


rule import_nerface:
    output:
        **import_outputs("nerface"),
    wildcard_constraints:
        subject=subjects_of("nerface"),
    params:
        **import_params(),
    log:
        "results/{subject}/logs/import.log",
    benchmark:
        "results/{subject}/benchmarks/import.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        import_command("nerface")


rule import_adnerf:
    output:
        **import_outputs("adnerf"),
    wildcard_constraints:
        subject=subjects_of("adnerf"),
    params:
        **import_params(),
    log:
        "results/{subject}/logs/import.log",
    benchmark:
        "results/{subject}/benchmarks/import.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        import_command("adnerf")


rule import_hfagp_3dmm:
    output:
        **import_outputs("hfagp-3dmm"),
    wildcard_constraints:
        subject=subjects_of("hfagp-3dmm"),
    params:
        **import_params(),
    log:
        "results/{subject}/logs/import.log",
    benchmark:
        "results/{subject}/benchmarks/import.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        import_command("hfagp")


rule import_hfagp_audio:
    output:
        **import_outputs("hfagp-audio"),
    wildcard_constraints:
        subject=subjects_of("hfagp-audio"),
    params:
        **import_params(),
    log:
        "results/{subject}/logs/import.log",
    benchmark:
        "results/{subject}/benchmarks/import.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        import_command("hfagp")


rule import_hfagp_labels:
    output:
        **import_outputs("hfagp-labels"),
    wildcard_constraints:
        subject=subjects_of("hfagp-labels"),
    params:
        **import_params(),
    log:
        "results/{subject}/logs/import.log",
    benchmark:
        "results/{subject}/benchmarks/import.tsv"
    threads: 2
    resources:
        mem_mb=2000,
        runtime=60,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        import_command("hfagp")


ruleorder: import_nerface > fit_expressions
ruleorder: import_nerface > split
ruleorder: import_adnerf > audio_features
ruleorder: import_adnerf > split
ruleorder: import_hfagp_3dmm > fit_expressions
ruleorder: import_hfagp_3dmm > align
ruleorder: import_hfagp_3dmm > split
ruleorder: import_hfagp_audio > audio_features
ruleorder: import_hfagp_audio > align
ruleorder: import_hfagp_audio > split
ruleorder: import_hfagp_labels > align
ruleorder: import_hfagp_labels > split
