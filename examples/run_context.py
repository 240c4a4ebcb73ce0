"""The run-context example from Flyte's documentation, with one line changed: the import."""

import flyte_celery as flyte

env = flyte.TaskEnvironment("run-context-example")


@env.task
async def process(n: int) -> int:
    return n * 2


@env.task
async def inspect_context() -> str:
    ctx = flyte.ctx()
    action = ctx.action
    return f"run={action.run_name}, action={action.name}, mode={ctx.mode}, in_cluster={ctx.is_in_cluster()}"


@env.task
async def root() -> int:
    print(await inspect_context())
    print("custom context:", flyte.ctx().custom_context)
    return await process(21)


if __name__ == "__main__":
    flyte.init_from_config()
    run = flyte.with_runcontext(
        project="my-project",
        domain="development",
        custom_context={"team": "ml"},
    ).run(root)
    outputs = run.outputs()  # waits for a remote run to end
    print(f"run {run.name}: {run.phase}, outputs {outputs}")
