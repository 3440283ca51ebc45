"""The security tests attack the same indexed sample library as the integration tests: the
session's one copy (read-only) and a private clone per test that changes things. See
tests/integration/conftest.py."""

from tests.integration.conftest import copy, indexed  # noqa: F401 - fixtures offered to this folder
