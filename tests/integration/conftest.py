import pytest


def pytest_collection_modifyitems(items):
    # Everything under tests/integration/ talks to real services.
    for item in items:
        if "/integration/" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
