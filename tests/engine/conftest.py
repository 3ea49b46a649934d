import pytest


@pytest.fixture
def engine_env():
    return None
