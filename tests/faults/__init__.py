"""The fault suite (a package, so its module names never collide with tests/test_*.py)."""
