# Personalised prior (hfagp/prior/): frame selection -> W+ inversion (+ optional PTI) -> PCA prior (+ QC images).
# The rule making prior.npz is `pca_prior` (the Snakefile's target rule is called `prior`).


import hfagp.prior.workflow as prior_workflow


rule select_frames:
    input:
        unpack(
            lambda w: {
                "cameras": f"results/{w.subject}/cameras.parquet",
                "split": f"results/{w.subject}/split.json",
                # Subjects without expression coefficients (HFA-GP audio-mode imports) select on pose only.
                **expressions_input(w.subject),
            }
        ),
    output:
        "results/{subject}/inversion/selection.json",
    params:
        n_frames=lambda w: setting("inversion", "frames"),
        expressions=lambda w: optional_flag("--expressions", expressions_input(w.subject).get("expressions")),
    log:
        "results/{subject}/logs/select_frames.log",
    benchmark:
        "results/{subject}/benchmarks/select_frames.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp select-frames --cameras {input.cameras:q} --split {input.split:q} "
        "{params.expressions} --frames {params.n_frames} -o {output:q} --log {log:q}"


rule invert:
    input:
        unpack(
            lambda w: {
                "crops": f"results/{w.subject}/crops",
                "cameras": f"results/{w.subject}/cameras.parquet",
                "selection": f"results/{w.subject}/inversion/selection.json",
                **prior_workflow.checkpoint_inputs(config),
            }
        ),
    output:
        latents="results/{subject}/inversion/latents.pt",
        losses="results/{subject}/inversion/losses.parquet",
        plot=report("results/{subject}/inversion/losses.png", caption="../report/inversion_losses.rst", category="Loss curves", subcategory="{subject}"),
        generator="results/{subject}/inversion/generator.json",
        qc=report("results/{subject}/qc/inversion.png", caption="../report/qc_inversion.rst", category="Quality control", subcategory="{subject}"),
    params:
        checkpoint=lambda w: prior_workflow.checkpoint_flag(config),
        tuned=lambda w: prior_workflow.tuned_generator_flag(w.subject, setting("inversion", "pti_steps")),
        steps=lambda w: setting("inversion", "steps"),
        lr=lambda w: setting("inversion", "lr"),
        lr_rampup=lambda w: setting("inversion", "lr_rampup"),
        lr_rampdown=lambda w: setting("inversion", "lr_rampdown"),
        noise_scale=lambda w: setting("inversion", "noise_scale"),
        mse_weight=lambda w: setting("inversion", "mse_weight"),
        lpips_weight=lambda w: setting("inversion", "lpips_weight"),
        batch_size=lambda w: setting("inversion", "batch_size"),
        pti_steps=lambda w: setting("inversion", "pti_steps"),
        pti_lr=lambda w: setting("inversion", "pti_lr"),
        qc_yaw=lambda w: setting("inversion", "qc_yaw"),
        lpips_backbone=lambda w: setting("lpips", "backbone"),
        lpips_weights=lambda w: optional_flag("--lpips-weights", setting("lpips", "weights")),
        device=lambda w: config.get("device", "cpu"),
        seed=lambda w: config.get("seed", 0),
    log:
        "results/{subject}/logs/invert.log",
    benchmark:
        "results/{subject}/benchmarks/invert.tsv"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=240,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp invert --crops {input.crops:q} --cameras {input.cameras:q} --selection {input.selection:q} "
        "{params.checkpoint} -o {output.latents:q} --losses {output.losses:q} --loss-plot {output.plot:q} "
        "--generator-json {output.generator:q} --qc {output.qc:q} {params.tuned} "
        "--steps {params.steps} --lr {params.lr} --lr-rampup {params.lr_rampup} --lr-rampdown {params.lr_rampdown} "
        "--noise-scale {params.noise_scale} --mse-weight {params.mse_weight} --lpips-weight {params.lpips_weight} "
        "--lpips-backbone {params.lpips_backbone} {params.lpips_weights} --batch-size {params.batch_size} "
        "--pti-steps {params.pti_steps} --pti-lr {params.pti_lr} --qc-yaw {params.qc_yaw} "
        "--device {params.device} --seed {params.seed} --threads {threads} --log {log:q}"


rule pca_prior:
    input:
        "results/{subject}/inversion/latents.pt",
    output:
        "results/{subject}/prior.npz",
    params:
        subspace_dim=lambda w: setting("prior", "subspace_dim"),
        seed=lambda w: config.get("seed", 0),
    log:
        "results/{subject}/logs/prior.log",
    benchmark:
        "results/{subject}/benchmarks/prior.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=10,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp prior {input:q} -o {output:q} --subspace-dim {params.subspace_dim} --seed {params.seed} --log {log:q}"


rule qc_prior:
    input:
        unpack(
            lambda w: {
                "prior": f"results/{w.subject}/prior.npz",
                "generator": f"results/{w.subject}/inversion/generator.json",
                **prior_workflow.checkpoint_inputs(config),
            }
        ),
    output:
        report("results/{subject}/qc/prior.png", caption="../report/qc_prior.rst", category="Quality control", subcategory="{subject}"),
    params:
        directions=lambda w: setting("prior", "qc_directions"),
        sigma=lambda w: setting("prior", "qc_sigma"),
        device=lambda w: config.get("device", "cpu"),
    log:
        "results/{subject}/logs/qc_prior.log",
    benchmark:
        "results/{subject}/benchmarks/qc_prior.tsv"
    threads: 2
    resources:
        mem_mb=4000,
        runtime=20,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp qc-prior {input.prior:q} --generator-json {input.generator:q} -o {output:q} "
        "--directions {params.directions} --sigma {params.sigma} --device {params.device} "
        "--threads {threads} --log {log:q}"
