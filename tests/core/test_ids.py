"""Application-made ids: UUIDv7, strictly increasing in a process, one at a time or in bulk."""

from __future__ import annotations

import uuid

from guanxi.core.base.ids import new_id, new_ids


def test_ids_made_one_by_one_and_in_bulk_interleave_strictly_increasing_and_unique() -> None:
    made = [new_id(), *new_ids(5000), new_id(), *new_ids(1), *new_ids(0), new_id(), *new_ids(3)]
    assert made == sorted(made)
    assert len(set(made)) == len(made) == 5007


def test_bulk_ids_are_ordinary_version_7_uuids() -> None:
    for u in new_ids(50):
        assert isinstance(u, uuid.UUID) and u.version == 7 and u.variant == uuid.RFC_4122
        again = uuid.UUID(str(u))
        assert again == u and hash(again) == hash(u) and again.hex == u.hex
