import pytest

from engine.persistence import store_env


@pytest.fixture
def engine_env(store_url):
    return store_env(store_url)
