"""modelwatch: watch machine-learning models in production, from Python.

The hook a scorer calls on every prediction is the Rust agent's, behind ``Agent``::

    import modelwatch

    agent = modelwatch.Agent("pii-confidence", version="1.4.0", segments=["email", "phone"],
                             features=["token_count", "digit_ratio"], data="./modelwatch-data")
    agent.record("email", latency_s=0.00085, confidence=0.93, features=[12.0, 0.0])
    with agent.timer("phone") as t:
        t.confidence = 0.71          # model.score(...)
    agent.close()                    # flushes the last interval into the store

``modelwatch query 'p99(latency) by (segment)'`` (the CLI) then reads the same store.

A scorer that serves what the retraining loop promoted follows the registry with a
``Deployment``: the control, a challenger on its sticky share of the keys, each request
recorded by its variant's agent::

    deployment = modelwatch.Deployment("pii-confidence", data="./modelwatch-data",
                                       loader=lambda info, path: load_model(path))
    variant = deployment.variant_for(request_id)      # None until a control is promoted
    confidence = variant.model.score(text)
    variant.agent.record("email", latency_s=0.0009, confidence=confidence)
"""

import atexit as _atexit
import os as _os
import multiprocessing.util as _mp_util

from ._modelwatch import (
    Agent,
    Deployment,
    Timer,
    Variant,
    drift,
    quality,
    query,
)
from ._modelwatch import after_fork_in_child as _after_fork_in_child
from ._modelwatch import close_all_at_exit as _close_all_at_exit
from ._modelwatch import close_deployments as _close_deployments


def _close_all():
    _close_deployments()
    _close_all_at_exit()


class _Anchor:
    """What multiprocessing's after-fork registry keys our hook on (it holds a weakref)."""


_ANCHOR = _Anchor()


def _close_at_worker_exit(_anchor):
    # A multiprocessing worker ends with os._exit, past atexit; its last step runs the
    # finalizers of its registry, which it empties when it starts (hence registered from
    # its after-fork hooks, which run next), so the agents it used deliver their last interval.
    _mp_util.Finalize(None, _close_all, exitpriority=0)


_mp_util.register_after_fork(_ANCHOR, _close_at_worker_exit)

# A pre-forked server (gunicorn, uwsgi) forks after the application made its agents; the
# child rebuilds each agent on its next call, with its own writer slot in the store.
_os.register_at_fork(after_in_child=_after_fork_in_child)
# At exit (atexit runs these last first): deployments still open stop their refresh threads
# before the interpreter goes and their agents deliver the last interval; so do agents still
# open (a scorer rarely calls close()).
_atexit.register(_close_all_at_exit)
_atexit.register(_close_deployments)

__all__ = ["Agent", "Deployment", "Timer", "Variant", "drift", "quality", "query"]
