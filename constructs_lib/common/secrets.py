"""Secrets Manager secrets the stacks create with a generated first value."""

from __future__ import annotations

from aws_cdk import aws_secretsmanager as secretsmanager
from constructs import Construct

from constructs_lib.common.policies import retain_fixed_name


def generated_json_secret(
    scope: Construct,
    id: str,
    *,
    secret_name: str,
    description: str,
    key: str,
    production: bool,
    **generator,
) -> secretsmanager.Secret:
    """A fixed-name secret holding `{key: <generated>}`; `generator` tunes the generated string.

    The name is fixed (consumers look it up by name), so production keeps it when the stack goes.
    """
    return secretsmanager.Secret(
        scope,
        id,
        secret_name=secret_name,
        description=description,
        generate_secret_string=secretsmanager.SecretStringGenerator(
            secret_string_template="{}", generate_string_key=key, **generator
        ),
        removal_policy=retain_fixed_name(production),
    )
