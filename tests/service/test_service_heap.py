"""The ``serve`` command's start-up freeze: full collections stop walking what start-up built.

Run in a child process: :func:`~datadrive.service.ops.freeze_startup_heap`
acts on the whole process, and the test process holds other tests' objects.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_startup_objects_leave_the_collectors_walks() -> None:
    script = textwrap.dedent(
        """
        import gc
        import sys

        from datadrive.service import create_app  # what serve imports before it freezes
        from datadrive.service.ops import _READ_PATH_MODULES, freeze_startup_heap

        walked_before = len(gc.get_objects())
        frozen = freeze_startup_heap()
        assert all(name in sys.modules for name in _READ_PATH_MODULES), "the read path is imported"
        assert frozen == gc.get_freeze_count() > walked_before, (frozen, walked_before)
        walked_after = len(gc.get_objects())  # what a full collection walks now
        assert walked_after < walked_before // 50, (walked_before, walked_after)
        junk = []
        junk.append(junk)  # a cycle made after the freeze is still collected
        del junk
        assert gc.collect() >= 1
        print(walked_before, frozen, walked_after)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    before, frozen, after = (int(x) for x in done.stdout.split())
    assert frozen > before > 50 * after
