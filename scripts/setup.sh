#!/usr/bin/env bash
# Installs everything pyk8s needs on a Debian machine (run as root).
#   bash scripts/setup.sh          runtime: Debian packages + the pyk8s package
#   bash scripts/setup.sh --test   the same plus the test and lint tools
set -euo pipefail
cd "$(dirname "$0")/.."

extras=""
[[ "${1:-}" == "--test" ]] && extras="[test]"

# Debian packages: etcd for the distributed store (and its tests); containerd + runc, the
# CNI plugins and iptables for the node agent; busybox-static to build images offline;
# docker-registry serves images on loopback in the image pull tests; nginx is the Ingress
# controller's data plane; nftables, ipvsadm, ipset and conntrack serve the proxy modes and
# NetworkPolicy.
pkgs=(etcd-server etcd-client containerd runc containernetworking-plugins iptables busybox-static
      docker-registry nginx nftables ipvsadm ipset conntrack)
# --test: the dashboard's browser tests drive Debian's headless Chromium through its chromedriver
[[ -n "$extras" ]] && pkgs+=(chromium chromium-driver)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
# Debian's etcd-server starts a system etcd on 2379; pyk8s starts its own where it needs one.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet etcd 2>/dev/null; then
    systemctl stop etcd || true
fi
# pyk8s runs its own containerd (own socket, root and state under its data dir).
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet containerd 2>/dev/null; then
    systemctl stop containerd || true
fi
# Debian's docker-registry starts a registry on :5000; the tests start their own on loopback.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet docker-registry 2>/dev/null; then
    systemctl stop docker-registry || true
fi

# Debian's nginx starts a web server on :80; the Ingress controller runs its own nginx.
if command -v systemctl >/dev/null 2>&1 && systemctl is-active --quiet nginx 2>/dev/null; then
    systemctl stop nginx || true
fi

export PIP_BREAK_SYSTEM_PACKAGES=1 PIP_DISABLE_PIP_VERSION_CHECK=1
python3 -m pip install -q -e ".${extras}"
command -v pyenv >/dev/null 2>&1 && pyenv rehash || true
echo "pyk8s installed: $(command -v pyk8s || echo 'python3 -m pyk8s')"
