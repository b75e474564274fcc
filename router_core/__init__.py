"""LLM backends and the backend-selection core: selection strategies, health, circuit breakers."""

from router_core.health import (
    BreakerSettings,
    BreakerState,
    CircuitBreaker,
    EndpointStats,
    HealthChecker,
    HealthCheckSettings,
)
from router_core.selection import (
    STRATEGY_NAMES,
    Endpoint,
    EndpointLike,
    Strategy,
    StrategyName,
    make_strategy,
)

__all__ = [
    "STRATEGY_NAMES",
    "BreakerSettings",
    "BreakerState",
    "CircuitBreaker",
    "Endpoint",
    "EndpointLike",
    "EndpointStats",
    "HealthCheckSettings",
    "HealthChecker",
    "Strategy",
    "StrategyName",
    "make_strategy",
]
