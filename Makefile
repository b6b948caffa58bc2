# One Makefile drives everything; `make help` lists the targets.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BOOT := $(VENV)/.boot
NATIVE := lima/_core.abi3.so
RUST_SRC := $(shell find rust_core/src -name '*.rs') rust_core/Cargo.toml Cargo.toml Cargo.lock pyproject.toml
DEMO_OUT ?= out/demo

# rustup puts cargo in ~/.cargo/bin, which a login shell's profile adds to PATH; a bare
# environment (cron, `env -i`, a CI runner) may not have it, so look there too.
ifeq ($(shell command -v cargo 2>/dev/null),)
export PATH := $(HOME)/.cargo/bin:$(PATH)
endif

.DEFAULT_GOAL := help
TRAIN_OUT ?= runs/tiny-cpu
.PHONY: help install demo train-demo test test-rust test-python lint fmt fuzz bench bench-gpu wheel clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(BOOT):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip "maturin>=1.7,<2"
	touch $@

# Builds the native module in release mode and installs lima (editable) with
# its dependencies, the dev tools, the training extra (torch, transformers,
# DeepSpeed) and Ray (for `build --executor ray` and its test) into .venv.
# `lima-data` itself never imports torch or ray.
$(NATIVE): $(BOOT) $(RUST_SRC)
	VIRTUAL_ENV=$(abspath $(VENV)) PATH=$(abspath $(VENV))/bin:$$PATH \
		$(VENV)/bin/maturin develop --release --extras dev,train,ray -q
	touch $@

install: $(NATIVE) ## Create .venv, build the Rust core, install lima and dev tools

demo: $(NATIVE) ## Build the dataset from the bundled sample dumps into out/demo
	$(VENV)/bin/lima-data build --out $(DEMO_OUT)

train-demo: demo ## Fine-tune a random tiny LLaMA on the demo set: two CPU ranks, ZeRO-3, the paper's recipe
	DS_ACCELERATOR=cpu OMP_NUM_THREADS=1 $(PY) -m torch.distributed.run --standalone --nproc_per_node 2 \
		-m lima.train --config training/recipes/tiny-cpu.yaml train_file=$(DEMO_OUT)/train.jsonl \
		dev_file=$(DEMO_OUT)/dev.jsonl output_dir=$(TRAIN_OUT)

test-rust: ## Rust unit tests (no Python needed)
	cargo test --workspace --quiet

test-python: $(NATIVE) ## Python tests (fast set; slow/gpu/benchmark are opt-in markers)
	$(PY) -m pytest -q

test: test-rust test-python ## All tests

lint: $(NATIVE) ## rustfmt, clippy -D warnings, ruff, mypy, stub check of lima._core
	cargo fmt --all --check
	cargo clippy --workspace --all-targets --features python -- -D warnings
	$(VENV)/bin/ruff check lima tests benches
	$(VENV)/bin/ruff format --check lima tests benches
	$(VENV)/bin/mypy
	$(PY) -m mypy.stubtest lima._core

FUZZ_SECONDS ?= 60
fuzz: ## Mutation-fuzz the row, line, HTML and BZip2 readers for FUZZ_SECONDS (corpus: the bundled dumps)
	cargo run --release --quiet -p lima-core --example fuzz -- --seconds $(FUZZ_SECONDS) --out fuzz-crashes

fmt: $(NATIVE) ## Format Rust and Python sources
	cargo fmt --all
	$(VENV)/bin/ruff format lima tests benches
	$(VENV)/bin/ruff check --fix lima tests benches

bench: $(NATIVE) ## Throughput benchmarks against peers, 1..N cores (builds 1 GB inputs under bench-data/)
	$(PY) benches/bench_stackexchange.py
	$(PY) benches/bench_pushshift.py
	$(PY) benches/bench_jobs.py
	$(PY) benches/bench_dedup.py --n 13050
	$(PY) benches/eval_wikihow_classifier.py

bench-gpu: $(NATIVE) ## Training tokens/s and MFU of a random 1B LLaMA, ZeRO-3 bf16, seq 2048 (needs a GPU and `make demo`)
	$(PY) benches/bench_train.py --size 1b

wheel: $(BOOT) ## Build a release wheel into dist/
	$(VENV)/bin/maturin build --release -o dist

clean: ## Remove build outputs and the venv
	rm -rf target dist $(VENV) $(NATIVE) out runs bench-data
