"""``pyk8s trace``: a pod's journey through the control plane as one timeline.

Upstream has no single answer to "where is my pod now?": it takes events, conditions and
container statuses read side by side. This package joins what the components already
record (the pod's creationTimestamp and managedFields, the scheduler's and the kubelet's
Events, the pod's conditions and container statuses) into ordered steps with the gap
between them; no new server-side state. :mod:`.timeline` is the pure part,
:mod:`.command` fetches, follows and prints.
"""
