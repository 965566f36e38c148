# Audio: the subject's soundtrack -> results/{subject}/audio.wav (16 kHz mono int16)
# -> audio_features.npy (N,16,29) aligned with frames.parquet (+ audio_features.npy.json).
# models.deepspeech: path of deepspeech-0_1_0-b90017e8.pb, or null for the offline MFCC
# fallback (labelled "mfcc-fallback" in the log and the .json; it is not DeepSpeech).
# subjects.<name>.audio: a separate audio/video file, or null to use the subject's video.

import hfagp.audio.workflow as audio_workflow


rule audio_extract:
    input:
        media=lambda w: audio_workflow.audio_source(config, w.subject),
    output:
        wav="results/{subject}/audio.wav",
    log:
        "results/{subject}/logs/audio_extract.log",
    benchmark:
        "results/{subject}/benchmarks/audio_extract.tsv"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp audio-extract {input.media:q} -o {output.wav:q} --log {log:q}"


rule audio_features:
    input:
        audio="results/{subject}/audio.wav",
        table="results/{subject}/frames.parquet",
        model=lambda w: audio_workflow.deepspeech_model(config),
    output:
        features="results/{subject}/audio_features.npy",
        sidecar="results/{subject}/audio_features.npy.json",
    params:
        model=lambda w: audio_workflow.deepspeech_flag(config),
    log:
        "results/{subject}/logs/audio_features.log",
    benchmark:
        "results/{subject}/benchmarks/audio_features.tsv"
    threads: 2
    resources:
        mem_mb=3000,
        runtime=60,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp audio-features {input.audio:q} --frames-table {input.table:q} {params.model} "
        "--threads {threads} -o {output.features:q} --log {log:q}"
