#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: the CUDA tests (tests/test_cuda.py), then the GPU figures of the README's
# performance section (issue 15's benchmarks with --device cuda, rembg on the same machine's CPU).
# usage: tests/cuda/run.sh SHARED OUT [STEP...]
#   SHARED: ../shared, or a copy with weights/, conformance/, data/grabcut50 and data/davis/im/blackswan;
#   OUT: a folder for the logs; STEP: tests, loop, folder, photo, roto, upscale (default: all). Python: $PYTHON (default python3), which needs torch
# with CUDA, mattekit's dependencies, pytest, and rembg + onnxruntime for the reference.
set -uo pipefail
shared=$(cd "$1" && pwd); out=$2; py=${PYTHON:-python3}; shift 2
steps=" ${*:-tests loop folder photo roto upscale} "
mkdir -p "$out"
export MATTEKIT_TEST_DATA=$shared MATTEKIT_MIRROR=$shared/weights MATTEKIT_HOME=${MATTEKIT_HOME:-$(mktemp -d)}
step() {  # step GROUP NAME SECONDS COMMAND...: run when GROUP was asked for, keep the log, print its last lines
    [[ $steps == *" $1 "* ]] || return 0
    local name=$2 limit=$3; shift 3
    echo "== $name"
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1; echo "rc $?" >>"$out/$name.txt"
    tail -n "${TAIL:-12}" "$out/$name.txt"
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
"$py" -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name(0), platform.python_version(), 'cpus', __import__('os').cpu_count())"
step tests tests 240 "$py" -m pytest tests/test_cuda.py -q -s -p no:cacheprovider
mk=("$py" -m mattekit bench speed --model u2netp --device cuda)
TAIL=30 step loop loop-fp16 150 "${mk[@]}"
TAIL=6 step loop loop-fp32 150 "${mk[@]}" --precision fp32 --no-rembg
step folder whole-folder 300 "${mk[@]}" --whole --repeat "${REPEAT:-2}"
step photo whole-50mp 300 "${mk[@]}" --whole --photo 8660x5774 --repeat "${REPEAT:-2}"
step roto whole-roto 300 "${mk[@]}" --whole --sequence "$shared/data/davis/im/blackswan" --repeat "${REPEAT:-2}"
step upscale upscale-12mp 300 "$py" -m mattekit bench upscale --model realesr-animevideov3 \
    --weights "$shared/weights/realesr-animevideov3.pth" --device cuda --size 4000x3000
