"""pyk8s.api: pure data and rules of the Kubernetes API (no I/O, imports nothing of ours).

Populated by the API server issue: resource registry, metadata, selectors, quantities,
defaulting, validation, patch, errors as Status objects.
"""
