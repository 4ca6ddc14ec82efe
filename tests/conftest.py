"""Fixtures several test files share."""

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))

import indexbuild as ib  # noqa: E402


@pytest.fixture(scope="session")
def key():
    """A generated signing key pair (private, public PEM) for test indexes."""
    return ib.new_key()


@pytest.fixture(scope="session")
def other_key():
    """A second, different key pair."""
    return ib.new_key(slot=1)
