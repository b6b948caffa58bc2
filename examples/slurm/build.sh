#!/bin/bash
# lima-data build on a Slurm cluster without Ray: one array task per input, then one build.
#
#   examples/slurm/build.sh examples/lima.toml /shared/out/lima
#
# The inputs, the repository's .venv and OUT must be on a filesystem every node sees. Each
# array task scans one input into OUT/candidates/ (its cached scan is the completion marker;
# a task that is re-run finds it and exits at once); the final build reads only the cached
# scans, so its output is the bytes a one-machine `lima-data build` gives.
set -euo pipefail
CONFIG=${1:?usage: build.sh CONFIG OUT}
OUT=${2:?usage: build.sh CONFIG OUT}
LIMA=${LIMA:-$(cd "$(dirname "$0")/../.." && pwd)/.venv/bin/lima-data}

# 1. hash the inputs once (cached by size and mtime) and count the scans
n=$("$LIMA" build --config "$CONFIG" --out "$OUT" --plan | wc -l)
if [ "$n" -eq 0 ]; then
    exec "$LIMA" build --config "$CONFIG" --out "$OUT"
fi
# 2. one array task per scan; 3. the build, once they have all succeeded
scans=$(sbatch --parsable --array=0-$((n - 1)) --job-name=lima-scan \
    ${SCAN_SBATCH_ARGS:---cpus-per-task=4 --mem=16G --time=12:00:00} \
    --wrap="\"$LIMA\" build --config \"$CONFIG\" --out \"$OUT\" --scan-task \$SLURM_ARRAY_TASK_ID")
sbatch --dependency=afterok:"$scans" --job-name=lima-build \
    ${BUILD_SBATCH_ARGS:---cpus-per-task=2 --mem=32G --time=2:00:00} \
    --wrap="\"$LIMA\" build --config \"$CONFIG\" --out \"$OUT\" --jobs 1"
echo "submitted $n scans (job $scans) and the build after them"
