"""pyk8s.server: composition. Wires components into the processes users run
(`pyk8s server`, `pyk8s apiserver`, …): data directory, certificates, kubeconfig,
logging, signals and supervision. It is the only package that may import every other."""
