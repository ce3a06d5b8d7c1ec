"""pyk8s.kubelet: the node agent — a real kubelet (CRI) and simulated nodes (kwok-style)
that speak the same API to the control plane."""
