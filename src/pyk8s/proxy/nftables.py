"""Put a rendered nftables ruleset into the kernel with ``nft -f``, and take it out again.

The first transaction (and one an hour, and the one after any failure) replaces the whole
``kube-proxy`` table. A large one is written in pieces that run side by side (nothing is
hooked before the last one), which is faster on more than one core and much cheaper in the
kernel than one transaction: a proxy's first sync writes the table that way when it does
not exist yet, each piece as soon as it is rendered (:meth:`NftApplier.render_and_apply`),
so that the render and the ``nft`` processes share the cores; over a table in place (a
restarted proxy, the hourly rewrite) the new rules are first written in pieces
(:meth:`NftRuleset.fresh_texts`) into a ``kube-proxy-staging`` table, whose hooks go in as
the old table goes out, in one transaction, and then back into ``kube-proxy`` the same
way, so that packets always meet one whole table. Every other one is the difference to
what the kernel was last given (:meth:`NftRuleset.diff_text`): a one-endpoint change
among 1,000 services rewrites two chains and one map element, and a ruleset the proxier
updated for a few changed Services is compared with the previous one on those Services
only. ``nft -f`` runs a file as one transaction, so a failed one leaves the previous
rules in place; the caller retries it.
Every command runs behind a caller-given argv prefix (e.g. ``["ip", "netns", "exec",
"pk-1"]``), which is how the tests keep to their own namespaces; the host's other tables
are never touched.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import tempfile
import time
from asyncio import Future
from collections import deque
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram

from pyk8s.proxy.iptables import run
from pyk8s.proxy.nftrules import IPV4, TABLE, Family, NftRenderer, NftRuleset

#: where a large table's new rules serve while ``kube-proxy`` itself is rewritten
STAGING = f"{TABLE}-staging"

__all__ = ["NftApplier", "NftablesError", "cleanup_nftables"]

log = logging.getLogger(__name__)

#: the whole table is rewritten at least this often (repairing changes made behind our back)
FULL_SYNC_PERIOD = 3600.0
#: a new table is written in up to this many pieces (:meth:`NftRuleset.fresh_texts`), all
#: loaded at once: one commits in the kernel while the others parse (each piece's ``nft``
#: first reads the table's chains: started together, they find few). At 10,000 services x
#: 10 endpoints (110,000 chains) one transaction took 56 s of CPU, 4 pieces 29 s, 8 pieces
#: 21 s and 16 pieces 32 s (the kernel binds each anonymous set by walking the whole
#: transaction so far, so its cost grows with the square of a transaction's size)
FRESH_PIECES = 8
#: ... of at least this many chains each (a smaller table is one transaction)
FRESH_PIECE_CHAINS = 2500
#: a table in place is rewritten through the staging table from this many chains on (it
#: writes the rules twice and deletes two tables; one transaction, whose kernel cost grows
#: with the square of its size, took 1.5-2 s of CPU at 11,000 chains, against 3.3 s, and
#: 244 s at 110,000 chains, against 116 s: deleting a table also unbinds each anonymous
#: set by walking the whole transaction, so each of the two deletes is still quadratic)
STAGED_CHAINS = 25000
#: a chain no Service uses any more is flushed at once but deleted by a later transaction,
#: as upstream does, once it has been empty this long (seconds; upstream: kernels before
#: 6.2 notice a chain is unreferenced only a little later), by a forced one (the periodic
#: sync) or by any once this many wait: a ``delete chain`` makes ``nft`` read all of the
#: table's chains first, which a one-endpoint change otherwise does not need
#: (:meth:`NftRuleset.diff_text`)
STALE_CHAIN_DELAY = 1.0
STALE_CHAINS_MAX = 1000


class NftablesError(RuntimeError):
    pass


class NftApplier:
    """Applies rulesets inside whatever ``prefix`` points at (the host by default)."""

    transaction_seconds: Histogram
    failures: Counter

    def __init__(
        self,
        prefix: Sequence[str] = (),
        registry: CollectorRegistry | None = None,
        nft: str = "nft",
        metrics_of: NftApplier | None = None,
    ) -> None:
        self.prefix = list(prefix)
        self.nft = nft
        self._last: NftRuleset | None = None  # what the kernel holds, when we know it
        self._last_full = 0.0
        self._first = True  # no transaction yet: the table may not exist
        self.piece_chains = FRESH_PIECE_CHAINS
        self.staged_chains = STAGED_CHAINS
        #: False after a failure: the next full transaction is one that also drops any
        #: half-written table (see :meth:`apply`)
        self._staged = True
        #: flushed chains no Service uses any more → when they were flushed
        self._stale: dict[str, float] = {}
        self.stale_chain_delay = STALE_CHAIN_DELAY
        self.stale_chains_max = STALE_CHAINS_MAX
        #: how the last transaction was written: "full", "partial" or "created" (a new
        #: table in pieces; for tests)
        self.last_kind = ""
        if metrics_of is not None:  # the other family's table: one set of metrics
            self.transaction_seconds = metrics_of.transaction_seconds
            self.failures = metrics_of.failures
            return
        reg = registry if registry is not None else CollectorRegistry()
        self.transaction_seconds = Histogram(
            "kubeproxy_sync_proxy_rules_nftables_transaction_duration_seconds",
            "How long one nft -f transaction took",
            registry=reg,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.failures = Counter(
            "kubeproxy_sync_proxy_rules_nftables_sync_failures",
            "nft -f transactions that failed (the previous rules stayed in place)",
            registry=reg,
        )

    async def _table_present(self, family: Family) -> bool:
        code, _ = await run(
            [*self.prefix, self.nft, "list", "chain", family.name, TABLE, "services"]
        )
        return code == 0

    async def apply(self, ruleset: NftRuleset, force: bool = False) -> bool:
        """Program ``ruleset``; True if a transaction ran. ``force`` first checks that our
        table is still there (a full transaction if someone deleted it)."""
        if force and self._last is not None and not await self._table_present(ruleset.family):
            log.warning("the kube-proxy nftables table went missing; rewriting it")
            self._last = None
        full = self._last is None or time.monotonic() - self._last_full > FULL_SYNC_PERIOD
        first, self._first = self._first, False
        pieces = min(FRESH_PIECES, len(ruleset.chains) // self.piece_chains)
        if full and pieces > 1 and first and await self._create(ruleset, pieces, TABLE):
            return True
        staged = len(ruleset.chains) >= self.staged_chains and self._staged
        if full and pieces > 1 and staged:  # (not after a failure: see text below)
            self._last = None  # until both steps are done
            if await self._create(ruleset, pieces, STAGING, TABLE) and await self._create(
                ruleset, pieces, TABLE, STAGING
            ):
                return True
            self.failures.inc()
            self._staged = False
            raise NftablesError(f"{ruleset.family.name} {STAGING} or {TABLE} already existed")
        self._staged = True
        stale: dict[str, float] = {}
        if full or self._last is None:
            text = ruleset.text()
            p = f"{ruleset.family.name} {STAGING}"  # also drops what a failed rewrite left
            text += f"add table {p}\ndelete table {p}\n"
        else:
            text = ruleset.diff_text(self._last, delete_stale=False)
            now = time.monotonic()
            stale = {c: t for c, t in self._stale.items() if c not in ruleset.chains}
            stale.update(dict.fromkeys(ruleset.gone_chains(self._last), now))
            if force or len(stale) >= self.stale_chains_max:
                ripe = {c: t for c, t in stale.items() if now - t >= self.stale_chain_delay}
                p = f"{ruleset.family.name} {TABLE}"
                text += "".join(f"delete chain {p} {c}\n" for c in ripe)
                stale = {c: t for c, t in stale.items() if c not in ripe}
        if not text:
            self._last = ruleset  # the same rules: the next update diffs against this one
            return False
        started = time.monotonic()
        code, out = await run([*self.prefix, self.nft, "-f", "-"], text)
        self.transaction_seconds.observe(time.monotonic() - started)
        if code != 0:
            self.failures.inc()
            self._last = None  # next time: the whole table
            self._staged = False
            raise NftablesError(f"nft -f: {out.strip()[:2000]}")
        self._applied(ruleset, "full" if full else "partial", stale)
        return True

    async def render_and_apply(
        self,
        renderer: NftRenderer,
        services: Sequence[Mapping[str, Any]],
        slices: Sequence[Mapping[str, Any]],
        force: bool = False,
    ) -> bool:
        """Render the whole table with ``renderer`` and program it (:meth:`apply`). A
        proxy's first sync of a large table writes it as it is rendered: the table with
        its shared chains first, then each piece of Services (at least ``piece_chains``
        chains, or 1/``FRESH_PIECES`` of the table; :meth:`NftRuleset.piece_texts`) in
        ``nft`` processes of its own, started from a thread as soon as it is rendered,
        while the render goes on beside them, then the elements and the hooked chains.
        Over a table in place it falls back to :meth:`apply`."""
        want = "IPv6" if renderer.family.name == "ip6" else "IPv4"
        chains = len(services) + sum(
            len(sl.get("endpoints") or ()) for sl in slices if sl.get("addressType") == want
        )  # about one per endpoint and one per service port
        if not self._first or chains < 2 * self.piece_chains:
            return await self.apply(renderer.render(services, slices), force)
        self._first = False
        size = max(self.piece_chains, chains // FRESH_PIECES)
        steps = renderer.render_steps(services, slices, size)
        argv = [*self.prefix, self.nft, "-f", "-"]
        loop = asyncio.get_running_loop()
        started = time.monotonic()
        threads = ThreadPoolExecutor(FRESH_PIECES + 2, "nft-piece")
        try:
            base = next(steps)[0]
            head: Future[tuple[int, str]] | None = loop.run_in_executor(
                threads, _run_files, argv, base.head_text()
            )
            pieces = []
            for ruleset, new_chains, new_sets in steps:
                if head is not None:  # the table must be there before a piece goes in
                    code, out = await head
                    head = None
                    if code != 0:  # it exists (a restarted proxy): rewrite it as a whole
                        log.debug("not creating %s %s: %s", base.family.name, TABLE, out.strip())
                        deque(steps, maxlen=0)
                        return await self.apply(ruleset, force)  # (the whole table by now)
                if new_chains or new_sets:
                    texts = ruleset.piece_texts(new_chains, new_sets)
                    pieces.append(loop.run_in_executor(threads, _run_files, argv, *texts))
            results = list(await asyncio.gather(*pieces))
        finally:  # (on a failed render, the pieces running end by themselves)
            threads.shutdown(wait=False)
        if all(code == 0 for code, _ in results):
            results.append(await run(argv, ruleset.tail_text()))
        self._pieces_done(ruleset, results, started, "created")
        return True

    def _pieces_done(
        self, ruleset: NftRuleset, results: list[tuple[int, str]], started: float, kind: str
    ) -> None:
        """Account for a table written in pieces (``results``: each transaction's exit code
        and output): applied as ``kind``, or :class:`NftablesError` for the first failure."""
        self.transaction_seconds.observe(time.monotonic() - started)
        failed = [out for code, out in results if code != 0]
        if failed:  # nothing of it is hooked: the next (whole) transaction replaces it
            self.failures.inc()
            self._staged = False
            raise NftablesError(f"nft -f: {failed[0].strip()[:2000]}")
        self._applied(ruleset, kind)

    def _applied(
        self, ruleset: NftRuleset, kind: str, stale: dict[str, float] | None = None
    ) -> None:
        self._last = ruleset
        self.last_kind = kind
        self._stale = stale or {}
        if kind != "partial":
            self._last_full = time.monotonic()

    async def _create(
        self, ruleset: NftRuleset, pieces: int, table: str, replacing: str = ""
    ) -> bool:
        """Write ``table``, which does not exist yet, in ``pieces`` transactions at once
        (and one before and one after them: :meth:`NftRuleset.fresh_texts`; the last one
        also deletes the table ``replacing``, if it exists); False (nothing done) if
        ``table`` exists."""
        argv = [*self.prefix, self.nft, "-f", "-"]
        texts = ruleset.fresh_texts(pieces, table)
        started = time.monotonic()
        code, out = await run(argv, next(texts))
        if code != 0:
            log.debug("not creating %s %s in pieces: %s", ruleset.family.name, table, out.strip())
            return False
        loads: list[asyncio.Task[tuple[int, str]]] = []
        tail = next(texts)
        for text in texts:  # each piece starts as soon as it is written
            loads.append(asyncio.create_task(run(argv, tail)))
            tail = text
        results = await asyncio.gather(*loads)
        if replacing:
            p = f"{ruleset.family.name} {replacing}"
            tail += f"add table {p}\ndelete table {p}\n"
        if all(code == 0 for code, _ in results):
            results.append(await run(argv, tail))
        self._pieces_done(
            ruleset, results, started, "staged" if replacing == STAGING else "created"
        )
        return True


def _run_files(argv: Sequence[str], *texts: str) -> tuple[int, str]:
    """Run ``argv`` on each text in turn until one fails (in a thread, each read from a
    file: neither needs the event loop, busy rendering the next piece); (exit code,
    output) of the last run."""
    code, out = 0, b""
    for text in texts:
        with tempfile.TemporaryFile() as stdin:
            stdin.write(text.encode())
            stdin.seek(0)
            done = subprocess.run(
                argv, stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
            )
        code, out = done.returncode, done.stdout
        if code != 0:
            break
    return code, out.decode(errors="replace")


async def cleanup_nftables(prefix: Sequence[str] = (), family: Family = IPV4) -> None:
    """Delete the ``kube-proxy`` table, and a staging one a rewrite may have left (``pyk8s
    proxy --cleanup``, or another mode starting)."""
    code, out = await run(
        [*prefix, "nft", "-f", "-"],
        "".join(
            f"add table {family.name} {t}\ndelete table {family.name} {t}\n"
            for t in (TABLE, STAGING)
        ),
    )
    if code != 0:
        raise NftablesError(f"deleting the {family.name} {TABLE} table: {out.strip()}")
