"""Put a rendered ruleset into the kernel with iptables-restore, and take it out again.

As upstream kube-proxy does: the built-in chains get one jump rule each into our chains
(checked with ``-C`` and inserted with ``-I`` only when missing, so doing it again is
harmless); the KUBE-* chains themselves are rewritten atomically by one
``iptables-restore --noflush`` (declaring a chain flushes it, other chains and tables are
left alone); per-service chains that are no longer rendered are flushed and deleted in
the same transaction. Every command runs behind a caller-given argv prefix (e.g.
``["ip", "netns", "exec", "pk-1"]``), which is how the tests keep to their own namespaces.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram

from pyk8s.proxy.rules import FILTER_CHAINS, NAT_CHAINS, SERVICE_CHAIN_PREFIXES, Ruleset

__all__ = ["JUMPS", "Applier", "IptablesError", "Jump", "cleanup", "run"]

log = logging.getLogger(__name__)


#: a restore rewrites only the chains that changed; every this many seconds (and after a
#: failure) the whole ruleset is written again, repairing anything changed behind our back
FULL_SYNC_PERIOD = 3600.0


class IptablesError(RuntimeError):
    pass


@dataclass(frozen=True)
class Jump:
    """A rule in a built-in chain sending traffic into one of ours."""

    table: str
    chain: str
    target: str
    args: tuple[str, ...]

    def argv(self, op: str) -> list[str]:
        return ["-t", self.table, op, self.chain, *self.args, "-j", self.target]


def _jump(table: str, chains: Sequence[str], target: str, comment: str, new: bool) -> list[Jump]:
    state = ("-m", "conntrack", "--ctstate", "NEW") if new else ()
    return [Jump(table, c, target, (*state, "-m", "comment", "--comment", comment)) for c in chains]


#: upstream's jump rules, in upstream's order
JUMPS: tuple[Jump, ...] = (
    *_jump("filter", ("INPUT", "FORWARD"), "KUBE-EXTERNAL-SERVICES",
           "kubernetes externally-visible service portals", True),
    *_jump("filter", ("INPUT",), "KUBE-NODEPORTS", "kubernetes health check service ports", False),
    *_jump("filter", ("FORWARD", "OUTPUT"), "KUBE-SERVICES", "kubernetes service portals", True),
    *_jump("filter", ("FORWARD",), "KUBE-FORWARD", "kubernetes forwarding rules", False),
    *_jump("filter", ("INPUT", "OUTPUT", "FORWARD"), "KUBE-PROXY-FIREWALL",
           "kubernetes load balancer firewall", True),
    *_jump("nat", ("OUTPUT", "PREROUTING"), "KUBE-SERVICES", "kubernetes service portals", False),
    *_jump("nat", ("POSTROUTING",), "KUBE-POSTROUTING", "kubernetes postrouting rules", False),
)  # fmt: skip


async def run(argv: Sequence[str], stdin: str | None = None) -> tuple[int, str]:
    """Run a command; (exit code, stderr+stdout text)."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await proc.communicate(stdin.encode() if stdin is not None else None)
    return proc.returncode or 0, out.decode(errors="replace")


def chains_in(save_output: str) -> set[str]:
    """Chain names declared in ``iptables-save`` output."""
    return {line[1:].split()[0] for line in save_output.splitlines() if line.startswith(":")}


class Applier:
    """Applies rulesets inside whatever ``prefix`` points at (the host by default)."""

    restore_seconds: Histogram
    restore_failures: Counter

    def __init__(
        self,
        prefix: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
        iptables: str = "iptables",
        metrics_of: Applier | None = None,
    ) -> None:
        self.prefix = list(prefix)
        self.iptables = iptables
        self._last_text: str | None = None
        self._last: Ruleset | None = None  # what the kernel holds, when we know it
        self._last_full = 0.0
        self._applied_chains: set[str] | None = None  # None: ask iptables-save first
        if metrics_of is not None:  # the other family's applier (ip6tables): one set of metrics
            self.restore_seconds = metrics_of.restore_seconds
            self.restore_failures = metrics_of.restore_failures
            return
        reg = registry if registry is not None else CollectorRegistry()
        self.restore_seconds = Histogram(
            "kubeproxy_sync_proxy_rules_iptables_restore_duration_seconds",
            "How long one iptables-restore of the whole ruleset took",
            registry=reg,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.restore_failures = Counter(
            "kubeproxy_sync_proxy_rules_iptables_restore_failures",
            "iptables-restore runs that failed",
            registry=reg,
        )

    def _cmd(self, tool: str, *args: str) -> list[str]:
        return [*self.prefix, tool, *args]

    async def ensure_jumps(self) -> None:
        """Create our base chains and the jumps into them if missing (idempotent)."""
        for table, chains in (("filter", FILTER_CHAINS), ("nat", NAT_CHAINS)):
            for chain in chains:
                await run(self._cmd(self.iptables, "-w", "-t", table, "-N", chain))
        for jump in JUMPS:
            code, _ = await run(self._cmd(self.iptables, "-w", *jump.argv("-C")))
            if code != 0:
                code, out = await run(self._cmd(self.iptables, "-w", *jump.argv("-I")))
                if code != 0:
                    raise IptablesError(f"adding jump {jump}: {out.strip()}")

    async def apply(self, ruleset: Ruleset, force: bool = False) -> bool:
        """Restore ``ruleset`` unless it is what was applied last (True if it ran)."""
        if self._applied_chains is None:
            code, out = await run(self._cmd(f"{self.iptables}-save", "-t", "nat"))
            if code != 0:
                raise IptablesError(f"iptables-save: {out.strip()}")
            self._applied_chains = {
                c for c in chains_in(out) if c.startswith(SERVICE_CHAIN_PREFIXES)
            }
        wanted = ruleset.text()
        if wanted == self._last_text and not force:
            return False
        full = self._last is None or time.monotonic() - self._last_full > FULL_SYNC_PERIOD
        if self._last is not None and not full:
            text = ruleset.partial_text(self._last)
        else:
            text = ruleset.text(stale_nat_chains=self._applied_chains)
        started = time.monotonic()
        code, out = await run(
            self._cmd(f"{self.iptables}-restore", "-w", "5", "--noflush", "--counters"), text
        )
        self.restore_seconds.observe(time.monotonic() - started)
        if code != 0:
            self.restore_failures.inc()
            self._last_text = None
            self._last = None  # next time: a full restore
            self._applied_chains = None  # re-read what is there next time
            raise IptablesError(f"iptables-restore: {out.strip()}")
        self._last_text = wanted
        self._last = ruleset
        if full:
            self._last_full = time.monotonic()
        self._applied_chains = ruleset.service_chains
        return True


async def cleanup(prefix: Sequence[str] = (), iptables: str = "iptables") -> None:
    """Remove every jump rule and KUBE-* chain this proxy makes (``pyk8s proxy --cleanup``)."""
    ours = set(FILTER_CHAINS) | set(NAT_CHAINS)
    for jump in JUMPS:
        for _ in range(10):  # a rule inserted twice is deleted twice
            code, _out = await run([*prefix, iptables, "-w", *jump.argv("-D")])
            if code != 0:
                break
    for table in ("filter", "nat"):
        code, out = await run([*prefix, f"{iptables}-save", "-t", table])
        if code != 0:
            raise IptablesError(f"iptables-save -t {table}: {out.strip()}")
        chains = sorted(
            c for c in chains_in(out) if c in ours or c.startswith(SERVICE_CHAIN_PREFIXES)
        )
        if not chains:
            continue
        lines = [f"*{table}", *(f":{c} - [0:0]" for c in chains)]
        lines += [f"-X {c}" for c in chains]
        lines.append("COMMIT")
        code, out = await run(
            [*prefix, f"{iptables}-restore", "-w", "5", "--noflush"], "\n".join(lines) + "\n"
        )
        if code != 0:
            raise IptablesError(f"cleaning the {table} table: {out.strip()}")
