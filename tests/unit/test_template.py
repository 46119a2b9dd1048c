"""The local stack and the tests read their settings from template.yaml; these prove it."""

from __future__ import annotations

import json
import re
from pathlib import Path

import boto3
import pytest

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


def _handler_source(stack, logical_id: str) -> Path:
    handler = stack.props(logical_id)["Handler"]
    return FUNCTIONS.parent / (handler.rsplit(".", 1)[0].replace(".", "/") + ".py")


HANDLERS = ["ApiFunction", "InferenceFunction", "DeadLetterFunction"]


@pytest.mark.parametrize("logical_id", HANDLERS)
def test_every_handler_reads_settings_and_gets_what_settings_requires(stack, logical_id):
    """Every handler reads one Settings (core/settings.py); what it requires every function gets."""
    module = _handler_source(stack, logical_id)
    assert module.is_file(), f"{logical_id}'s handler module {module} is missing"
    assert "Settings.from_env()" in module.read_text()
    required = set(re.findall(r'env\["([A-Z_]+)"\]', (FUNCTIONS / "core" / "settings.py").read_text()))
    env = stack.function_environment(logical_id)
    assert required and required <= set(env), f"{logical_id} misses {required - set(env)}"


def test_every_optional_setting_is_set_for_some_function(stack):
    """The rest have code defaults; each is still set by the template where it matters."""
    source = (FUNCTIONS / "core" / "settings.py").read_text()
    optional = set(re.findall(r'env\.get\("([A-Z_]+)"', source)) - {"CLAIM_LEASE_SECONDS", "MODEL_DIR", "CLINICAL_MODEL_DIR"}
    set_somewhere = set().union(*(stack.function_environment(f) for f in HANDLERS))
    assert optional and optional <= set_somewhere, f"never set: {optional - set_somewhere}"


def test_the_upload_limit_default_is_the_code_limit(stack):
    from strokelens.core.settings import MAX_UPLOAD_BYTES

    assert int(stack.parameters["UploadMaxBytes"]) == MAX_UPLOAD_BYTES


def test_http_api_routes_match_the_api_resolver(stack):
    source = (FUNCTIONS / "api" / "app.py").read_text() + (FUNCTIONS / "api" / "studies.py").read_text()
    implemented = {(m.upper(), p.replace("<", "{").replace(">", "}"))
                   for m, p in re.findall(r'@(?:app|router)\.(get|post)\("([^"]+)"\)', source)}
    assert ("POST", "/studies") in implemented and ("GET", "/studies/{study_id}") in implemented
    declared = {(e["Method"].upper(), e["Path"]) for e in stack.function_events("ApiFunction", "HttpApi")}
    assert implemented <= declared


# ---------------------------------------------------------------- operations (docs/operations.md)

def _functions(stack) -> list[str]:
    return stack.of_type("AWS::Serverless::Function")


def test_every_function_logs_to_its_own_group_with_the_parameter_retention(stack):
    assert set(_functions(stack)) >= {"ApiFunction", "InferenceFunction", "DeadLetterFunction"}
    for logical_id in _functions(stack):
        link = stack.props(logical_id).get("LoggingConfig", {}).get("LogGroup")
        assert isinstance(link, dict) and set(link) == {"Ref"}, f"{logical_id} is not linked to a declared log group"
        group = stack.resources[link["Ref"]]
        assert group["Type"] == "AWS::Logs::LogGroup"
        assert group["Properties"]["RetentionInDays"] == {"Ref": "LogRetentionDays"}
        # Lambda's own naming, so the console, `sam logs` and log insights find it where expected.
        assert stack.resolve(link) == f"/aws/lambda/{stack.physical_name(logical_id)}"
    assert stack.props("HttpApiAccessLogs")["RetentionInDays"] == {"Ref": "LogRetentionDays"}
    retention = stack.template["Parameters"]["LogRetentionDays"]
    assert retention["Default"] == 30 and retention["Default"] in retention["AllowedValues"]


def _alarm_metrics(props: dict) -> list[tuple[str, str, dict]]:
    """(namespace, metric, dimensions) an alarm reads, plain or inside metric math."""
    if "MetricName" in props:
        return [(props["Namespace"], props["MetricName"], {d["Name"]: d["Value"] for d in props.get("Dimensions", [])})]
    out = []
    for query in props.get("Metrics", []):
        if "MetricStat" in query:
            metric = query["MetricStat"]["Metric"]
            out.append((metric["Namespace"], metric["MetricName"],
                        {d["Name"]: d["Value"] for d in metric.get("Dimensions", [])}))
    return out


def test_alarms_watch_the_failure_signals_and_notify_the_topic(stack):
    alarms = {k: stack.props(k) for k in stack.of_type("AWS::CloudWatch::Alarm")}
    watched = {(ns, name, tuple(sorted((k, str(v)) for k, v in dims.items())))
               for props in alarms.values() for ns, name, dims in _alarm_metrics(props)}
    dlq = {"Fn::GetAtt": ["ScanDeadLetterQueue", "QueueName"]}
    expected = [
        ("AWS/SQS", "ApproximateNumberOfMessagesVisible", {"QueueName": dlq}),
        ("AWS/Lambda", "Errors", {"FunctionName": {"Ref": "InferenceFunction"}}),
        ("AWS/Lambda", "Throttles", {"FunctionName": {"Ref": "InferenceFunction"}}),
        ("AWS/Lambda", "Duration", {"FunctionName": {"Ref": "InferenceFunction"}}),
        ("AWS/ApiGateway", "5xx", {"ApiId": {"Ref": "HttpApi"}}),
        ("AWS/Lambda", "Errors", {"FunctionName": {"Ref": "DeadLetterFunction"}}),
    ]
    for ns, name, dims in expected:
        assert (ns, name, tuple(sorted((k, str(v)) for k, v in dims.items()))) in watched, f"no alarm on {ns} {name} {dims}"
    for logical_id, props in alarms.items():
        assert {"Ref": "AlarmTopic"} in props["AlarmActions"], logical_id
        assert props["ComparisonOperator"] == "GreaterThanThreshold"
        assert props.get("TreatMissingData") == "notBreaching", logical_id  # idle is not an incident
        assert str(stack.resolve(props["AlarmName"])).startswith(f"{stack.name}-")  # the key policy's SourceArn
    # E-mail subscription only when an address is given.
    (subscription,) = stack.of_type("AWS::SNS::Subscription")
    assert stack.resources[subscription]["Condition"] == "HasAlarmEmail"
    assert stack.props(subscription)["Endpoint"] == {"Ref": "AlarmEmail"}
    assert stack.template["Parameters"]["AlarmEmail"]["Default"] == ""
    # Encrypted with a key CloudWatch may use (it cannot use the AWS managed aws/sns key).
    key_ref = stack.props("AlarmTopic")["KmsMasterKeyId"]
    key = stack.resources[key_ref["Ref"]]
    assert key["Type"] == "AWS::KMS::Key" and key["Properties"]["EnableKeyRotation"] is True
    grants = [s for s in key["Properties"]["KeyPolicy"]["Statement"]
              if s["Principal"].get("Service") == "cloudwatch.amazonaws.com"]
    assert grants and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(grants[0]["Action"])


@pytest.mark.parametrize("timeout", [5, 30])
def test_duration_alarm_fires_at_80_percent_of_the_configured_timeout(timeout):
    from infra.template import Stack

    stack = Stack.load(InferenceTimeoutSeconds=timeout)
    (props,) = [stack.props(k) for k in stack.of_type("AWS::CloudWatch::Alarm")
                if any(m[1] == "Duration" for m in _alarm_metrics(stack.props(k)))]
    (math,) = [q for q in props["Metrics"] if q.get("ReturnData")]
    (stat,) = [q for q in props["Metrics"] if "MetricStat" in q]
    assert stat["MetricStat"]["Stat"] == "Maximum"
    expression = stack.resolve(math["Expression"])
    assert re.fullmatch(r"[\w\s*/()+.-]+", expression)

    def value(duration_ms: float) -> float:
        return eval(expression, {"__builtins__": {}}, {stat["Id"]: duration_ms})  # noqa: S307 - checked above

    limit_ms = timeout * 1000
    assert value(0.79 * limit_ms) < props["Threshold"] < value(0.81 * limit_ms)


def test_dead_letter_queue_has_a_consumer_that_may_only_touch_scan_records_and_delete_uploads(stack):
    consumers = [f for f in _functions(stack)
                 if any(e["Queue"] == stack.arn("ScanDeadLetterQueue") for e in stack.function_events(f, "SQS"))]
    assert consumers == ["DeadLetterFunction"]
    props = stack.props("DeadLetterFunction")
    assert props["Handler"] == "strokelens.dlq.app.handler"
    (event,) = stack.function_events("DeadLetterFunction", "SQS")
    assert event["BatchSize"] == 10 and event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    env = stack.function_environment("DeadLetterFunction")
    assert env["SCANS_TABLE"] == stack.physical_name("ScansTable")
    assert env["MAX_RECEIVE_COUNT"] == str(stack.parameters["MaxReceiveCount"])
    assert env["UPLOADS_BUCKET"] == stack.function_environment("InferenceFunction")["UPLOADS_BUCKET"]
    (policy,) = props["Policies"]
    assert [sorted(s["Action"]) for s in policy["Statement"]] == [
        ["dynamodb:GetItem", "dynamodb:UpdateItem"], ["s3:DeleteObject"]]
    assert policy["Statement"][0]["Resource"] == {"Fn::GetAtt": ["ScansTable", "Arn"]}
    assert json.dumps(policy["Statement"][1]["Resource"]).endswith('-uploads-${AWS::AccountId}/uploads/*"}')
    # Lambda's SQS guidance again: the queue's visibility timeout >= 6 x the consumer's timeout.
    assert stack.props("ScanDeadLetterQueue")["VisibilityTimeout"] >= 6 * props["Timeout"]
    assert (ROOT / "functions" / "Makefile").read_text().count("build-DeadLetterFunction:") == 1


def test_every_function_that_judges_retries_knows_the_queues_max_receive_count(stack):
    """The API tells a scan still being retried from one given up on by this count; a function without
    it would fall back to a default and say READ_ABORTED while retries are still running."""
    readers = {"InferenceFunction", "ApiFunction", "DeadLetterFunction"}
    for name in readers:
        assert stack.function_environment(name)["MAX_RECEIVE_COUNT"] == str(stack.parameters["MaxReceiveCount"]), name


def test_parameter_ranges_fit_the_code_that_uses_them(stack):
    """Limits in the template that the code depends on: the shortest inference timeout leaves a record
    its start budget, and a study's read at least as long (after the study's write margin); a study's
    deadline (upload lifetime + grace) fits SQS's 900 s maximum delay."""
    from strokelens.api.studies import DEADLINE_GRACE_SECONDS
    from strokelens.inference.study import STUDY_WRITE_MARGIN_MS

    params = stack.template["Parameters"]
    budget_ms = int(stack.function_environment("InferenceFunction")["RECORD_BUDGET_MS"])
    shortest_ms = params["InferenceTimeoutSeconds"]["MinValue"] * 1000
    assert shortest_ms > budget_ms and shortest_ms - STUDY_WRITE_MARGIN_MS >= budget_ms
    assert params["UploadUrlExpiresSeconds"]["MaxValue"] + DEADLINE_GRACE_SECONDS <= 900


def test_traces_do_not_capture_return_values(stack):
    """Powertools Tracer records a traced method's return value by default; the API's hold presigned
    POST fields and clinical inputs."""
    for name in _functions(stack):
        assert stack.function_environment(name)["POWERTOOLS_TRACER_CAPTURE_RESPONSE"] == "false", name


def test_concurrency_is_capped_by_parameters(stack):
    (event,) = stack.props("InferenceFunction")["Events"].values()
    assert event["Type"] == "SQS"
    assert event["Properties"]["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "MaxInferenceConcurrency"}
    param = stack.template["Parameters"]["MaxInferenceConcurrency"]
    assert param["Default"] == 10 and param["MinValue"] == 2  # Lambda's minimum for SQS
    reserved = stack.props("ApiFunction")["ReservedConcurrentExecutions"]
    assert reserved == {"Fn::If": ["HasApiReservedConcurrency", {"Ref": "ApiReservedConcurrency"}, {"Ref": "AWS::NoValue"}]}
    assert stack.template["Parameters"]["ApiReservedConcurrency"]["Default"] == 20


def test_rate_limit_table_expires_its_counters_and_is_wired_into_the_api(stack):
    props = stack.props("RateLimitTable")
    assert props["KeySchema"] == [{"AttributeName": "bucket_key", "KeyType": "HASH"}]
    assert props["AttributeDefinitions"] == [{"AttributeName": "bucket_key", "AttributeType": "S"}]
    assert props["BillingMode"] == "PAY_PER_REQUEST"
    assert props["TimeToLiveSpecification"] == {"AttributeName": "expires_at", "Enabled": True}
    assert props["SSESpecification"]["SSEEnabled"] is True
    assert props["PointInTimeRecoverySpecification"]["PointInTimeRecoveryEnabled"] is True
    env = stack.function_environment("ApiFunction")
    assert env["RATE_TABLE"] == stack.physical_name("RateLimitTable")
    assert env["CREATE_LIMIT_PER_HOUR"] == str(stack.parameters["CreateLimitPerHour"]) == "120"
    statements = stack.props("ApiFunction")["Policies"][0]["Statement"]
    assert any("dynamodb:UpdateItem" in s["Action"] and s["Resource"] == {"Fn::GetAtt": ["RateLimitTable", "Arn"]}
               for s in statements)


def test_sign_in_requires_totp_mfa_and_threat_protection(stack):
    props = stack.props("UserPool")
    assert props["MfaConfiguration"] == "ON"
    assert props["EnabledMfas"] == ["SOFTWARE_TOKEN_MFA"]
    assert props["UserPoolAddOns"]["AdvancedSecurityMode"] == "ENFORCED"
    assert props["UserPoolTier"] == "PLUS"  # threat protection needs the Plus tier


def test_patient_data_buckets_write_access_logs_to_the_audit_bucket(stack):
    policy = stack.props("AccessLogsBucketPolicy")
    assert policy["Bucket"] == {"Ref": "AccessLogsBucket"}
    (grant,) = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Allow"]
    assert grant["Principal"] == {"Service": "logging.s3.amazonaws.com"} and grant["Action"] == "s3:PutObject"
    assert grant["Condition"]["StringEquals"]["aws:SourceAccount"] == {"Ref": "AWS::AccountId"}
    sources = stack.resolve(grant["Condition"]["ArnLike"]["aws:SourceArn"])
    prefix = stack.resolve(grant["Resource"]).split("/", 1)[1].rstrip("*")
    for bucket in ("UploadsBucket", "ArtifactsBucket"):
        logging = stack.props(bucket)["LoggingConfiguration"]
        assert logging["DestinationBucketName"] == {"Ref": "AccessLogsBucket"}
        assert logging["LogFilePrefix"].startswith(prefix)
        assert stack.arn(bucket) in sources
    logs = stack.props("AccessLogsBucket")
    assert logs["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert all(logs["PublicAccessBlockConfiguration"].values())
    assert logs["BucketEncryption"]["ServerSideEncryptionConfiguration"][0]["ServerSideEncryptionByDefault"][
        "SSEAlgorithm"] == "AES256"  # server access logs cannot be delivered to SSE-KMS buckets
    (rule,) = logs["LifecycleConfiguration"]["Rules"]
    assert rule["ExpirationInDays"] == {"Ref": "AccessLogRetentionDays"}
    assert stack.template["Parameters"]["AccessLogRetentionDays"]["Default"] == 365
    deny = [s for s in policy["PolicyDocument"]["Statement"] if s["Effect"] == "Deny"]
    assert deny and deny[0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_every_alarm_has_a_runbook_section(stack):
    doc = (ROOT / "docs" / "operations.md").read_text()
    headings = set(re.findall(r"^### (\S+)$", doc, flags=re.MULTILINE))
    for logical_id in stack.of_type("AWS::CloudWatch::Alarm"):
        props = stack.props(logical_id)
        name = stack.resolve(props["AlarmName"]).removeprefix(f"{stack.name}-")
        assert name in headings, f"docs/operations.md has no section for the {name} alarm"
        assert f"docs/operations.md#{name})" in props["AlarmDescription"]


def test_the_inference_function_only_reads_and_deletes_uploads(stack):
    """Least privilege on raw uploads: read one, delete it once final, and list the bucket only so a
    missing key answers 404 (a scan's deadline asks); the uploads bucket is not versioned, so no
    version-level action is granted."""
    (policy,) = stack.props("InferenceFunction")["Policies"]
    on_uploads = [s for s in policy["Statement"] if "-uploads-" in json.dumps(s["Resource"])]
    assert [sorted(s["Action"]) for s in on_uploads] == [["s3:DeleteObject", "s3:GetObject"], ["s3:ListBucket"]]
    assert json.dumps(on_uploads[0]["Resource"]).endswith('/uploads/*"}')
    assert json.dumps(on_uploads[1]["Resource"]).endswith('-uploads-${AWS::AccountId}"}')
    env = stack.function_environment("InferenceFunction")
    assert env["UPLOAD_URL_EXPIRES"] == stack.function_environment("ApiFunction")["UPLOAD_URL_EXPIRES"]
    assert "VersioningConfiguration" not in stack.props("UploadsBucket")
