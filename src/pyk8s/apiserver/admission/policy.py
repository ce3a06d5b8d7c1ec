"""ValidatingAdmissionPolicy: CEL rules users bind to requests, run in the API server.

(Being filled in: this skeleton only registers the plugin name.)
"""

from __future__ import annotations

from typing import ClassVar

from pyk8s.apiserver.admission import Context, Plugin


class ValidatingAdmissionPolicy(Plugin):
    name: ClassVar[str] = "ValidatingAdmissionPolicy"

    def __init__(self, context: Context) -> None:
        self.reader = context.reader
