"""Locally both Lambda functions run in one process; their logs must still say which one spoke.

In Lambda, ApiFunction and InferenceFunction are separate processes, each with its own
Powertools logger and metric store, and their context names them by the template's logical id.
"""

from __future__ import annotations

import io
import json
import os

import pytest
import requests

from tests.integration.test_local_stack import create, login, post_file, wait_final


@pytest.fixture(scope="module")
def local():
    from infra.run_local import LocalStack

    with LocalStack(port=0) as stack:
        yield stack


def test_each_handler_logs_under_its_own_function_name(local, ct_png):
    streams = {}
    for name, module in (("api", local.api), ("inference", local.inference)):
        handler = module.logger.registered_handler
        streams[name] = (handler, handler.setStream(io.StringIO()))
    assert streams["api"][0] is not streams["inference"][0], "one log handler per function, as in Lambda"
    try:
        ada = login(local, 0)
        scan = create(local, ada)
        assert post_file(scan, ct_png).status_code == 204
        assert wait_final(local, ada, scan["scan_id"])["status"] == "DONE"  # API calls while inference runs
        requests.get(f"{local.url}/api/scans", headers=ada, timeout=10)  # and one after it
        lines = [json.loads(line) for line in streams["inference"][0].stream.getvalue().splitlines() if line]
    finally:
        for handler, original in streams.values():
            handler.setStream(original)

    read = [line for line in lines if line.get("message") == "Scan read"]
    assert read and read[0]["function_name"] == "InferenceFunction", lines
    assert read[0]["function_arn"].endswith(":function:InferenceFunction")
    assert read[0]["function_memory_size"] == 1024  # the template's MemorySize for InferenceFunction
    # What each function's next log line would carry, after the API ran last.
    api_keys, inference_keys = local.api.logger.get_current_keys(), local.inference.logger.get_current_keys()
    assert (api_keys["function_name"], api_keys["function_memory_size"]) == ("ApiFunction", 256)
    assert inference_keys["function_name"] == "InferenceFunction"
    assert "correlation_id" not in inference_keys, "the API's request id is not the inference's"
    assert local.api.metrics.provider.metric_set is not local.inference.metrics.provider.metric_set


def test_no_single_function_name_is_claimed_for_the_whole_process(local):
    assert "AWS_LAMBDA_FUNCTION_NAME" not in os.environ
    assert os.environ["POWERTOOLS_SERVICE_NAME"] == "strokelens"  # the template's, for both functions
