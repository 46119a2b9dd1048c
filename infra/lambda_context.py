"""Lambda's side of an invocation, for running handlers outside Lambda (local stack, tests).

- :class:`FakeContext`: the context object; :meth:`FakeContext.for_function` gives the one a
  template function gets (name = its logical id, memory and timeout from the template), so
  Powertools' ``function_name``/``function_arn`` keys say which function spoke.
- :func:`load_handler`: import a function's handler module as a new container would. In Lambda
  every function is its own process; locally both run in one. Powertools keys its logger by
  service name and keeps metrics in class-level dicts, and both functions share the service name
  (``POWERTOOLS_SERVICE_NAME`` in the template's Globals), so without this one formatter would
  stamp every line with the keys of whichever function ran last (inference lines said
  ``"function_name": "ApiFunction"``) and one function's flush could publish the other's metrics.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys
import time
import uuid
from dataclasses import dataclass, field
from types import ModuleType
from typing import TYPE_CHECKING, Any, Callable

from infra.template import ACCOUNT_ID, REGION

if TYPE_CHECKING:
    from infra.template import Stack

# Lambda's defaults when neither the function nor Globals set them.
DEFAULT_MEMORY_MB = 128
DEFAULT_TIMEOUT_S = 3


@dataclass
class FakeContext:
    function_name: str = "local"
    memory_limit_in_mb: int = 1024
    timeout_ms: int = 30_000
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    _started: float = field(default_factory=time.monotonic)

    @classmethod
    def for_function(cls, stack: "Stack", logical_id: str) -> "FakeContext":
        """A fresh invocation's context for the template function ``logical_id``."""
        memory, timeout = _function_setting(stack, logical_id, "MemorySize"), _function_setting(stack, logical_id, "Timeout")
        return cls(function_name=logical_id,
                   memory_limit_in_mb=int(memory if memory is not None else DEFAULT_MEMORY_MB),
                   timeout_ms=int(timeout if timeout is not None else DEFAULT_TIMEOUT_S) * 1000)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{self.function_name}"

    @property
    def function_version(self) -> str:
        return "$LATEST"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    def get_remaining_time_in_millis(self) -> int:
        return max(0, self.timeout_ms - int((time.monotonic() - self._started) * 1000))


def _function_setting(stack: "Stack", logical_id: str, name: str) -> Any:
    own = stack.props(logical_id).get(name)
    if own is None:
        own = stack.template.get("Globals", {}).get("Function", {}).get(name)
    return stack.resolve(own)


def load_handler(stack: "Stack", logical_id: str) -> tuple[ModuleType, Callable[[dict, Any], Any]]:
    """Import (or re-import) the module named by the function's ``Handler``; (module, handler).

    While the module initialises, the environment has the function's own variables and
    ``AWS_LAMBDA_FUNCTION_NAME``; afterwards ``AWS_LAMBDA_FUNCTION_NAME`` is put back (one process
    hosts both functions, so no single value would be true at invocation time). Powertools state
    that Lambda would keep per process is made anew for the module (see the module docstring).
    """
    module_name, _, attribute = stack.props(logical_id)["Handler"].rpartition(".")
    environment = stack.function_environment(logical_id)
    scoped = {"AWS_LAMBDA_FUNCTION_NAME": logical_id}
    saved = {name: os.environ.get(name) for name in scoped}
    os.environ.update(environment)
    os.environ.update(scoped)
    try:
        _fresh_powertools_state(environment.get("POWERTOOLS_SERVICE_NAME", "service_undefined"))
        module = importlib.reload(sys.modules[module_name]) if module_name in sys.modules \
            else importlib.import_module(module_name)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return module, getattr(module, attribute)


def _fresh_powertools_state(service: str) -> None:
    """Make the next ``Logger()``/``Metrics()`` start from nothing, as in a new Lambda process."""
    # Powertools' Logger() is logging.getLogger(service) plus a handler and formatter attached to it
    # once; forgetting the name makes the next Logger() build its own (earlier modules keep theirs).
    logging.Logger.manager.loggerDict.pop(service, None)
    try:
        from aws_lambda_powertools.metrics import Metrics
    except ImportError:  # pragma: no cover - Powertools is in every function's requirements
        return
    for store in ("_metrics", "_dimensions", "_metadata", "_default_dimensions"):
        setattr(Metrics, store, {})
