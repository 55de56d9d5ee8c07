#!/usr/bin/env bash
# On a machine with an NVIDIA GPU: issue 69's rows (BiRefNet general next to the plain eager loop, IS-Net and u2netp
# against rembg, one 50 MP photo), the CUDA tests (tests/cuda/test_cuda_*.py), and on request issue 15's benchmarks.
# usage: tests/cuda/run.sh SHARED OUT [STEP...]
#   SHARED: ../shared, or a copy with (any of) weights/, conformance/, data/grabcut50 and data/davis/im/blackswan;
#   what is missing is made (photos: 48 generated ones; weights: stand-in ones, said on the row).
#   OUT: a folder for the logs. STEP (default: issue 69's rows and the CUDA tests, birefnet models bigphoto roto480 roto1080
#   tests, within BUDGET; cpu and graphs when named: issue 68 is resolved, and tests runs the graph tests too):
#     cpu       issue 68 on this machine's CPU cores: the plans with the shipped table hidden (doctor), and u2netp
#               `remove` on the folder against rembg, table hidden and shown
#     graphs    the CUDA-graph tests of tests/cuda/test_cuda_engines.py (the measured choice on this GPU)
#     birefnet  BiRefNet general (stand-in weights) at 1024^2 batch 1: the plain eager loop and mattekit's engine in one
#               process (images/s, peak GPU memory, the engine's choice); mattekit's loop with the model loaded (`bench
#               speed --refine`: images/s, ms per image of read, infer, write); `mattekit remove` (defaults) as whole
#               commands on the folder and on it four times over (the difference: the rate beyond the start-up), and
#               the folder with MATTEKIT_COMPILE=off
#     models    IS-Net and u2netp: `mattekit remove` on the folder, whole commands, against rembg on the CPU cores; IS-Net
#               again in fp32 (MATTEKIT_PRECISION), against its catalog precision (fp16 on CUDA: `half`)
#     bigphoto  one 50 MP photo, `mattekit remove` with the defaults, and its stages' times (`bench speed --refine`)
#     roto480   u2netp roto of DAVIS blackswan (854x480) played to 200 frames against rembg on the CPU cores (`bench speed
#               --whole --sequence --frames 200`: the temporal filter's passes on the GPU, its flows ahead on the cores)
#     roto1080  40 frames of 1920x1080, `mattekit roto` with the defaults (the temporal filter on the GPU), BiRefNet
#               general (stand-in weights) and u2netp: frames/s of the whole command
#     tests     all of tests/cuda/
#     loop folder photo roto upscale: issue 15's u2netp benchmarks (minutes each)
#   BUDGET: seconds for all steps after the set-up (default 450, so that the call fits 8 minutes): each step runs within its own limit and what is left, and is skipped
#   when under 20 s are left. Python: $PYTHON (default python3), with torch + CUDA, mattekit's dependencies, pytest;
#   rembg + onnxruntime for the reference (said when absent).
#   The lent H100/H200 image (2026-11) has torch, torchvision, onnx, onnxruntime, opencv, pillow, scipy, scikit-image
#   and pytest, but none of: opencolorio, OpenImageIO (both imported at start-up), pillow-heif, platformdirs, rembg,
#   pymatting, pooch, jsonschema (+ jsonschema-specifications, referencing, rpds-py). Carry them as cp312 manylinux
#   wheels (about 23 MB) beside a shared/ of at most ~40 MB (weights without the large .onnx files, grabcut50):
#   site=$(mktemp -d) && pip install --no-index --no-deps --target "$site" .whl/*.whl && export PYTHONPATH=$site.
set -uo pipefail
shared=$(cd "$1" && pwd); out=$(mkdir -p "$2" && cd "$2" && pwd); py=${PYTHON:-python3}; shift 2
steps=" ${*:-birefnet models bigphoto roto480 roto1080 tests} "
repo=$(cd "$(dirname "$0")/../.." && pwd)
export PYTHONPATH=$repo/core:$repo/bench${PYTHONPATH:+:$PYTHONPATH}
export MATTEKIT_TEST_DATA=$shared MATTEKIT_MIRROR=$shared/weights MATTEKIT_HOME=${MATTEKIT_HOME:-$(mktemp -d)} MATTEKIT_OFFLINE=1
step() {  # step GROUP NAME SECONDS COMMAND...: run when GROUP was asked for and time is left, keep the log, print its end
    [[ $steps == *" $1 "* ]] || return 0
    local name=$2 limit=$3 left=$((deadline - SECONDS)); shift 3
    if ((left < 20)); then echo "== $name: skipped, the budget is spent"; return 0; fi
    ((limit > left)) && limit=$left
    echo "== $name (at most $limit s)"
    local start=$SECONDS
    timeout "$limit" "$@" >"$out/$name.txt" 2>&1; echo "rc $? after $((SECONDS - start)) s" >>"$out/$name.txt"
    tail -n "${TAIL:-12}" "$out/$name.txt"
}
have_weights() {  # the catalog's weights of model $1 are in the mirror (or the cache)
    "$py" -c "from mattekit import catalog, weights; e = catalog.load().get('$1'); weights.model_file(e.name, e.files)" >/dev/null 2>&1
}
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader
"$py" -c "import torch, platform; print('torch', torch.__version__, 'cuda', torch.version.cuda, 'cudnn', torch.backends.cudnn.version(), torch.cuda.get_device_name(0), platform.python_version(), 'cpus', __import__('os').cpu_count())"
"$py" -c "import rembg, importlib.metadata as m; print('rembg', m.version('rembg'), 'onnxruntime', m.version('onnxruntime'))" 2>/dev/null \
    && rembg=() || { rembg=(--no-rembg); echo "rembg: absent (not importable by $py): the rows below have no rembg column"; }

photos=$shared/data/grabcut50/im
if [[ ! -d $photos ]] || (($(ls "$photos" | wc -l) < 40)); then  # 48 generated photos, 1600x1200
    photos=$out/photos
    "$py" -c "from pathlib import Path; from mattekit_bench.speed_synthetic import make_frames; make_frames(Path('$photos'), 48, 1600, 1200)"
    echo "photos: 48 generated 1600x1200 JPEGs ($shared/data/grabcut50/im has fewer than 40)"
fi
n=$(ls "$photos" | wc -l)
export py photos out n  # the steps below run in `bash -c`
deadline=$((SECONDS + ${BUDGET:-450}))  # from here: the set-up above takes seconds

cpu_rows() {  # issue 68: a machine nobody measured (the table hidden), then the same with the table shown
    MATTEKIT_ENGINE_TABLE=hidden MATTEKIT_HOME=$out/home-hidden "$py" -m mattekit doctor --device cpu --task segment
    for table in hidden shown; do
        MATTEKIT_ENGINE_TABLE=$table MATTEKIT_HOME=$out/home-$table "$py" -m mattekit bench speed --model u2netp --device cpu \
            --whole --repeat "${CPU_REPEAT:-1}" --data "$photos" $norembg
    done
}
norembg="${rembg[*]}"
export -f cpu_rows; export norembg
TAIL=60 step cpu cpu 110 bash -c cpu_rows

TAIL=40 step graphs graphs 150 "$py" -m pytest tests/cuda/test_cuda_engines.py -q -s -p no:cacheprovider -k "graph_replays or measured_choice"

birefnet_weights() {  # BiRefNet general's stand-in weights at $1 (made once a run)
    [[ -f $1 ]] || "$py" -c "from pathlib import Path; from mattekit import catalog; from mattekit_bench.stand_in import write_stand_in; write_stand_in(catalog.load().get('birefnet-general'), Path('$out/weights'))"
}
export -f birefnet_weights
birefnet() {  # the stand-in weights once; the plain loop; mattekit's loop with its stage times; whole commands on 50 and 200
    local w=$out/weights/birefnet-general-stand-in.pth many=$out/photos-x4 t0 t1 k runs=()
    birefnet_weights "$w" || return
    "$py" -m mattekit_bench.plain_loop "$photos" --model birefnet-general --weights "$w" --device cuda --precision fp16 --limit 41
    "$py" -m mattekit bench speed --model birefnet-general --weights "$w" --device cuda --refine --no-rembg --no-check --repeat 2 --data "$photos"
    mkdir -p "$many"; for k in 1 2 3 4; do for f in "$photos"/*; do ln -sf "$f" "$many/$k-$(basename "$f")"; done; done
    for run in "auto $photos" "auto $many" "off $photos"; do  # off on the folder alone: 200 photos at fp32 outran the step
        set -- $run; rm -rf "$out/birefnet-out"; t0=$(date +%s.%N)
        MATTEKIT_COMPILE=$1 "$py" -m mattekit remove -q --model birefnet-general --weights "$w" --device cuda "$2" -o "$out/birefnet-out" || return
        t1=$(date +%s.%N); k=$(ls "$2" | wc -l)
        "$py" -c "s = $t1 - $t0; print(f'mattekit remove --model birefnet-general (stand-in weights, defaults, MATTEKIT_COMPILE=$1) on $k photos: {s:.1f} s whole command, {$k / s:.2f} images/s end to end')"
        runs+=("$k $t0 $t1")
    done
    "$py" -c "a, b = [[float(v) for v in r.split()] for r in '${runs[0]};${runs[1]}'.split(';')]; print(f'  beyond the start-up (the two auto runs): {(b[0] - a[0]) / ((b[2] - b[1]) - (a[2] - a[1])):.2f} images/s, start-up about {(a[2] - a[1]) - a[0] * ((b[2] - b[1]) - (a[2] - a[1])) / (b[0] - a[0]):.1f} s')"
}
export -f birefnet
TAIL=40 step birefnet birefnet 230 bash -c birefnet

for model in isnet-general-use u2netp; do
    have_weights "$model" && weights=() || weights=(--stand-in)
    TAIL=8 step models "whole-$model" 80 "$py" -m mattekit bench speed --model "$model" "${weights[@]}" --device cuda --whole \
        --repeat 1 --data "$photos" "${rembg[@]}"
done
have_weights isnet-general-use && weights=() || weights=(--stand-in)
TAIL=6 step models whole-isnet-fp32 60 env MATTEKIT_PRECISION=fp32 "$py" -m mattekit bench speed --model isnet-general-use \
    "${weights[@]}" --device cuda --whole --repeat 1 --data "$photos" --no-rembg  # the catalog's fp16 (half) against fp32
TAIL=6 step bigphoto whole-50mp-isnet 60 "$py" -m mattekit bench speed --model isnet-general-use "${weights[@]}" --device cuda \
    --whole --photo 8660x5774 --repeat 1 --data "$photos" --no-rembg
big_stages() {  # where the 50 MP photo's time goes: read (decode, network input), infer, write (finish, encode)
    mkdir -p "$out/bigphoto" && "$py" -c "import cv2, glob; im = cv2.imread(sorted(glob.glob('$photos/*'))[0]); cv2.imwrite('$out/bigphoto/photo.jpg', cv2.resize(im, (8660, 5774), interpolation=cv2.INTER_CUBIC), [cv2.IMWRITE_JPEG_QUALITY, 92])" \
        && "$py" -m mattekit bench speed --model isnet-general-use "$@" --device cuda --refine --no-rembg --no-check --repeat 1 --data "$out/bigphoto"
}
export -f big_stages
TAIL=4 step bigphoto stages-50mp-isnet 60 bash -c 'big_stages "$@"' _ "${weights[@]}"
if [[ -d $shared/data/davis/im/blackswan ]]; then
    TAIL=8 step roto480 roto-480p-200 120 "$py" -m mattekit bench speed --model u2netp --device cuda --whole \
        --sequence "$shared/data/davis/im/blackswan" --frames 200 --repeat 1 "${rembg[@]}"
else echo "== roto-480p-200: skipped, $shared/data/davis/im/blackswan is missing"; fi
roto1080() {  # 40 frames of 1920x1080 (blackswan enlarged, or generated): roto with the defaults (the temporal filter
    # on the GPU at this size), BiRefNet general (stand-in weights) and u2netp, frames/s of the whole command
    local w=$out/weights/birefnet-general-stand-in.pth plate=$out/plate1080 t0 t1
    birefnet_weights "$w" || return
    "$py" -c "
import glob, cv2
from pathlib import Path
from mattekit_bench.speed_synthetic import make_frames
src = sorted(glob.glob('$shared/data/davis/im/blackswan/*.jpg'))[:40]
Path('$plate').mkdir(exist_ok=True)
if len(src) < 40: make_frames(Path('$plate'), 40, 1920, 1080)
for i, f in enumerate(src): cv2.imwrite(f'$plate/{i:05d}.jpg', cv2.resize(cv2.imread(f), (1920, 1080), interpolation=cv2.INTER_CUBIC))" || return
    for model in birefnet-general u2netp; do
        local extra=(); [[ $model == birefnet-general ]] && extra=(--weights "$w")
        rm -rf "$out/roto-out"; t0=$(date +%s.%N)
        "$py" -m mattekit roto -q "$plate" -o "$out/roto-out/m.#####.png" --model $model "${extra[@]}" --device cuda || return
        t1=$(date +%s.%N)
        "$py" -c "s = $t1 - $t0; print(f'mattekit roto --model $model, 40 frames of 1920x1080, defaults: {s:.1f} s whole command, {40 / s:.2f} frames/s')"
    done
}
export -f roto1080; export shared
TAIL=6 step roto1080 roto-1080p 90 bash -c roto1080
TAIL=30 step tests tests 240 "$py" -m pytest tests/cuda -n 0 -q -s -p no:cacheprovider -rfE  # one process, as one module ran before

mk=("$py" -m mattekit bench speed --model u2netp --device cuda)
TAIL=30 step loop loop-fp16 150 "${mk[@]}"
TAIL=6 step loop loop-fp32 150 "${mk[@]}" --precision fp32 --no-rembg
step folder whole-folder 300 "${mk[@]}" --whole --repeat "${REPEAT:-2}"
step photo whole-50mp 300 "${mk[@]}" --whole --photo 8660x5774 --repeat "${REPEAT:-2}"
step roto whole-roto 300 "${mk[@]}" --whole --sequence "$shared/data/davis/im/blackswan" --repeat "${REPEAT:-2}"
step upscale upscale-12mp 300 "$py" -m mattekit bench upscale --model realesr-animevideov3 \
    --weights "$shared/weights/realesr-animevideov3.pth" --device cuda --size 4000x3000
echo "== done in $SECONDS s; logs in $out"
