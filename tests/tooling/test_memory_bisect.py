"""The 2 KB bisection the link memory tools share (tools/measure/fleet_memory.py
smallest_heap), with the expected edge given as a hint: whatever the hint,
the answer is the true edge (a fake run that passes from a given heap up)."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "tools", "measure"))
from fleet_memory import smallest_heap  # noqa: E402


@pytest.mark.parametrize("near", [None, 42, 50, 52, 54, 56, 58, 70, 100, 120])
@pytest.mark.parametrize("true_edge", [42, 54, 56, 62, 100])
def test_the_hint_never_changes_the_answer(true_edge, near):
    runs = []

    def passes(heap_k):
        runs.append(heap_k)
        return heap_k >= true_edge

    assert smallest_heap(passes, 40, 100, near) == true_edge
    if near == true_edge and near > 42:
        assert runs == [near, near - 2]  # confirmed in two runs


def test_no_heap_in_range_runs():
    assert smallest_heap(lambda heap_k: False, 40, 100, 54) is None
