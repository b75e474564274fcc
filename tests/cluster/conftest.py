"""The throwaway redis-server of the rate-limit tests (the PostgreSQL fixtures come from
tests/conftest.py)."""

from tests.test_limits_redis import redis, redis_server

__all__ = ["redis", "redis_server"]
