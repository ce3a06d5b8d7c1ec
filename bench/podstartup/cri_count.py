"""``python -m pyk8s`` with every CRI call its process makes counted, for bench/podstartup.

The bench starts the kubelet (of this tree, or of a ``--baseline`` revision: the patch is
applied the same way to both) through this file. ``SIGUSR1`` writes the counts so far, by
CRI method, as JSON to the file named by ``$PYK8S_CRI_COUNTS``: the bench reads them before
and after a round to tell how many runtime round trips each pod start took.
"""

from __future__ import annotations

import collections
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from pyk8s.server import bytecode

bytecode.enable()  # as pyk8s/__main__.py does, before the other imports

from pyk8s.kubelet.cri import client  # noqa: E402

COUNTS: collections.Counter[str] = collections.Counter()
_call = client.CRIClient._call


async def _counted(self: client.CRIClient, what: str, *args: Any) -> Any:
    COUNTS[what] += 1
    return await _call(self, what, *args)


def _dump(_signum: int, _frame: object) -> None:
    path = Path(os.environ["PYK8S_CRI_COUNTS"])
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(COUNTS))
    tmp.rename(path)


if __name__ == "__main__":
    client.CRIClient._call = _counted  # type: ignore[method-assign]
    signal.signal(signal.SIGUSR1, _dump)
    from pyk8s.cli import main

    sys.argv[0] = "pyk8s"
    raise SystemExit(main())
