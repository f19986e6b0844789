# OncoLens developer commands. `make run` and `make test` set up .venv on first use.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-fast lint bundle demo-data models seg-protocol clean

$(STAMP): pyproject.toml packaging/constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip -q
	# torch first and pinned: an unpinned resolve pulls several GB of CUDA wheels.
	$(BIN)/pip install -c packaging/constraints.txt torch==2.13.0
	$(BIN)/pip install -c packaging/constraints.txt -e ".[dev]"
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/oncolens gui

test: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q

test-fast: $(STAMP)
	QT_QPA_PLATFORM=offscreen $(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check engine app tests packaging

bundle: $(STAMP)
	bash packaging/build.sh

demo-data: $(STAMP)
	$(BIN)/oncolens make-demo-data

# Retrain the shipped demo weights on phantoms (CPU: several hours on 2 cores); each card records its command.
# WL nets get 30 epochs: with 10 the from-scratch WL tumor net stayed near chance (AUC 0.61 vs 0.83).
# MFI-FFP: the 7 modality variants are installed; the ablation table goes into the tri-modal card.
# Segmentation: UNet++ and UNet, encoder pretrained on phantom dataset A and frozen, decoder fine-tuned on B,
# scored on C next to the same net trained end to end on B.
# CHMFL: the 6-fold phantom protocol for every ablation row (rows cached in the card's ablation/rows, so a stopped
# run resumes), then the shipped net on all patients.
models: $(STAMP)
	$(BIN)/oncolens train fl_cnn --modality FL --task all --data phantom
	$(BIN)/oncolens train fl_cnn --modality WL --task all --data phantom --epochs 30
	$(BIN)/oncolens train mfi_ffp --variants all --ablation modalities --runs 1 --epochs 24 --phantom-patients 50
	$(BIN)/oncolens train fluoro_seg --nets unetplusplus,unet --epochs 25
	$(BIN)/oncolens train chmfl --ablation all
	$(BIN)/oncolens train dgfnet

# The segmentation paper's whole protocol on the phantoms (4 nets x 2 methods x 5 folds x 2 targets, DRLSE):
# about 6 minutes on one H100 with 14 workers, many hours on 2 CPU cores. models/fluoro_seg_tables came from it.
seg-protocol: $(STAMP)
	$(BIN)/oncolens evaluate fluoro_seg --nets all --folds 5 --targets A,B --epochs 40 --device cuda --jobs 14 \
		--out models/fluoro_seg_tables

clean:
	rm -rf build dist .pytest_cache
