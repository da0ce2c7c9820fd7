"""The test suite in tiers (unit, integration, system), with the helpers they share in `tests.helpers`.

pytest rewrites the asserts of the helpers as it does those of test modules, so that a failing check
in a helper shows its values.
"""

import pytest

pytest.register_assert_rewrite("tests.helpers")
