"""pyk8s.apiserver: the Kubernetes REST API over TLS; the only component that touches
the store. Routing, verbs, watch (through a watch cache), discovery, OpenAPI, tables,
authentication and authorization chains, admission."""
