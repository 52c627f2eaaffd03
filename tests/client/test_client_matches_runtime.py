"""The client's copies of the runtime's input rules agree with the runtime.

The client stays installable alone (standard library only), so it keeps its own site pattern
and message size limit instead of importing ``userstatus``; these tests fail when either copy
drifts from what the functions accept.
"""

from __future__ import annotations

import argparse

from hypothesis import given
from hypothesis import strategies as st

from userstatus import model
from userstatus.errors import InvalidInput
from userstatus_client import cli, handler

SITE_CHARACTERS = "abcXYZ09-_ .é/\n\t\x00"


def client_accepts_site(site: str) -> bool:
    """Whether ``userstatus send --site`` takes it (UserStatusHandler checks the same way)."""
    try:
        cli._site(site)
    except argparse.ArgumentTypeError:
        return False
    return True


def runtime_accepts_site(site: str) -> bool:
    try:
        model.validate_site(site)
    except InvalidInput:
        return False
    return True


@given(st.text(alphabet=SITE_CHARACTERS, max_size=70))
def test_the_client_accepts_exactly_the_sites_the_runtime_accepts(site: str) -> None:
    assert client_accepts_site(site) == runtime_accepts_site(site)


def test_edge_sites_agree() -> None:
    for site in ["", "a", "a" * 64, "a" * 65, "tst\n", "a-b_c", "../etc", "é"]:
        assert client_accepts_site(site) == runtime_accepts_site(site), site


def test_a_message_the_client_fits_is_one_the_runtime_accepts() -> None:
    assert handler.MAX_MESSAGE_BYTES == model.MAX_MESSAGE_BYTES
    for text in ["x" * model.MAX_MESSAGE_BYTES, "é" * model.MAX_MESSAGE_BYTES, "x" * 10]:
        fitted = handler._fit(text)
        model._validate_text(fitted)  # raises InvalidInput if the runtime would refuse it
        assert len(fitted.encode()) <= model.MAX_MESSAGE_BYTES
