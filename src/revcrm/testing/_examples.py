"""How many examples a property of the shipped contract suites runs: the active profile's.

Each ``@settings`` of :mod:`revcrm.testing.contract`, :mod:`revcrm.testing.crm_contract`
and the modules they mix in writes its count as :func:`examples` ``(n)``, where ``n`` is
the count under hypothesis' own default of 100 examples. The count run is ``n`` scaled by
the active profile's ``max_examples`` (``n * max_examples // 100``, at least one), so the
profile a host chooses (``--hypothesis-profile=fast``, ``HYPOTHESIS_PROFILE=thorough``
with a ``settings.load_profile`` in its conftest) governs the contracts as it governs its
own tests: revcrm's profiles give 15/100, 60/100 and 500/100 of ``n``.

Like any ``@settings`` decorator, the count is read when the contract module is imported:
load the profile first (pytest does, for ``--hypothesis-profile`` and for a conftest that
calls ``settings.load_profile``, before it imports test modules).
"""

from __future__ import annotations

from typing import Final

from hypothesis import settings

#: The ``max_examples`` the counts of the contract suites are written for (hypothesis'
#: own default).
BASE_EXAMPLES: Final = 100


def examples(n: int) -> int:
    """``n`` examples at :data:`BASE_EXAMPLES`, scaled to the active profile (at least 1)."""
    return max(1, n * settings().max_examples // BASE_EXAMPLES)
