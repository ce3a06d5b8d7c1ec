"""Where pyk8s keeps its state by default (k3s keeps /var/lib/rancher/k3s)."""

from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    """/var/lib/pyk8s for root, ~/.pyk8s otherwise."""
    if os.geteuid() == 0:
        return Path("/var/lib/pyk8s")
    return Path.home() / ".pyk8s"


def default_kubeconfig() -> Path:
    return default_data_dir() / "kubeconfig.yaml"
