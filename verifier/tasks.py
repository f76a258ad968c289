"""Background tasks of the app's cleanup contexts: `stop` ends one."""

import asyncio


async def stop(task):
    """Cancel `task` (None: nothing) and wait until it has ended; its cancellation is not an error."""
    if task is None:
        return
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
