# Preprocessing (hfagp/preprocess/): video -> frames -> landmarks -> EG3D crops + camera labels
# -> QC sheet, and the train/test split of the tracked frames.
# The per-frame work (face detection, crops) of a video longer than `preprocess.chunk_frames` runs
# in chunks, one detect_faces / align_crops job each (spread over cluster nodes by the SLURM
# profile), gathered by landmarks / align; a shorter video has one chunk, which landmarks and align
# do themselves. `frames` is a checkpoint because the number of chunks depends on the frame count.

wildcard_constraints:
    chunk=r"\d+",


checkpoint frames:
    wildcard_constraints:
        subject=subjects_of("video"),
    input:
        video=lambda w: subject_input(w.subject, "video", "video"),
    output:
        frames=directory("results/{subject}/frames"),
        table="results/{subject}/frames.parquet",
    params:
        start=lambda w: subject_config(w.subject)["start"],
        storage=lambda w: preprocess_setting(w.subject, "frame_storage"),
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
        "--start {params.start} --storage {params.storage} {params.extra} --log {log:q}"


rule detect_faces:
    input:
        frames="results/{subject}/frames",
        table="results/{subject}/frames.parquet",
    output:
        temp("results/{subject}/chunks/faces_{chunk}.parquet"),
    params:
        detector=lambda w: detector_flags(w.subject),
        chunk_frames=lambda w: chunk_size(w.subject),
    log:
        "results/{subject}/logs/detect_faces_{chunk}.log",
    benchmark:
        "results/{subject}/benchmarks/detect_faces_{chunk}.tsv"
    threads: 1
    resources:
        mem_mb=3000,
        runtime=120,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp detect-faces {input.frames:q} --frames-table {input.table:q} {params.detector} "
        "--chunk {wildcards.chunk} --chunk-frames {params.chunk_frames} -o {output:q} --log {log:q}"


rule landmarks:
    input:
        frames="results/{subject}/frames",
        table="results/{subject}/frames.parquet",
        detections=lambda w: chunk_files(w.subject, "faces_{chunk}.parquet"),
    output:
        "results/{subject}/landmarks.parquet",
    params:
        detector=lambda w: detector_flags(w.subject),
        detections=lambda w, input: gather_flag("--detections", input.detections),
        max_gap=lambda w: preprocess_setting(w.subject, "max_gap"),
        sigma=lambda w: preprocess_setting(w.subject, "smoothing_sigma"),
        spans=lambda w: preprocess_setting(w.subject, "face_spans"),
        min_span=lambda w: preprocess_setting(w.subject, "min_span_frames"),
        max_missing=lambda w: preprocess_setting(w.subject, "max_missing_fraction"),
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
        "hfagp landmarks {input.frames:q} --frames-table {input.table:q} -o {output:q} {params.detector} "
        "{params.detections} --max-gap {params.max_gap} --sigma {params.sigma} "
        "--face-spans {params.spans} --min-span-frames {params.min_span} "
        "--max-missing-fraction {params.max_missing} --log {log:q}"


rule align_crops:
    input:
        frames="results/{subject}/frames",
        table="results/{subject}/frames.parquet",
        landmarks="results/{subject}/landmarks.parquet",
    output:
        temp(directory("results/{subject}/chunks/crops_{chunk}")),
    params:
        chunk_frames=lambda w: chunk_size(w.subject),
    log:
        "results/{subject}/logs/align_crops_{chunk}.log",
    benchmark:
        "results/{subject}/benchmarks/align_crops_{chunk}.tsv"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=120,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp align-crops {input.frames:q} --frames-table {input.table:q} --landmarks {input.landmarks:q} "
        "-o {output:q} --chunk {wildcards.chunk} --chunk-frames {params.chunk_frames} --threads {threads} --log {log:q}"


rule align:
    input:
        frames="results/{subject}/frames",
        landmarks="results/{subject}/landmarks.parquet",
        table="results/{subject}/frames.parquet",
        chunks=lambda w: chunk_files(w.subject, "crops_{chunk}"),
    output:
        crops=directory("results/{subject}/crops"),
        cameras="results/{subject}/cameras.parquet",
        dataset="results/{subject}/dataset.json",
    params:
        # 0 tells `hfagp align` to keep the un-normalised radius (config: null).
        radius=lambda w: preprocess_setting(w.subject, "radius") or 0,
        chunks=lambda w, input: gather_flag("--chunks", input.chunks),
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
        mem_mb=memory_for_frames(1500, 0.4, "landmarks"),
        runtime=60,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp align {input.frames:q} --frames-table {input.table:q} --landmarks {input.landmarks:q} {params.chunks} "
        "--crops-dir {output.crops:q} "
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
