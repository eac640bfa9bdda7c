"""ECS rollout SIMULATION served by a real moto server (see ``ecs_rollout``)."""

from .ecs_rollout import (
    ALARM_FAILED_REASON,
    BREAKER_FAILED_REASON,
    BREAKER_ROLLBACK_REASON,
    ApiCall,
    Outcome,
    RolloutSimulation,
    Scenario,
    SimDeployment,
    SimTask,
)

__all__ = [
    "ALARM_FAILED_REASON",
    "BREAKER_FAILED_REASON",
    "BREAKER_ROLLBACK_REASON",
    "ApiCall",
    "Outcome",
    "RolloutSimulation",
    "Scenario",
    "SimDeployment",
    "SimTask",
]
