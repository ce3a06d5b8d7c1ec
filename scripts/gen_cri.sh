#!/usr/bin/env bash
# Regenerate the CRI (runtime.v1) Python modules from our api.proto.
# protoc emits `import api_pb2` in the gRPC stubs; we rewrite it to a
# package-relative import so the modules work inside pyk8s.kubelet.cri.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=src/pyk8s/kubelet/cri
python3 -m grpc_tools.protoc -I "$dir" \
    --python_out="$dir" --pyi_out="$dir" --grpc_python_out="$dir" \
    "$dir/api.proto"
sed -i 's/^import api_pb2 as api__pb2$/from . import api_pb2 as api__pb2/' "$dir/api_pb2_grpc.py"
for f in "$dir/api_pb2.py" "$dir/api_pb2.pyi" "$dir/api_pb2_grpc.py"; do
    if ! head -1 "$f" | grep -q '^# mypy: ignore-errors'; then
        sed -i '1i # mypy: ignore-errors\n# ruff: noqa' "$f"
    fi
done
