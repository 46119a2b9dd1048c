"""Write ``web/config.json`` from a deployed stack's outputs.

    python infra/site_config.py STACK_NAME [--region us-east-1] [--out web/config.json]

The site reads this file at start-up to find the API and the Cognito user pool.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "web" / "config.json"


def stack_outputs(stack_name: str, region: str | None = None, client: Any = None) -> dict[str, str]:
    """The stack's Outputs as {OutputKey: OutputValue}."""
    if client is None:
        import boto3

        client = boto3.client("cloudformation", region_name=region)
    stack = client.describe_stacks(StackName=stack_name)["Stacks"][0]
    return {o["OutputKey"]: o["OutputValue"] for o in stack.get("Outputs", [])}


def site_config(outputs: dict[str, str], region: str) -> dict[str, Any]:
    return {
        "apiUrl": outputs["ApiUrl"],
        "auth": {"mode": "cognito", "region": region, "userPoolId": outputs["UserPoolId"],
                 "clientId": outputs["UserPoolClientId"], "domain": outputs["UserPoolDomain"],
                 "redirectUri": outputs["SiteUrl"].rstrip("/") + "/"},
    }


def write_site_config(stack_name: str, region: str | None = None, out: Path = DEFAULT_OUT,
                      client: Any = None) -> dict[str, Any]:
    outputs = stack_outputs(stack_name, region, client)
    # A user pool id is "<region>_<id>": the most reliable source of the pool's region.
    config = site_config(outputs, region or outputs["UserPoolId"].split("_", 1)[0])
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(config, indent=2) + "\n")
    return config


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("stack_name")
    parser.add_argument("--region", default=None, help="defaults to the AWS CLI/SDK configuration")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    print(json.dumps(write_site_config(args.stack_name, args.region, args.out)))


if __name__ == "__main__":
    main()
