"""streams/gc_tuning.py: the worker's collector settings (run in a child: they are process-wide)."""

from __future__ import annotations

import json
import subprocess
import sys

from streams.gc_tuning import THRESHOLDS

CHILD = (
    "import gc, json; from streams import gc_tuning; before = gc.get_freeze_count(); "
    "gc_tuning.tune(); print(json.dumps([before, gc.get_freeze_count(), gc.get_threshold(), "
    "gc.isenabled()]))"
)


def test_tune_freezes_the_start_up_heap_and_raises_the_thresholds():
    out = subprocess.run(
        [sys.executable, "-c", CHILD], capture_output=True, text=True, check=True
    ).stdout
    before, frozen, thresholds, enabled = json.loads(out)
    assert before == 0 and frozen > 1000  # the imported modules' objects at least
    assert tuple(thresholds) == THRESHOLDS
    assert enabled  # tuned, not switched off: cycles are still collected
