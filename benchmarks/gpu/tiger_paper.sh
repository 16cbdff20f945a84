#!/usr/bin/env bash
# TIGER at the paper's size on one CUDA GPU: encoder and decoder of 4 layers each, d_model 128, 6 attention heads
# of width 64, MLP 1024, dropout 0.1 (Rajput et al. 2023, section 4.1), over the default RQ-VAE codes (3 x 256
# + the collision level). Optimisation: AdamW, batch 1024, peak lr 2e-3, weight decay 0.2, 500 warm-up steps,
# cosine decay to 0 by the end of the epochs or of the time budget, whichever comes first; the epoch is chosen on
# validation NDCG@10 every 10 epochs (the paper: Adafactor, batch 256, lr 0.01 with inverse-square-root decay,
# 200k steps).
#
# Usage: benchmarks/gpu/tiger_paper.sh DATASET [OUT_DIR] [TIME_BUDGET_S] [more `recgen bench` options]
#   TIME_BUDGET_S = 0 (default): the full 300 epochs with early stopping.
set -euo pipefail
dataset=${1:?usage: tiger_paper.sh DATASET [OUT_DIR] [TIME_BUDGET_S] [bench options]}
out=${2:-benchmarks/results}
budget=${3:-0}
shift $(($# < 3 ? $# : 3))
if command -v recgen >/dev/null; then run=(recgen); else run=("${PYTHON:-python3}" -m recgen.cli.main); fi
"${run[@]}" bench -d "$dataset" -m tiger --out "$out" \
  --set device=cuda \
  --set d_model=128 --set encoder_layers=4 --set decoder_layers=4 --set n_heads=6 --set head_dim=64 \
  --set ffn_dim=1024 --set dropout=0.1 \
  --set batch_size=1024 --set lr=2e-3 --set weight_decay=0.2 --set warmup_steps=500 --set schedule=cosine \
  --set epochs=300 --set eval_every=10 --set patience=5 --set time_budget="$budget" \
  "$@"
