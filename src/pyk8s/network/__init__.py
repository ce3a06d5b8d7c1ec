"""pyk8s.network: how pods on different nodes reach each other (host-gw routes)."""
