"""Admission webhooks: MutatingAdmissionWebhook and ValidatingAdmissionWebhook.

Users register webhooks with MutatingWebhookConfiguration and
ValidatingWebhookConfiguration objects; these plugins call them on the requests they
match. (Being filled in: this skeleton only registers the plugin names.)
"""

from __future__ import annotations

from typing import ClassVar

from pyk8s.apiserver.admission import Context, Plugin


class MutatingAdmissionWebhook(Plugin):
    name: ClassVar[str] = "MutatingAdmissionWebhook"

    def __init__(self, context: Context) -> None:
        self.reader = context.reader


class ValidatingAdmissionWebhook(Plugin):
    name: ClassVar[str] = "ValidatingAdmissionWebhook"

    def __init__(self, context: Context) -> None:
        self.reader = context.reader
