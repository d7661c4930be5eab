#!/usr/bin/env bash
# Submit the seven-backbone sweep as one SLURM array (one GPU job per backbone), like the seed's launch_sweep.sh.
#   slurm/launch_sweep.sh                 # gpu-full preset, all seven backbones
#   PRESET=cpu-tiny slurm/launch_sweep.sh --partition=cpu --gres=none
# Extra arguments go to sbatch. When all tasks are done, `omr-blog sweep --preset <preset>` on the login node
# finds the finished runs, skips them, and writes results/<preset>/summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
export PRESET=${PRESET:-gpu-full}
mkdir -p runs/slurm
sbatch --array=0-6 --export=ALL "$@" slurm/train_backbone.sbatch
