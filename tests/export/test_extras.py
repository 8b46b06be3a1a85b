"""revcrm.export imports without pandas and matplotlib and names the missing extra."""

from __future__ import annotations

import subprocess
import sys

CODE = """
import sys
class Block:
    def find_spec(self, name, *args):
        if name.split(".")[0] in ("pandas", "matplotlib"):
            raise ImportError(name)
sys.meta_path.insert(0, Block())
import revcrm.export as e
assert e.to_jsonable(1) == 1
for call, extra in ((lambda: e.to_frame([]), "pandas"),
                    (lambda: e.churn_chart([], locale="en_US"), "charts")):
    try:
        call()
    except e.MissingExtraError as x:
        assert f"revcrm[{extra}]" in str(x), x
    else:
        raise AssertionError(extra)
"""


def test_missing_extras_are_named() -> None:
    result = subprocess.run(
        [sys.executable, "-c", CODE], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
