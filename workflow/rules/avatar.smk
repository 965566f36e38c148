# Driver training (hfagp/avatar/): one avatar per subject and driver (rgb, expression, audio) -> driver/<kind>/.
# checkpoint.pt appears only when training finished; resume.pt beside it lets a killed run continue.
# person/ is the avatar's person fit; with training.shared_fit_driver the subject's other drivers start from it.


rule train:
    wildcard_constraints:
        driver="rgb|expression|audio",
    input:
        unpack(
            lambda w: {
                "crops": f"results/{w.subject}/crops",
                "cameras": f"results/{w.subject}/cameras.parquet",
                "split": f"results/{w.subject}/split.json",
                **training_start_input(w.subject, w.driver),
                **driver_signal_input(w.subject, w.driver),
            }
        ),
    output:
        checkpoint="results/{subject}/driver/{driver}/checkpoint.pt",
        metrics="results/{subject}/driver/{driver}/metrics.json",
        person=directory("results/{subject}/driver/{driver}/person"),
    params:
        signal=lambda w, input: driver_signal_flags(input),
        start=lambda w, input: training_start_flags(input),
        batch_size=lambda w: setting("training", "rgb_batch_size" if w.driver == "rgb" else "batch_size"),
        settings=lambda w: training_flags(w.subject, w.driver),
        device=lambda w: config.get("device", "cpu"),
        seed=lambda w: config.get("seed", 0),
    log:
        "results/{subject}/logs/train_{driver}.log",
    benchmark:
        "results/{subject}/benchmarks/train_{driver}.tsv"
    threads: 2
    resources:
        mem_mb=16000,
        runtime=1440,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp train --driver {wildcards.driver} --crops {input.crops:q} --cameras {input.cameras:q} "
        "--split {input.split:q} {params.start} {params.signal} --person-out {output.person:q} "
        "-o {output.checkpoint:q} --batch-size {params.batch_size} {params.settings} "
        "--device {params.device} --seed {params.seed} --threads {threads} --log {log:q}"
