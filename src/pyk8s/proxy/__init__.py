"""kube-proxy in iptables mode: Services and EndpointSlices become KUBE-* chains.

``rules`` renders the whole ruleset (pure), ``iptables`` applies it and cleans it up,
``proxier`` watches the API and keeps the kernel in step.
"""
