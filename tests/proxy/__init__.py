"""kube-proxy tests."""
