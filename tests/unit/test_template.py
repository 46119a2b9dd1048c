"""The local stack and the tests read their settings from template.yaml; these prove it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3

from infra.template import ROOT

FUNCTIONS = ROOT / "functions" / "strokelens"


def test_table_matches_the_template(resources, stack):
    props = stack.props("ScansTable")
    table = boto3.client("dynamodb").describe_table(TableName=resources.table)["Table"]
    assert table["KeySchema"] == props["KeySchema"]
    assert table["BillingModeSummary"]["BillingMode"] == props["BillingMode"] == "PAY_PER_REQUEST"
    ttl = boto3.client("dynamodb").describe_time_to_live(TableName=resources.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == props["TimeToLiveSpecification"]["AttributeName"] == "expires_at"
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True


def test_queue_redrive_and_visibility_match_the_template(resources, stack):
    attrs = boto3.client("sqs").get_queue_attributes(QueueUrl=resources.queue_url, AttributeNames=["All"])["Attributes"]
    props = stack.props("ScanQueue")
    assert int(attrs["VisibilityTimeout"]) == props["VisibilityTimeout"]
    # AWS guidance: visibility timeout >= 6 x the function timeout when SQS triggers Lambda.
    assert props["VisibilityTimeout"] >= 6 * int(stack.parameters["InferenceTimeoutSeconds"])
    redrive = json.loads(attrs["RedrivePolicy"])
    assert int(redrive["maxReceiveCount"]) == int(stack.parameters["MaxReceiveCount"])
    assert redrive["deadLetterTargetArn"] == stack.arn("ScanDeadLetterQueue")


def test_buckets_are_private_encrypted_and_notify_the_queue(resources):
    s3 = boto3.client("s3")
    for bucket in (resources.uploads_bucket, resources.artifacts_bucket, resources.site_bucket):
        block = s3.get_public_access_block(Bucket=bucket)["PublicAccessBlockConfiguration"]
        assert all(block.values())
        rules = s3.get_bucket_encryption(Bucket=bucket)["ServerSideEncryptionConfiguration"]["Rules"]
        assert rules[0]["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"]
    notification = s3.get_bucket_notification_configuration(Bucket=resources.uploads_bucket)
    (queue,) = notification["QueueConfigurations"]
    assert queue["QueueArn"].endswith(resources.queue_url.rsplit("/", 1)[1])
    assert queue["Filter"]["Key"]["FilterRules"][0]["Value"] == "uploads/"
    lifecycle = s3.get_bucket_lifecycle_configuration(Bucket=resources.uploads_bucket)["Rules"]
    assert lifecycle[0]["Expiration"]["Days"] == int(resources.stack.parameters["UploadRetentionDays"])


def test_every_environment_variable_the_handlers_read_is_set_by_the_template(stack):
    """Both handlers read one Settings (core/settings.py): what it requires every function gets;
    each optional variable is set for at least one function (the rest have code defaults)."""
    source = (FUNCTIONS / "core" / "settings.py").read_text()
    required = set(re.findall(r'env\["([A-Z_]+)"\]', source))
    optional = set(re.findall(r'env\.get\("([A-Z_]+)"', source)) - {"CLAIM_LEASE_SECONDS", "MODEL_DIR", "CLINICAL_MODEL_DIR"}
    assert required and optional
    set_somewhere: set[str] = set()
    for logical_id in ("ApiFunction", "InferenceFunction"):
        env = stack.function_environment(logical_id)
        assert required <= set(env), f"{logical_id} misses {required - set(env)}"
        set_somewhere |= set(env)
        handler = stack.props(logical_id)["Handler"]
        assert Path(FUNCTIONS.parent / (handler.rsplit(".", 1)[0].replace(".", "/") + ".py")).is_file()
        assert "Settings.from_env()" in (FUNCTIONS.parent / (handler.rsplit(".", 1)[0].replace(".", "/") + ".py")).read_text()
    assert optional <= set_somewhere, f"never set: {optional - set_somewhere}"


def test_the_upload_limit_default_is_the_code_limit(stack):
    from strokelens.core.settings import MAX_UPLOAD_BYTES

    assert int(stack.parameters["UploadMaxBytes"]) == MAX_UPLOAD_BYTES


def test_http_api_routes_match_the_api_resolver(stack):
    source = (FUNCTIONS / "api" / "app.py").read_text()
    implemented = {(m.upper(), p.replace("<", "{").replace(">", "}"))
                   for m, p in re.findall(r'@app\.(get|post)\("([^"]+)"\)', source)}
    declared = {(e["Method"].upper(), e["Path"]) for e in stack.function_events("ApiFunction", "HttpApi")}
    assert implemented <= declared
