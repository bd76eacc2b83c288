"""The per-cell CPU limit's arithmetic (``kernel_launcher.cell_soft_limit``), on given numbers.

The real kernel's behaviour (a cell over its limit is stopped, one under it is not, whatever
fraction of a second came before) is tested in ``test_kernel.py``.
"""

from __future__ import annotations

import math
import resource

import pytest

from workbook.kernels.kernel_launcher import cell_soft_limit


@pytest.mark.parametrize("used", [0.0, 0.01, 1.0, 2.5, 2.99, 41.7])
@pytest.mark.parametrize("cell", [1, 2, 120])
def test_a_cell_gets_at_least_its_limit_and_less_than_a_second_more(used, cell):
    soft = cell_soft_limit(used, cell, resource.RLIM_INFINITY)
    assert isinstance(soft, int)
    assert cell <= soft - used < cell + 1
    assert soft == math.ceil(used) + cell


def test_the_lifetime_budget_still_wins():
    hard = 60
    assert cell_soft_limit(2.5, 120, hard) == hard
    assert cell_soft_limit(58.2, 1, hard) == hard
    assert cell_soft_limit(10.2, 1, hard) == math.ceil(10.2) + 1 < hard
