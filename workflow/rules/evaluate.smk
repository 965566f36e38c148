# Rendering and evaluation (hfagp/evaluate/): reenactment / novel views / cross-driving of every trained avatar,
# per-frame metrics on the test split, and the paper-style table over all subjects.


rule render:
    wildcard_constraints:
        driver="rgb|expression|audio",
    input:
        unpack(
            lambda w: {
                "avatar": f"results/{w.subject}/driver/{w.driver}/checkpoint.pt",
                "crops": f"results/{w.subject}/crops",
                "cameras": f"results/{w.subject}/cameras.parquet",
                "split": f"results/{w.subject}/split.json",
                "table": f"results/{w.subject}/frames.parquet",
                **driver_signal_input(w.subject, w.driver),
                **render_audio_input(w.subject, w.driver),
            }
        ),
    output:
        reenact=directory("results/{subject}/render/{driver}/reenact/frames"),
        novel=directory("results/{subject}/render/{driver}/novel_yaw/frames"),
        orbit=directory("results/{subject}/render/{driver}/orbit/frames"),
        reenact_video=report(
            "results/{subject}/render/{driver}/reenact.mp4",
            caption="../report/reenact.rst",
            category="Avatars",
            subcategory="{subject}",
            labels={"subject": "{subject}", "driver": "{driver}", "video": "reenactment"},
        ),
        novel_video=report(
            "results/{subject}/render/{driver}/novel_yaw.mp4",
            caption="../report/novel.rst",
            category="Avatars",
            subcategory="{subject}",
            labels={"subject": "{subject}", "driver": "{driver}", "video": "yaw sweep"},
        ),
        orbit_video="results/{subject}/render/{driver}/orbit.mp4",
        info="results/{subject}/render/{driver}/avatar.json",
    params:
        signal=lambda w, input: driver_signal_flags(input),
        audio=lambda w, input: optional_flag("--audio", input.get("audio")),
        device=lambda w: config.get("device", "cpu"),
    log:
        "results/{subject}/logs/render_{driver}.log",
    benchmark:
        "results/{subject}/benchmarks/render_{driver}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp render --avatar {input.avatar:q} --crops {input.crops:q} --cameras {input.cameras:q} "
        "--split {input.split:q} {params.signal} --subject {wildcards.subject} --frames-table {input.table:q} "
        "{params.audio} --outdir results/{wildcards.subject}/render/{wildcards.driver} --device {params.device} "
        "--log {log:q}"


rule render_cross:
    wildcard_constraints:
        driver="rgb|expression|audio",
    input:
        unpack(lambda w: cross_inputs(w.subject, w.driver, w.source)),
    output:
        video="results/{subject}/render/{driver}/cross_{source}.mp4",
        frames=directory("results/{subject}/render/{driver}/cross_{source}/frames"),
    params:
        signal=lambda w, input: driver_signal_flags(input),
        source=lambda w, input: cross_source_flags(input),
        device=lambda w: config.get("device", "cpu"),
    log:
        "results/{subject}/logs/render_cross_{driver}_{source}.log",
    benchmark:
        "results/{subject}/benchmarks/render_cross_{driver}_{source}.tsv"
    threads: 2
    resources:
        mem_mb=8000,
        runtime=240,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp render-cross --avatar {input.avatar:q} --crops {input.crops:q} --cameras {input.cameras:q} "
        "--split {input.split:q} {params.signal} {params.source} -o {output.video:q} --device {params.device} "
        "--log {log:q}"


rule evaluate:
    wildcard_constraints:
        driver="rgb|expression|audio",
    input:
        renders="results/{subject}/render/{driver}/reenact/frames",
        novel="results/{subject}/render/{driver}/novel_yaw/frames",
        info="results/{subject}/render/{driver}/avatar.json",
        crops="results/{subject}/crops",
        split="results/{subject}/split.json",
    output:
        table="results/{subject}/render/{driver}/metrics.parquet",
        summary="results/{subject}/render/{driver}/metrics.json",
    params:
        protocol=lambda w: " ".join(
            [
                f"--resolution {setting('evaluation', 'resolution')}",
                f"--region {setting('evaluation', 'region')}",
                f"--color {setting('evaluation', 'color')}",
                f"--lpips-backbone {setting('evaluation', 'lpips_backbone')}",
                optional_flag("--lpips-weights", setting("evaluation", "lpips_weights")),
                optional_flag("--niqe-model", setting("evaluation", "niqe_model")),
            ]
        ),
    log:
        "results/{subject}/logs/evaluate_{driver}.log",
    benchmark:
        "results/{subject}/benchmarks/evaluate_{driver}.tsv"
    threads: 1
    resources:
        mem_mb=4000,
        runtime=60,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp evaluate --renders {input.renders:q} --novel {input.novel:q} --crops {input.crops:q} "
        "--split {input.split:q} --avatar-info {input.info:q} {params.protocol} -o {output.table:q} --log {log:q}"


rule table:
    input:
        [f"results/{s}/render/{d}/metrics.json" for s in SUBJECTS for d in subject_drivers(s)],
    output:
        markdown="results/paper_table.md",
        csv=report("results/paper_table.csv", caption="../report/paper_table.rst", category="Tables"),
    log:
        "results/logs/paper_table.log",
    benchmark:
        "results/benchmarks/paper_table.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp paper-table {input:q} -o {output.markdown:q} --csv {output.csv:q} --log {log:q}"
