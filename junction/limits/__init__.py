"""Rate limits and quotas per caller, model, MCP tool and A2A agent (docs/limits.md).

Decisions:
- Enforced where a surface already checks the caller's grant (the model, tool or agent is known
  there): the access guard puts the caller's `Quota` in the request's state and each surface
  asks it once per call (`router_core.quota`), so a call costs one counter round trip at most
  and a caller with no limits costs a dict lookup.
- Counters are fixed windows (`counters`): in memory for one process, in Redis (one Lua script
  per call) when `cluster.redis_url` is set, so replicas enforce one limit together. Redis down:
  `cluster.limits_on_redis_down` (open by default), logged once, retried once a second.
- Tokens are what upstreams report, charged after the call; a token limit refuses the calls
  after the window's total has reached it.
- `redis` (redis-py, asyncio) is imported only when `cluster.redis_url` is set (~125 ms).
"""

from junction.limits.limiter import CallerQuota, Limiter

__all__ = ["CallerQuota", "Limiter"]
