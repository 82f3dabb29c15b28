"""``overseer.gctune.tune_for_server`` (run in a child process: it changes the whole process's collector)."""

from __future__ import annotations

import json
import subprocess
import sys

from overseer.gctune import THRESHOLDS

CHILD = """
import gc, json
from overseer.gctune import tune_for_server
before = (gc.get_threshold(), gc.get_freeze_count())
junk = [[i] for i in range(1000)]
tune_for_server()
print(json.dumps({"before": before, "after": [gc.get_threshold(), gc.get_freeze_count()]}))
"""


def test_it_freezes_the_start_up_heap_and_raises_the_thresholds() -> None:
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, timeout=60)
    got = json.loads(out.stdout)
    (threshold_before, frozen_before), (threshold_after, frozen_after) = got["before"], got["after"]
    assert tuple(threshold_before) == (700, 10, 10) and frozen_before == 0  # CPython's defaults
    assert tuple(threshold_after) == THRESHOLDS
    assert frozen_after > 1000  # the lists above and the start-up heap are in the permanent generation now


def test_apply_follows_the_setting() -> None:
    child = ("import gc, json\nfrom overseer import gctune\nfrom overseer.config import Settings\n"
             "ran = [gctune.apply(Settings(gc_tuning=False)), gc.get_threshold()[0],\n"
             "       gctune.apply(Settings(gc_tuning=True)), gc.get_threshold()[0]]\nprint(json.dumps(ran))\n")
    out = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True, timeout=60)
    assert json.loads(out.stdout) == [False, 700, True, THRESHOLDS[0]]
