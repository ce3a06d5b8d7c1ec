"""Keep the ``cel`` package's interactive shell out of our processes.

The ``cel`` package's ``__init__`` imports its shell (``cel.cli``: prompt_toolkit and rich),
~0.4 s of imports in every API server process, which never uses it. A placeholder module
registered under that name first leaves the evaluator (``cel.evaluate``, ``cel.Context``)
whole. The package imports this module before any of its modules imports ``cel``.
"""

import sys
import types

sys.modules.setdefault("cel.cli", types.ModuleType("cel.cli"))
