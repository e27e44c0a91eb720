#!/usr/bin/env bash
# The --device cuda checks of issue 9, run as one command on a machine with a GPU:
#   bash bench/cuda_check.sh OUT_DIR
# 1. tests/test_device.py (CPU and CUDA draws agree in float64; bad devices refused);
# 2. `compare --device cuda --quick` on every small built-in model (catches tensors left on
#    the GPU where numpy needs them);
# 3. the MNIST part of the default job, `compare vae_mnist --device cuda` (100 images);
# 4. bench/nuts_speed.py on eight schools with our rows on the GPU (NumPyro on the CPU).
# Each step is time-limited; the log of each goes to OUT_DIR.
set -u
out=${1:?usage: bench/cuda_check.sh OUT_DIR}
mkdir -p "$out"
export PYTHONUNBUFFERED=1 OMP_NUM_THREADS=1 MPLBACKEND=Agg
python3 -c "import torch; print(torch.__version__, torch.cuda.get_device_name())"
timeout 90 python3 -m pytest -q -p no:cacheprovider tests/test_device.py 2>&1 | tail -5
for m in normal_normal linear_regression enum_mixture logistic_regression eight_schools; do
  /usr/bin/time -f "$m quick compare on cuda: %e s" timeout 120 python3 -m ppl_genmodels.cli \
    compare "$m" --quick --device cuda --out "/tmp/cuda_quick_$m" --no-progress \
    > "$out/quick_$m.log" 2>&1 || { echo "FAILED: $m"; tail -5 "$out/quick_$m.log"; }
  tail -1 "$out/quick_$m.log"
done
/usr/bin/time -f "vae_mnist compare on cuda: %e s" timeout ${MNIST_TIMEOUT:-240} python3 -m ppl_genmodels.cli \
  compare vae_mnist --device cuda --out /tmp/cuda_mnist --no-progress > "$out/vae_mnist.log" 2>&1 \
  || echo "FAILED: vae_mnist"
head -30 "$out/vae_mnist.log"; tail -3 "$out/vae_mnist.log"
if [ -n "${NUTS_SPEED:-}" ]; then
  timeout 200 python3 bench/nuts_speed.py --posteriors eight_schools --skip-pyro --skip-inductor \
    --ours "$NUTS_SPEED" --device cuda --markdown "$out/nuts_speed_cuda.md" 2>&1 | tail -8
fi
