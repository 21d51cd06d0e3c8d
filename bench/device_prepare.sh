#!/usr/bin/env bash
# Gather what bench/device_check.py needs on the lent device machine (torch 2.11, CUDA 13,
# Python 3.12, no network) into ignored folders of this checkout, to `carry`:
#   .whl/  the wheels its image lacks (igraph, skops and their needs), for CPython 3.12
#   .data/ Fashion-MNIST, from the Debian package dataset-fashion-mnist
# Then, in one device `run` (carry [".whl", ".data"], timeout_s <= 540):
#   python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target /tmp/site .whl/*.whl &&
#   PYTHONPATH=/tmp/site:src TOPOWIRE_FASHION_MNIST_DIR=.data/fashion-mnist python3 bench/device_check.py --out $OUT
set -euo pipefail
cd "$(dirname "$0")/.."
mkdir -p .git/info
for folder in /.whl/ /.data/; do grep -qx "$folder" .git/info/exclude 2>/dev/null || echo "$folder" >> .git/info/exclude; done
python3 -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d .whl \
    igraph==1.0.0 texttable==1.7.2 skops==0.16.0 prettytable==3.19.0 wcwidth==0.9.4
mkdir -p .data
cp -r /usr/share/datasets/fashion-mnist .data/
du -sh .whl .data
