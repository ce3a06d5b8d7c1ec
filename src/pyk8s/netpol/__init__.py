"""NetworkPolicy enforcement on each node with nftables (run inside ``pyk8s proxy``)."""
