# Per-frame expression coefficients: a sparse 3DMM fitted jointly to the landmarks
# (hfagp/expressions/; the model and the fit are the library hfagp/face3d/).


rule fit_expressions:
    input:
        cameras="results/{subject}/cameras.parquet",
        crops="results/{subject}/crops",
    output:
        table="results/{subject}/expressions.parquet",
        qc=report("results/{subject}/qc/expressions.png", caption="../report/qc_expressions.rst", category="Quality control", subcategory="{subject}"),
    params:
        fit=lambda w: (
            f"--identity-weight {setting('expressions', 'identity_weight')} "
            f"--expression-weight {setting('expressions', 'expression_weight')} "
            f"--iterations {setting('expressions', 'iterations')} "
            f"--smoothing-sigma {setting('expressions', 'smoothing_sigma')}"
        ),
        qc_frames=setting("expressions", "qc_frames"),
    log:
        "results/{subject}/logs/fit_expressions.log",
    benchmark:
        "results/{subject}/benchmarks/fit_expressions.tsv"
    threads: 1
    resources:
        mem_mb=memory_for_frames(1000, 0.4, "cameras"),
        runtime=30,  # minutes (SLURM --time)
    conda:
        "../../envs/hfagp.yaml"
    shell:
        "hfagp expressions --cameras {input.cameras:q} -o {output.table:q} {params.fit} "
        "--qc {output.qc:q} --crops-dir {input.crops:q} --qc-frames {params.qc_frames} --log {log:q}"
