"""erp/{env}/mongodb: the MongoDB URI approval-request-service reads, with no value in git.

The stack creates the secret with a placeholder (a random string under a key the services never read and
no `uri` at all), so nothing connects anywhere until an operator writes the real URI:

    aws secretsmanager put-secret-value --secret-id erp/dev/mongodb \
      --secret-string '{"uri": "<the mongodb+srv:// URI from your provider, database erp>"}'

Until then External Secrets cannot find the `uri` property and the pod stays in CreateContainerConfigError;
an empty or non-mongodb value stops it in its init container with a message naming this secret.
"""

from __future__ import annotations

from constructs import Construct

from constructs_lib.common.nag import acknowledge
from constructs_lib.common.secrets import generated_json_secret
from k8s_charts import names

URI_KEY = names.MONGODB_SECRET_JSON_KEY
PLACEHOLDER_KEY = "placeholder"


class MongoDbUriSecret(Construct):
    def __init__(self, scope: Construct, id: str, *, secret_name: str, production: bool) -> None:
        super().__init__(scope, id)
        # Typed in by an operator: production keeps it when the stack goes; dev sets it again.
        self.secret = generated_json_secret(
            self,
            "Secret",
            secret_name=secret_name,
            description='MongoDB URI for approval-request-service: set the "uri" key by hand (README: Deploy)',
            key=PLACEHOLDER_KEY,
            production=production,
            password_length=16,
        )
        acknowledge(
            self.secret,
            "AwsSolutions-SMG4",
            "The URI (with its credentials) is issued by the MongoDB provider; rotating it is done there.",
        )
