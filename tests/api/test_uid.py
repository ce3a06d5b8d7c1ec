"""new_uid: the form of str(uuid.uuid4()), never repeated, never shared with a forked child."""

from __future__ import annotations

import os
import uuid

from pyk8s.api.uid import new_uid


def test_version_4_uuids_in_str_form() -> None:
    seen = set()
    for _ in range(1000):  # several pools' worth
        u = new_uid()
        parsed = uuid.UUID(u)
        assert (parsed.version, parsed.variant) == (4, uuid.RFC_4122)
        assert str(parsed) == u
        seen.add(u)
    assert len(seen) == 1000


def test_forked_child_draws_its_own() -> None:
    new_uid()  # the parent's pool is filled
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child's next uid, then the parent's next
        os.write(write, new_uid().encode())
        os._exit(0)
    os.waitpid(pid, 0)
    os.close(write)
    child = os.read(read, 64).decode()
    os.close(read)
    assert uuid.UUID(child).version == 4
    assert child != new_uid()
