"""Fargate task sizes and on-demand prices.

Sizes: https://docs.aws.amazon.com/AmazonECS/latest/developerguide/task-cpu-memory-error.html
Prices: us-east-1 Linux, see docs/ecs-rollouts.md (Fargate sizes and prices) (third-party listing, March 2026, matching
AWS's own per-second example). Spot is "up to 70%" off; we assume the full 70% and say so.
"""

from __future__ import annotations

PRICE_DATE = "2026-03"
PRICE_REGION = "us-east-1"
HOURS_PER_MONTH = 730
PRICES = {  # USD per vCPU-hour, per GB-hour
    "X86_64": (0.04048, 0.004445),
    "ARM64": (0.03238, 0.00356),
}
SPOT_DISCOUNT = 0.70
# Compute Savings Plans on Fargate (on-demand usage only; Spot is not covered): about 20% off for a
# 1-year no-upfront term up to about 50% for 3 years paid upfront. AWS's headline "up to 66%" is for
# EC2; see docs/jobs.md (Cost advice) for the sources and their dates.
SAVINGS_PLAN_RANGE = (0.20, 0.50)
SAVINGS_PLAN_DATE = "2026-01"


def allowed_memory(cpu: int) -> list[int]:
    """Allowed memory values (MiB) for a Fargate cpu value (CPU units), empty when cpu is invalid."""
    gb = 1024
    if cpu == 256:
        return [512, 1024, 2048]
    if cpu == 512:
        return [n * gb for n in range(1, 5)]
    if cpu == 1024:
        return [n * gb for n in range(2, 9)]
    if cpu == 2048:
        return [n * gb for n in range(4, 17)]
    if cpu == 4096:
        return [n * gb for n in range(8, 31)]
    if cpu == 8192:
        return [n * gb for n in range(16, 61, 4)]
    if cpu == 16384:
        return [n * gb for n in range(32, 121, 8)]
    return []


VALID_CPU = (256, 512, 1024, 2048, 4096, 8192, 16384)


def check_pair(cpu: int, memory: int) -> str | None:
    """None when valid, else a message naming what is allowed."""
    if cpu not in VALID_CPU:
        return f"cpu {cpu} is not a Fargate size; use one of {', '.join(map(str, VALID_CPU))}"
    allowed = allowed_memory(cpu)
    if memory in allowed:
        return None
    lo, hi = allowed[0], allowed[-1]
    step = allowed[1] - allowed[0]
    if allowed != list(range(lo, hi + 1, step)):  # 256 → 512, 1024, 2048: not an even range
        return (f"memory {memory} MiB is not allowed with cpu {cpu}; Fargate allows "
                f"{', '.join(map(str, allowed[:-1]))} or {hi} MiB")
    return (f"memory {memory} MiB is not allowed with cpu {cpu}; Fargate allows {lo}–{hi} MiB"
            f" in steps of {step} MiB")


def monthly_cost(cpu: int, memory: int, count: int, *, arch: str = "X86_64", spot: bool = False) -> float:
    vcpu_price, gb_price = PRICES.get(arch, PRICES["X86_64"])
    hourly = cpu / 1024 * vcpu_price + memory / 1024 * gb_price
    if spot:
        hourly *= 1 - SPOT_DISCOUNT
    return hourly * HOURS_PER_MONTH * count
