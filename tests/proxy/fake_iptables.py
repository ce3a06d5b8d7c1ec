"""A stand-in for iptables, iptables-save, iptables-restore, nft and conntrack (no root
needed).

Run as ``python fake_iptables.py LOG TOOL ARGS...``: appends one JSON line
``{"argv": [TOOL, ARGS...], "stdin": ..., "t": monotonic}`` to LOG and exits 0, except
that ``iptables -C`` fails until the same rule was added with ``-I``, and ``nft -f``
fails while a file ``LOG.fail`` exists.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def main() -> int:
    log, argv = Path(sys.argv[1]), sys.argv[2:]
    stdin = sys.stdin.read() if argv[0] == "iptables-restore" or argv[:2] == ["nft", "-f"] else None
    seen = (
        [json.loads(line)["argv"] for line in log.read_text().splitlines()] if log.exists() else []
    )
    with log.open("a") as f:
        f.write(json.dumps({"argv": argv, "stdin": stdin, "t": time.monotonic()}) + "\n")
    if argv[:2] == ["nft", "-f"] and Path(f"{log}.fail").exists():
        print("Error: Could not process rule: No such file or directory", file=sys.stderr)
        return 1
    for op in ("-C", "-D"):
        if argv[0] == "iptables" and op in argv:
            added = seen.count([("-I" if a == op else a) for a in argv])
            deleted = seen.count([("-D" if a == op else a) for a in argv])
            return 0 if added > deleted else 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
