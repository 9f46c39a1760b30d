"""Employee service: CRUD on ERP employees behind an API Gateway HTTP API (payload format 2.0).

Errors are JSON {"message", "field"?}; anything unexpected becomes a generic 500 so that
SQL and stack traces stay in the logs and never reach the client.
"""

import os
from http import HTTPStatus

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayHttpResolver, Response, content_types
from aws_lambda_powertools.event_handler.exceptions import NotFoundError
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEventV2

# isort: split
# Modules beside this file (the asset root is the import root in Lambda), so first-party.
import repository
from db import Database, Settings
from repository import DuplicateEmail
from validation import (
    ApiError,
    decode_cursor,
    encode_cursor,
    parse_id,
    parse_json_object,
    parse_limit,
    validate_employee,
)

tracer = Tracer(patch_modules=["pymysql", "botocore"])
logger = Logger()
metrics = Metrics()
app = APIGatewayHttpResolver()

MAX_BODY_BYTES = int(os.environ.get("MAX_BODY_BYTES", 16 * 1024))

# Module level so the cached secret and connection outlive a single invocation.
# Tests replace it with a fresh instance to simulate a new container.
db = Database(Settings.from_env(), setup=repository.create_schema)


@app.get("/api/employees")
def list_employees():
    event = app.current_event
    limit = parse_limit(event.get_query_string_value("limit"))
    after_id = decode_cursor(event.get_query_string_value("cursor"))
    rows = repository.list_after(db.connection(), after_id, limit + 1)  # one extra: is there a next page?
    items = rows[:limit]
    next_cursor = encode_cursor(items[-1]["id"]) if len(rows) > limit else None
    return {"items": items, "next_cursor": next_cursor}


@app.get("/api/employees/<employee_id>")
def get_employee(employee_id: str):
    return _existing(repository.get(db.connection(), parse_id(employee_id)))


@app.post("/api/employees")
def create_employee():
    employee = repository.create(db.connection(), validate_employee(_json_body(), partial=False))
    metrics.add_metric(name="EmployeesCreated", unit=MetricUnit.Count, value=1)
    logger.info("Employee created", extra={"employee_id": employee["id"]})
    # Built from rawPath so that a stage prefix in the URL is kept.
    location = f"{app.current_event.raw_path.rstrip('/')}/{employee['id']}"
    return Response(HTTPStatus.CREATED, content_types.APPLICATION_JSON, employee, headers={"Location": location})


@app.put("/api/employees/<employee_id>")
def replace_employee(employee_id: str):
    return _update(parse_id(employee_id), validate_employee(_json_body(), partial=False))


@app.patch("/api/employees/<employee_id>")
def patch_employee(employee_id: str):
    employee_id = parse_id(employee_id)
    fields = validate_employee(_json_body(), partial=True)
    if not fields:
        raise ApiError(HTTPStatus.BAD_REQUEST, "Request body must contain at least one field")
    return _update(employee_id, fields)


@app.delete("/api/employees/<employee_id>")
def delete_employee(employee_id: str):
    employee_id = parse_id(employee_id)
    if not repository.delete(db.connection(), employee_id):
        raise _not_found()
    metrics.add_metric(name="EmployeesDeleted", unit=MetricUnit.Count, value=1)
    logger.info("Employee deleted", extra={"employee_id": employee_id})
    return Response(HTTPStatus.NO_CONTENT, content_type=None, body=None)


def _update(employee_id: int, fields: dict) -> dict:
    conn = db.connection()
    if not repository.update(conn, employee_id, fields):
        raise _not_found()
    metrics.add_metric(name="EmployeesUpdated", unit=MetricUnit.Count, value=1)
    logger.info("Employee updated", extra={"employee_id": employee_id, "fields": sorted(fields)})
    return _existing(repository.get(conn, employee_id))


def _json_body() -> dict:
    event = app.current_event
    return parse_json_object(event.body, bool(event.is_base64_encoded), MAX_BODY_BYTES)


def _existing(employee: dict | None) -> dict:
    if employee is None:
        raise _not_found()
    return employee


def _not_found() -> ApiError:
    return ApiError(HTTPStatus.NOT_FOUND, "Employee not found", "id")


def _error(status: HTTPStatus, message: str, field: str | None = None) -> Response:
    body = {"message": message} if field is None else {"message": message, "field": field}
    return Response(status, content_types.APPLICATION_JSON, body)


@app.exception_handler(ApiError)
def _client_error(exc: ApiError) -> Response:
    return _error(exc.status, exc.message, exc.field)


@app.exception_handler(DuplicateEmail)
def _duplicate_email(_exc: DuplicateEmail) -> Response:
    return _error(HTTPStatus.CONFLICT, "An employee with this email already exists", "email")


@app.not_found
def _no_route(_exc: NotFoundError) -> Response:
    return _error(HTTPStatus.NOT_FOUND, "Route not found")


@app.exception_handler(Exception)
def _unexpected(_exc: Exception) -> Response:
    logger.exception("Unhandled error")
    return _error(HTTPStatus.INTERNAL_SERVER_ERROR, "Internal server error")


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # responses carry personal data
@metrics.log_metrics(capture_cold_start_metric=True)
def handler(event: dict, context) -> dict:
    caller = APIGatewayProxyEventV2(event).request_context.authorizer.jwt_claim.get("sub")
    if caller:
        logger.append_keys(caller=caller)  # who did it, for the audit trail
    return app.resolve(event, context)
