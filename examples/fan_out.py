"""A fan-out to look at from the terminal (the README's CLI tour): `main` squares `n` numbers in parallel children
and sums them; one number is unlucky and its child fails, unless `skip_unlucky` leaves it out.

    flyte-celery run --mode remote --follow examples/fan_out.py main --n 100
"""

import asyncio

import flyte_celery as flyte

env = flyte.TaskEnvironment("fan_out")
UNLUCKY = 13


@env.task
async def square(i: int) -> int:
    print(f"squaring {i}")
    if i == UNLUCKY:
        raise ValueError(f"{i} is unlucky")
    return i * i


@env.task
async def main(n: int = 10, skip_unlucky: bool = True) -> int:
    numbers = [i for i in range(n) if not (skip_unlucky and i == UNLUCKY)]
    return sum(await asyncio.gather(*(square(i) for i in numbers)))


if __name__ == "__main__":
    flyte.init_from_config()
    run = flyte.run(main, n=20)
    print(f"run {run.name}: outputs {run.outputs()}")
