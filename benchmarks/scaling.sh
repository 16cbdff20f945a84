#!/usr/bin/env bash
# Model-size study: SASRec-CE and HSTU at four sizes (by default embedding_dim x n_layers = 16x1, 32x1, 64x2, 128x2: 73x
# to 81x in non-embedding parameters on ML-100K), one recipe for every size: full cross-entropy, max_seq_len 50, up to
# 60 epochs, validation NDCG@10 every 3 epochs, patience 3. Each size writes its own results file under OUT_DIR (the
# bench harness records parameters, training FLOPs and MFU); then the plot of test NDCG@10 against non-embedding
# parameters and against training FLOPs.
#
# Usage: [SIZES="DxL ..."] benchmarks/scaling.sh DATASET [OUT_DIR] [more `recgen bench` options]
#   e.g. benchmarks/scaling.sh ml-100k
#        SIZES="32x1 64x2 128x2 128x4" benchmarks/scaling.sh beauty   # the Beauty study (see the README)
# SIZES (default "16x1 32x1 64x2 128x2") lists embedding_dim x n_layers per size.
# An interrupted study resumes: a size whose results file is complete is kept (--resume).
set -euo pipefail
dataset=${1:?usage: scaling.sh DATASET [OUT_DIR] [bench options]}
out=${2:-benchmarks/results/scaling}
shift $(($# < 2 ? $# : 2))
if command -v recgen >/dev/null; then run=(recgen); else run=("${PYTHON:-python3}" -m recgen.cli.main); fi
for size in ${SIZES:-16x1 32x1 64x2 128x2}; do
  d=${size%x*} layers=${size#*x}
  [[ $d =~ ^[0-9]+$ && $layers =~ ^[0-9]+$ ]] || { echo "scaling.sh: SIZES entries are DxL, e.g. 64x2; got $size" >&2; exit 2; }
  for model in sasrec hstu; do
    "${run[@]}" bench -d "$dataset" -m "$model" --out "$out" --resume \
      --set embedding_dim="$d" --set n_layers="$layers" --set max_seq_len=50 \
      --set epochs=60 --set eval_every=3 --set patience=3 "$@"
  done
done
"${run[@]}" plot-scaling --dataset "$dataset" --results "$out" --out "benchmarks/scaling-$dataset.png"
