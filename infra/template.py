"""Read ``template.yaml`` so the local stack and the tests use the deployed settings.

Only what the local stack needs is resolved: parameter defaults, ``!Ref``, ``!GetAtt X.Arn``
and ``!Sub`` over pseudo parameters and resources. Physical names follow one rule: an explicit
``BucketName``/``QueueName``/``TableName``/``FunctionName``/``LogGroupName`` is resolved,
anything else is ``<stack>-<logical id in lower case>``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE_PATH = ROOT / "template.yaml"
ACCOUNT_ID = "123456789012"  # moto's default account
REGION = "us-east-1"

_NAME_PROPERTY = {"AWS::S3::Bucket": "BucketName", "AWS::SQS::Queue": "QueueName",
                  "AWS::DynamoDB::Table": "TableName", "AWS::Serverless::Function": "FunctionName",
                  "AWS::Logs::LogGroup": "LogGroupName"}
_ARN = {"AWS::SQS::Queue": "arn:aws:sqs:{region}:{account}:{name}",
        "AWS::S3::Bucket": "arn:aws:s3:::{name}",
        "AWS::DynamoDB::Table": "arn:aws:dynamodb:{region}:{account}:table/{name}"}


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps CloudFormation's short-form tags as {"Fn::X": value} / {"Ref": v}."""


def _tag(loader: yaml.Loader, tag_suffix: str, node: yaml.Node) -> dict:
    if isinstance(node, yaml.ScalarNode):
        value: Any = loader.construct_scalar(node)
    elif isinstance(node, yaml.SequenceNode):
        value = loader.construct_sequence(node, deep=True)
    else:
        value = loader.construct_mapping(node, deep=True)
    if tag_suffix == "Ref":
        return {"Ref": value}
    if tag_suffix == "GetAtt" and isinstance(value, str):
        value = value.split(".", 1)
    return {f"Fn::{tag_suffix}": value}


_Loader.add_multi_constructor("!", _tag)


def load_template(path: Path = TEMPLATE_PATH) -> dict:
    return yaml.load(path.read_text(), Loader=_Loader)


@dataclass
class Stack:
    """The template resolved for a local stack called ``name``."""

    template: dict
    name: str = "strokelens-local"
    parameters: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, name: str = "strokelens-local", **overrides: Any) -> "Stack":
        template = load_template()
        params = {k: v.get("Default") for k, v in template.get("Parameters", {}).items()}
        params.update(overrides)
        return cls(template=template, name=name, parameters=params)

    @property
    def resources(self) -> dict[str, dict]:
        return self.template["Resources"]

    def props(self, logical_id: str) -> dict:
        return self.resources[logical_id].get("Properties", {})

    def of_type(self, cfn_type: str) -> list[str]:
        return [k for k, v in self.resources.items() if v["Type"] == cfn_type]

    def physical_name(self, logical_id: str) -> str:
        resource = self.resources[logical_id]
        explicit = resource.get("Properties", {}).get(_NAME_PROPERTY.get(resource["Type"], ""))
        if explicit is not None:
            return str(self.resolve(explicit))
        return f"{self.name}-{logical_id.lower()}"

    def arn(self, logical_id: str) -> str:
        pattern = _ARN[self.resources[logical_id]["Type"]]
        return pattern.format(region=REGION, account=ACCOUNT_ID, name=self.physical_name(logical_id))

    def _ref(self, name: str) -> Any:
        pseudo = {"AWS::StackName": self.name, "AWS::AccountId": ACCOUNT_ID, "AWS::Region": REGION,
                  "AWS::Partition": "aws", "AWS::URLSuffix": "amazonaws.com"}
        if name in pseudo:
            return pseudo[name]
        if name in self.parameters:
            return self.parameters[name]
        if self.resources.get(name, {}).get("Type") == "AWS::SQS::Queue":  # Ref of a queue is its URL
            return f"https://sqs.{REGION}.amazonaws.com/{ACCOUNT_ID}/{self.physical_name(name)}"
        return self.physical_name(name)

    def resolve(self, value: Any) -> Any:
        """Resolve intrinsic functions the local stack can know; leave others as they are."""
        if isinstance(value, list):
            return [self.resolve(v) for v in value]
        if not isinstance(value, dict):
            return value
        if set(value) == {"Ref"}:
            return self._ref(value["Ref"])
        if set(value) == {"Fn::GetAtt"}:
            logical_id, attribute = value["Fn::GetAtt"]
            return self.arn(logical_id) if attribute == "Arn" else self.physical_name(logical_id)
        if set(value) == {"Fn::Sub"}:
            text = value["Fn::Sub"] if isinstance(value["Fn::Sub"], str) else value["Fn::Sub"][0]
            return re.sub(r"\$\{([^}]+)\}", lambda m: str(self.resolve(
                {"Fn::GetAtt": m.group(1).split(".", 1)} if "." in m.group(1) else {"Ref": m.group(1)})), text)
        return {k: self.resolve(v) for k, v in value.items()}

    def function_environment(self, logical_id: str) -> dict[str, str]:
        """Globals + the function's own environment variables, resolved."""
        glob = self.template.get("Globals", {}).get("Function", {}).get("Environment", {}).get("Variables", {})
        own = self.props(logical_id).get("Environment", {}).get("Variables", {})
        return {k: str(self.resolve(v)) for k, v in {**glob, **own}.items()}

    def function_events(self, logical_id: str, event_type: str) -> list[dict]:
        events = self.props(logical_id).get("Events", {})
        return [self.resolve(e["Properties"]) for e in events.values() if e["Type"] == event_type]
