#!/usr/bin/env bash
# Run several benchmark jobs side by side on one (GPU) machine under one shared deadline, then pack every results
# file they wrote into one archive: a lent GPU machine gives back at most 8 files from its output folder, and its
# minutes are few, so the jobs of one visit run in parallel lanes and come back as one tar.gz.
#
# Usage: benchmarks/gpu/lanes.sh LANE_FILE OUT_DIR SECONDS
#   LANE_FILE  one lane per line: a bash command line run from the repository root (blank lines and lines starting
#              with # are skipped). A lane may chain commands with ';' or '&&'. `$RECGEN` runs recgen (the installed
#              command, else `python3 -m recgen.cli.main`).
#   OUT_DIR    gets logs.tgz (one log per lane, nvidia-smi snapshots) and results.tgz (every file under
#              benchmarks/results and benchmarks/lanes that a lane created or changed, with its path; unpack it in
#              the repository root).
#   SECONDS    the shared deadline: a lane still running then gets SIGINT (the bench harness writes its results file
#              after every seed, atomically, so finished seeds are kept; rerun with --resume to complete the rest).
#
# On a machine without recgen installed and without the datasets' usual folder, export first, e.g.
#   PYTHONPATH=$PWD/src RECGEN_DATA_DIR=$PWD/.devdata RECGEN_CACHE_DIR=$PWD/.devcache RECGEN_PROGRESS=0
#   RECGEN_GIT_COMMIT=<the commit the tree was sent from> (a copied tree's git metadata may be older than its code).
# Lanes should write under benchmarks/results and pass --resume, so a visit continues the files an earlier visit
# left incomplete. The seeds of one run can go to parallel lanes: `bench --seeds 3 --only-seed K --out
# benchmarks/lanes/sK` each (benchmarks/lanes is not committed), joined afterwards here by
# `recgen merge-results benchmarks/results/FILE.json benchmarks/lanes/s*/FILE.json --out benchmarks/results`. Examples: benchmarks/gpu/lanes-lrm.txt (SASRec-CE / HSTU), benchmarks/gpu/lanes-tiger.txt.
set -uo pipefail
lanes=${1:?usage: lanes.sh LANE_FILE OUT_DIR SECONDS}
out=${2:?usage: lanes.sh LANE_FILE OUT_DIR SECONDS}
seconds=${3:?usage: lanes.sh LANE_FILE OUT_DIR SECONDS}
[[ -f $lanes ]] || { echo "lanes.sh: no lane file $lanes" >&2; exit 2; }
[[ $seconds =~ ^[0-9]+$ ]] || { echo "lanes.sh: SECONDS must be a whole number, got $seconds" >&2; exit 2; }
if command -v recgen >/dev/null; then RECGEN=recgen; else RECGEN="${PYTHON:-python3} -m recgen.cli.main"; fi
export RECGEN PYTHONUNBUFFERED=1
mkdir -p "$out/logs" benchmarks/results benchmarks/lanes
marker=$(mktemp)
started=$(date +%s)
snapshot() { command -v nvidia-smi >/dev/null && nvidia-smi >"$out/logs/nvidia-smi-$1.txt" 2>&1; uptime >>"$out/logs/nvidia-smi-$1.txt"; }
snapshot start
i=0
pids=()
while IFS= read -r line || [[ -n $line ]]; do
  [[ -z ${line//[[:space:]]/} || $line =~ ^[[:space:]]*# ]] && continue
  i=$((i + 1))
  {
    echo "lane $i: $line"
    timeout -s INT -k 30 "$seconds" bash -c "$line"
    echo "lane $i: exit $? at $(date -u +%T)"
  } >"$out/logs/lane$i.log" 2>&1 &
  pids+=($!)
done <"$lanes"
echo "lanes.sh: $i lanes started, deadline in $seconds s"
(exec >/dev/null 2>&1; sleep 60 && snapshot 60s) &
snap=$!
for p in "${pids[@]}"; do wait "$p"; done
pkill -P "$snap" 2>/dev/null; kill "$snap" 2>/dev/null
echo "lanes.sh: all lanes ended $(($(date +%s) - started)) s after the start"
tail -n 3 "$out"/logs/lane*.log
mapfile -t changed < <(find benchmarks/results benchmarks/lanes -type f -newer "$marker" | sort)
rm -f "$marker"
if ((${#changed[@]})); then
  tar czf "$out/results.tgz" "${changed[@]}"
  printf 'packed: %s\n' "${changed[@]}"
else
  echo "lanes.sh: no results file was written"
fi
tar czf "$out/logs.tgz" -C "$out" logs && rm -rf "$out/logs"
