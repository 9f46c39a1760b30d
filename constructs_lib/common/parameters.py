"""SSM parameters under /erp/{env}/: where deploy tooling and runbooks look things up."""

from __future__ import annotations

from aws_cdk import aws_ssm as ssm
from constructs import Construct


class EnvParameters(Construct):
    """Publishes name -> value pairs below one prefix; the names are part of the operators' contract."""

    def __init__(self, scope: Construct, id: str, *, prefix: str, values: dict[str, str]) -> None:
        super().__init__(scope, id)
        self.parameters = {
            key: ssm.StringParameter(self, key.replace("/", "-"), parameter_name=f"{prefix}/{key}", string_value=value)
            for key, value in values.items()
        }
