"""Shared fixtures: access to the real MRI in ``../shared/data``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path of ``../shared/data``; skips where absent, fails where ``ARTEFIX_REQUIRE_SHARED_DATA=1``."""
    if SHARED_DATA.is_dir():
        return SHARED_DATA
    reason = f"real MRI data not found at {SHARED_DATA}"
    if os.environ.get("ARTEFIX_REQUIRE_SHARED_DATA") == "1":
        pytest.fail(f"{reason} but ARTEFIX_REQUIRE_SHARED_DATA=1")
    pytest.skip(reason)
