"""Helpers shared by the tests: data, servers, browsers, waiting. Fixtures live in conftest.py."""
