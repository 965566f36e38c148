# Preprocessing (hfagp/preprocess/): video -> frames -> landmarks -> EG3D crops + camera labels
# -> QC sheet, and the train/test split of the tracked frames.


rule frames:
    wildcard_constraints:
        subject=subjects_of("video"),
    input:
        video=lambda w: subject_input(w.subject, "video", "video"),
    output:
        frames=directory("results/{subject}/frames"),
        table="results/{subject}/frames.parquet",
    params:
        start=lambda w: subject_config(w.subject)["start"],
        extra=lambda w: " ".join(
            [
                optional_flag("--fps", subject_config(w.subject)["fps"]),
                optional_flag("--max-frames", subject_config(w.subject)["max_frames"]),
            ]
        ),
    log:
        "results/{subject}/logs/frames.log",
    benchmark:
        "results/{subject}/benchmarks/frames.tsv"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp frames {input.video:q} -o {output.frames:q} --table {output.table:q} "
        "--start {params.start} {params.extra} --log {log:q}"


rule landmarks:
    input:
        frames="results/{subject}/frames",
        table="results/{subject}/frames.parquet",
    output:
        "results/{subject}/landmarks.parquet",
    params:
        detector=lambda w: preprocess_setting(w.subject, "detector"),
        upsample=lambda w: preprocess_setting(w.subject, "upsample"),
        max_gap=lambda w: preprocess_setting(w.subject, "max_gap"),
        sigma=lambda w: preprocess_setting(w.subject, "smoothing_sigma"),
        max_missing=lambda w: preprocess_setting(w.subject, "max_missing_fraction"),
        models=lambda w: " ".join(
            [
                optional_flag("--predictor", preprocess_setting(w.subject, "predictor")),
                optional_flag("--cnn-model", preprocess_setting(w.subject, "cnn_model")),
            ]
        ),
    log:
        "results/{subject}/logs/landmarks.log",
    benchmark:
        "results/{subject}/benchmarks/landmarks.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=120,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp landmarks {input.frames:q} --frames-table {input.table:q} -o {output:q} "
        "--detector {params.detector} --upsample {params.upsample} --max-gap {params.max_gap} "
        "--sigma {params.sigma} --max-missing-fraction {params.max_missing} {params.models} --log {log:q}"


rule align:
    input:
        frames="results/{subject}/frames",
        landmarks="results/{subject}/landmarks.parquet",
    output:
        crops=directory("results/{subject}/crops"),
        cameras="results/{subject}/cameras.parquet",
        dataset="results/{subject}/dataset.json",
    params:
        # 0 tells `hfagp align` to keep the un-normalised radius (config: null).
        radius=lambda w: preprocess_setting(w.subject, "radius") or 0,
        pose_landmarks=lambda w: preprocess_setting(w.subject, "pose_landmarks"),
        pose_solver=lambda w: preprocess_setting(w.subject, "pose_solver"),
        # The joint fit is shared with rule expressions: same weights, so both see the same poses.
        fit=lambda w: (
            f"--identity-weight {setting('expressions', 'identity_weight')} "
            f"--expression-weight {setting('expressions', 'expression_weight')} "
            f"--iterations {setting('expressions', 'iterations')}"
        ),
    log:
        "results/{subject}/logs/align.log",
    benchmark:
        "results/{subject}/benchmarks/align.tsv"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=60,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp align {input.frames:q} --landmarks {input.landmarks:q} --crops-dir {output.crops:q} "
        "--cameras {output.cameras:q} --dataset-json {output.dataset:q} --radius {params.radius} "
        "--pose-landmarks {params.pose_landmarks} --pose-solver {params.pose_solver} {params.fit} "
        "--threads {threads} --log {log:q}"


rule qc_landmarks:
    input:
        crops="results/{subject}/crops",
        cameras="results/{subject}/cameras.parquet",
    output:
        report("results/{subject}/qc/landmarks.png", caption="../report/qc_landmarks.rst", category="Quality control", subcategory="{subject}"),
    params:
        n_frames=lambda w: preprocess_setting(w.subject, "qc_frames"),
    log:
        "results/{subject}/logs/qc_landmarks.log",
    benchmark:
        "results/{subject}/benchmarks/qc_landmarks.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp qc {input.crops:q} --cameras {input.cameras:q} -o {output:q} --count {params.n_frames} --log {log:q}"


rule split:
    input:
        cameras="results/{subject}/cameras.parquet",
    output:
        "results/{subject}/split.json",
    params:
        test_fraction=lambda w: subject_config(w.subject)["test_fraction"],
    log:
        "results/{subject}/logs/split.log",
    benchmark:
        "results/{subject}/benchmarks/split.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=5,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp split --cameras {input.cameras:q} -o {output:q} --test-fraction {params.test_fraction} --log {log:q}"
