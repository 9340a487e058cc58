from __future__ import annotations

import os

from airflow_distmap.local.runtime.spool import ResultSpool


def test_entries_stay_readable_after_the_descriptor_is_released() -> None:
    spool = ResultSpool()
    first = spool.append(b'{"a":1}')
    second = spool.append(b'{"b":2}')
    assert spool.read(second) == b'{"b":2}'
    spool.release()
    assert spool.read(first) == b'{"a":1}'
    third = spool.append(b'{"c":3}')  # a redrive appends again
    assert (spool.read(third), spool.read(second)) == (b'{"c":3}', b'{"b":2}')
    spool.close()
    assert not os.path.exists(spool.path)
    spool.close()
