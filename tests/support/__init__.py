"""Test support: real servers, registries, daemons and the harness the tests drive them with."""
