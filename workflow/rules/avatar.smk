# Driver training (hfagp/avatar/): one avatar per subject and driver (rgb, expression, audio) -> driver/<kind>/.
# checkpoint.pt appears only when training finished; resume.pt beside it lets a killed run continue.


rule train:
    wildcard_constraints:
        driver="rgb|expression|audio",
    input:
        unpack(
            lambda w: {
                "crops": f"results/{w.subject}/crops",
                "cameras": f"results/{w.subject}/cameras.parquet",
                "split": f"results/{w.subject}/split.json",
                "prior": f"results/{w.subject}/prior.npz",
                "generator": f"results/{w.subject}/inversion/generator.json",
                **driver_signal_input(w.subject, w.driver),
            }
        ),
    output:
        checkpoint="results/{subject}/driver/{driver}/checkpoint.pt",
        metrics="results/{subject}/driver/{driver}/metrics.json",
    params:
        signal=lambda w, input: driver_signal_flags(input),
        batch_size=lambda w: setting("training", "rgb_batch_size" if w.driver == "rgb" else "batch_size"),
        settings=lambda w: training_flags(w.driver),
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
        "--split {input.split:q} --prior {input.prior:q} --generator-json {input.generator:q} {params.signal} "
        "-o {output.checkpoint:q} --batch-size {params.batch_size} {params.settings} "
        "--device {params.device} --seed {params.seed} --threads {threads} --log {log:q}"
