#!/usr/bin/env bash
# Lays the checkout out for one call of the device machine (a lent GPU, 64 MiB of tree a call), then back.
#
#   scripts/gpu_lease.sh train     # models/shipwreck.pth alone (the quick recipes start from it), docs' pictures
#                                  # aside; .lease/ holds the VGG16 file (as $STST_HOME) and The Starry Night
#   scripts/gpu_lease.sh stylize   # models/starry_night* alone; .lease/ holds PyAV's wheel for the machine's Python,
#                                  # the version installed here
#   scripts/gpu_lease.sh back      # everything back in place
#
# Nothing else may use the checkout meanwhile: its models are parked outside it (a training run started from it
# fails without models/shipwreck.pth). Each prints the call to make: carry [".lease"] and the command. The two
# calls of a lease, one after the other, fit its 15 minutes with the machine's start (docs/performance.md,
# "Measuring on a lease").
set -euo pipefail
cd "$(dirname "$0")/.."
parked=../.stst-lease-parked
exclude=$(git rev-parse --git-path info/exclude)
mkdir -p "$(dirname "$exclude")"
grep -qsx '/.lease/' "$exclude" || echo '/.lease/' >> "$exclude"

back() {
    if [ -d "$parked" ]; then
        cp -a "$parked/." . && rm -rf "$parked"
    fi
    rm -rf .lease
}

park() {  # park FILE...: out of the tree until `back`
    for f in "$@"; do
        mkdir -p "$parked/$(dirname "$f")"
        mv "$f" "$parked/$f"
    done
}

back
case "${1:-}" in
train)
    park $(git ls-files 'models/*.pth' | grep -v '^models/shipwreck\.pth$') $(git ls-files 'docs/*.jpg')
    mkdir -p .lease
    vgg="${STST_HOME:-$HOME/.cache/stst}/vgg16-features-imagenet1k-v1.pth"
    [ -f "$vgg" ] || python3 -c 'from stst.training.weights import resolve_vgg_weights as r; r()'  # caches it
    mkdir -p .lease/home
    cp "$vgg" .lease/home/
    cp ../shared/data/styles/starry_night.jpg .lease/
    echo 'carry: [".lease"]'
    echo 'command: STST_HOME=$PWD/.lease/home PYTHONUNBUFFERED=1 python3 scripts/bench_train.py --gpu' \
         '--style .lease/starry_night.jpg --out $OUT --budget 240 2>&1 | tee $OUT/bench_train.txt'
    ;;
stylize)
    park $(git ls-files 'models/*.pth' | grep -v '^models/starry_night')
    mkdir -p .lease
    python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
        --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 -d .lease/whl \
        "av==$(python3 -c 'import av; print(av.__version__)')"  # the PyAV that CI tests here
    echo 'carry: [".lease"]'
    echo 'command: python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .lease/whl/*.whl' \
         '&& PYTHONUNBUFFERED=1 PYTHONPATH=/tmp/site:. python3 scripts/bench_gpu.py --budget 360 2>&1' \
         '| tee $OUT/bench_gpu.txt'
    ;;
back)
    exit 0
    ;;
*)
    echo "usage: $0 train|stylize|back" >&2
    exit 2
    ;;
esac
tree=$(git ls-files -co --exclude-standard -z | xargs -0 du -cb 2>/dev/null | tail -1 | cut -f1 || true)
travels=$((tree + $(du -sb .lease | cut -f1)))
echo "travels: $travels bytes with .lease (64 MiB = 67108864 at most)"
if [ "$travels" -gt 67108864 ]; then
    echo "too much for one call: park more (scripts/gpu_lease.sh), then run it again; 'back' restores the tree" >&2
    exit 1
fi
