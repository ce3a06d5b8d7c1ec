#!/usr/bin/env bash
# Regenerate the CSI (csi.v1) and plugin-registration Python modules from our protos
# (needs grpcio-tools: pip install grpcio-tools). protoc emits `import csi_pb2` in the gRPC
# stubs; we rewrite it to a package-relative import so they work inside pyk8s.csi.
set -euo pipefail
cd "$(dirname "$0")/.."
dir=src/pyk8s/csi
for name in csi pluginregistration; do
    python3 -m grpc_tools.protoc -I "$dir" \
        --python_out="$dir" --pyi_out="$dir" --grpc_python_out="$dir" \
        "$dir/$name.proto"
    sed -i "s/^import ${name}_pb2 as \(.*\)\$/from . import ${name}_pb2 as \1/" "$dir/${name}_pb2_grpc.py"
    for f in "$dir/${name}_pb2.py" "$dir/${name}_pb2.pyi" "$dir/${name}_pb2_grpc.py"; do
        if ! head -1 "$f" | grep -q '^# mypy: ignore-errors'; then
            sed -i '1i # mypy: ignore-errors\n# ruff: noqa' "$f"
        fi
    done
done
