"""Audit logging: who did what, when, as upstream's audit.k8s.io/v1 events.

``policy`` decides each request's level from an audit Policy file, ``event`` builds the
request's events stage by stage, ``backend`` writes them as JSON lines off the request
path. With no policy file nothing is audited (upstream's default too).
"""

from __future__ import annotations

from pyk8s.apiserver.audit.backend import LogBackend
from pyk8s.apiserver.audit.event import (
    AuditContext,
    Auditor,
    admission_annotations,
    current,
    end,
    log_request_object,
    record_authorization,
)
from pyk8s.apiserver.audit.policy import AuditPolicyError, Policy, load_policy

__all__ = [
    "AuditContext",
    "AuditPolicyError",
    "Auditor",
    "LogBackend",
    "Policy",
    "admission_annotations",
    "current",
    "end",
    "load_policy",
    "log_request_object",
    "record_authorization",
]
