"""Create the template's buckets, queues, table and user pool in moto (in-process).

Settings come from ``template.yaml`` through :class:`infra.template.Stack`, so the local stack
and the tests cannot drift from what is deployed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import boto3

from infra.template import REGION, Stack

LOCAL_PASSWORD = "Local-clinician-1!"
LOCAL_CLINICIANS = (
    ("dr.ada@strokelens.local", "Dr Ada Lovelace (local)"),
    ("dr.grace@strokelens.local", "Dr Grace Hopper (local)"),
)


@dataclass
class LocalResources:
    stack: Stack
    uploads_bucket: str
    artifacts_bucket: str
    site_bucket: str
    queue_url: str
    dlq_url: str
    table: str
    rate_table: str = ""
    user_pool_id: str = ""
    client_id: str = ""
    clinicians: list[dict[str, str]] = field(default_factory=list)

    def environment(self) -> dict[str, str]:
        """Every function's environment from the template (they share every variable name)."""
        env = {k: v for fn in self.stack.of_type("AWS::Serverless::Function")
               for k, v in self.stack.function_environment(fn).items()}
        env.update({"AWS_DEFAULT_REGION": REGION, "POWERTOOLS_TRACE_DISABLED": "1"})
        return env


def _bucket(s3: Any, stack: Stack, logical_id: str) -> str:
    props = stack.resolve(stack.props(logical_id))
    name = stack.physical_name(logical_id)
    s3.create_bucket(Bucket=name)
    if "BucketEncryption" in props:
        # CloudFormation's ServerSideEncryptionByDefault is the API's ApplyServerSideEncryptionByDefault.
        rules = [{("ApplyServerSideEncryptionByDefault" if k == "ServerSideEncryptionByDefault" else k): v
                  for k, v in rule.items()} for rule in props["BucketEncryption"]["ServerSideEncryptionConfiguration"]]
        s3.put_bucket_encryption(Bucket=name, ServerSideEncryptionConfiguration={"Rules": rules})
    if "PublicAccessBlockConfiguration" in props:
        s3.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration=props["PublicAccessBlockConfiguration"])
    if "CorsConfiguration" in props:
        rules = [{k: r[k] for k in ("AllowedMethods", "AllowedHeaders", "MaxAge") if k in r}
                 | {"AllowedOrigins": ["*"]}  # the local site's origin is 127.0.0.1:<port>
                 for r in props["CorsConfiguration"]["CorsRules"]]
        s3.put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [
            {("MaxAgeSeconds" if k == "MaxAge" else k): v for k, v in r.items()} for r in rules]})
    if "LifecycleConfiguration" in props:
        rules = []
        for rule in props["LifecycleConfiguration"]["Rules"]:
            out: dict[str, Any] = {"ID": rule.get("Id", "rule"), "Status": rule.get("Status", "Enabled"),
                                   "Filter": {"Prefix": rule.get("Prefix", "")}}
            if "ExpirationInDays" in rule:
                out["Expiration"] = {"Days": int(rule["ExpirationInDays"])}
            rules.append(out)
        s3.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
    return name


def _queue(sqs: Any, stack: Stack, logical_id: str) -> str:
    props = stack.resolve(stack.props(logical_id))
    attributes: dict[str, str] = {}
    for key in ("VisibilityTimeout", "MessageRetentionPeriod", "DelaySeconds", "ReceiveMessageWaitTimeSeconds"):
        if key in props:
            attributes[key] = str(props[key])
    if "RedrivePolicy" in props:
        attributes["RedrivePolicy"] = json.dumps({k: str(v) if k == "maxReceiveCount" else v
                                                  for k, v in props["RedrivePolicy"].items()})
    return sqs.create_queue(QueueName=stack.physical_name(logical_id), Attributes=attributes)["QueueUrl"]


def _table(dynamodb: Any, stack: Stack, logical_id: str) -> str:
    props = stack.resolve(stack.props(logical_id))
    name = stack.physical_name(logical_id)
    kwargs: dict[str, Any] = {"TableName": name, "KeySchema": props["KeySchema"],
                              "AttributeDefinitions": props["AttributeDefinitions"],
                              "BillingMode": props.get("BillingMode", "PAY_PER_REQUEST")}
    if props.get("GlobalSecondaryIndexes"):
        kwargs["GlobalSecondaryIndexes"] = props["GlobalSecondaryIndexes"]
    dynamodb.create_table(**kwargs)
    ttl = props.get("TimeToLiveSpecification")
    if ttl:
        dynamodb.update_time_to_live(TableName=name, TimeToLiveSpecification=ttl)
    if props.get("PointInTimeRecoverySpecification", {}).get("PointInTimeRecoveryEnabled"):
        dynamodb.update_continuous_backups(TableName=name, PointInTimeRecoverySpecification={
            "PointInTimeRecoveryEnabled": True})
    return name


def _user_pool(cognito: Any, stack: Stack) -> tuple[str, str, list[dict[str, str]]]:
    pool = cognito.create_user_pool(PoolName=stack.physical_name("UserPool"),
                                    UsernameAttributes=["email"])["UserPool"]
    flows = list(stack.props("UserPoolClient").get("ExplicitAuthFlows", []))
    # The hosted sign-in (SRP) has no local equivalent; the local login uses password auth.
    client = cognito.create_user_pool_client(UserPoolId=pool["Id"], ClientName=stack.physical_name("UserPoolClient"),
                                             GenerateSecret=False,
                                             ExplicitAuthFlows=flows + ["ALLOW_USER_PASSWORD_AUTH"])["UserPoolClient"]
    clinicians = []
    for email, label in LOCAL_CLINICIANS:
        cognito.admin_create_user(UserPoolId=pool["Id"], Username=email, MessageAction="SUPPRESS",
                                  UserAttributes=[{"Name": "email", "Value": email}, {"Name": "email_verified", "Value": "true"}])
        cognito.admin_set_user_password(UserPoolId=pool["Id"], Username=email, Password=LOCAL_PASSWORD, Permanent=True)
        clinicians.append({"username": email, "label": label})
    return pool["Id"], client["ClientId"], clinicians


def provision(stack: Stack | None = None, *, with_cognito: bool = True) -> LocalResources:
    """Create every stateful resource of the template in the active moto mock."""
    stack = stack or Stack.load()
    s3 = boto3.client("s3", region_name=REGION)
    sqs = boto3.client("sqs", region_name=REGION)
    dynamodb = boto3.client("dynamodb", region_name=REGION)

    dlq = _queue(sqs, stack, "ScanDeadLetterQueue")
    queue = _queue(sqs, stack, "ScanQueue")
    uploads = _bucket(s3, stack, "UploadsBucket")
    resources = LocalResources(
        stack=stack,
        uploads_bucket=uploads,
        artifacts_bucket=_bucket(s3, stack, "ArtifactsBucket"),
        site_bucket=_bucket(s3, stack, "SiteBucket"),
        queue_url=queue,
        dlq_url=dlq,
        table=_table(dynamodb, stack, "ScansTable"),
        rate_table=_table(dynamodb, stack, "RateLimitTable"),
    )
    # S3 -> SQS notifications exactly as the bucket's NotificationConfiguration says.
    notification = stack.resolve(stack.props("UploadsBucket"))["NotificationConfiguration"]
    s3.put_bucket_notification_configuration(Bucket=uploads, NotificationConfiguration={"QueueConfigurations": [
        {"QueueArn": q["Queue"], "Events": [q["Event"]],
         **({"Filter": {"Key": {"FilterRules": q["Filter"]["S3Key"]["Rules"]}}} if "Filter" in q else {})}
        for q in notification["QueueConfigurations"]]})
    if with_cognito:
        resources.user_pool_id, resources.client_id, resources.clinicians = _user_pool(
            boto3.client("cognito-idp", region_name=REGION), stack)
    return resources
