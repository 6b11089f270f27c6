"""OpenAPI descriptions of /collect, /api/v1/records and /api/v1/forget (served by plain routes, see
collect_routes): pydantic models used for the document only."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic import BaseModel, Field


class Visit(BaseModel):
    """A visit (SPEC section 2.1); every accepted spelling is described in the README."""

    openid: str = Field(max_length=128)
    time: str | int | float = Field(description="ISO 8601 with an offset, or epoch s / ms")
    event_id: str | None = Field(None, max_length=128, description="idempotency key")
    appid: str | None = Field(None, description="defaults to the request's app")
    ip: str | None = Field(None, description="/collect: defaults to the connection's address")
    province: str | int | None = None
    city: str | int | None = None
    platform: str | None = Field(None, description="ios, android, ohos, windows, mac, devtools")
    brand: str | None = None
    model: str | None = None
    user_agent: str | None = None
    gender: str | int | None = None
    age: int | None = Field(None, ge=0, le=150)


class Record(Visit):
    kind: str = Field("visit", description="visit or profile (profiles: openid, time, gender, age)")
    time: str | int | float | None = Field(None, description="required for visits")


class Rejected(BaseModel):
    index: int
    reason: str


class Answer(BaseModel):
    """The fate of every record of the request; sent once they are on disk."""

    errcode: int = 0
    accepted: int
    duplicates: int
    filtered: int
    rejected: list[Rejected]


class ForgetRequest(BaseModel):
    openids: list[str] = Field(min_length=1, max_length=10_000, description="users to erase")


class Erased(BaseModel):
    users: int = Field(description="users found and erased (unknown openids: 0, not an error)")
    visits: int
    profiles: int


class ForgetAnswer(BaseModel):
    """Sent once the erasure is durable."""

    errcode: int = 0
    erased: Erased


class Refusal(BaseModel):
    errcode: int = Field(description="40013, 41002, 44002, 47001, 45011 (HTTP 429), -1 (HTTP 503)")
    errmsg: str


def _path(summary: str, body: dict, params: list[dict], answer: str = "Answer") -> dict:
    return {
        "post": {
            "summary": summary,
            "parameters": params,
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": {
                    "description": "the records' fate, or a refusal",
                    "content": {
                        "application/json": {
                            "schema": {
                                "oneOf": [
                                    {"$ref": f"#/components/schemas/{answer}"},
                                    {"$ref": "#/components/schemas/Refusal"},
                                ]
                            }
                        }
                    },
                },
                "429": {"description": "rate limited (errcode 45011); retry after a second"},
                "503": {"description": "not stored; send the same records again"},
            },
        }
    }


def install_openapi(app: FastAPI) -> None:
    """Add the two collection routes to the app's generated OpenAPI document."""

    def openapi() -> dict:
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        comps = schema.setdefault("components", {}).setdefault("schemas", {})
        models = (Visit, Record, Rejected, Answer, Refusal, ForgetRequest, Erased, ForgetAnswer)
        for model in models:
            comps[model.__name__] = model.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
        one_or_many = lambda name: {  # noqa: E731
            "oneOf": [
                {"type": "array", "items": {"$ref": f"#/components/schemas/{name}"}},
                {"$ref": f"#/components/schemas/{name}"},
            ]
        }
        app_param = {"name": "appid", "in": "query", "schema": {"type": "string"}}
        token = {
            "name": "access_token",
            "in": "query",
            "required": True,
            "schema": {"type": "string"},
        }
        schema["paths"]["/collect"] = _path(
            "Beacon: visits of one app from devices and H5 pages (public, CORS, ≤ 500 a request)",
            one_or_many("Visit"),
            [app_param],
        )
        schema["paths"]["/api/v1/records"] = _path(
            "Server to server: visits and profiles of the token's app (≤ 10,000 a request)",
            one_or_many("Record"),
            [token],
        )
        schema["paths"]["/api/v1/forget"] = _path(
            "Erase users of the token's app from everything stored (PIPL art. 47)",
            {"$ref": "#/components/schemas/ForgetRequest"},
            [token],
            answer="ForgetAnswer",
        )
        add_links(schema)
        app.openapi_schema = schema
        return schema

    app.openapi = openapi


def _operation_id(schema: dict, path: str, method: str) -> str:
    return schema["paths"][path][method]["operationId"]


def add_links(schema: dict) -> None:
    """OpenAPI links, so that a client (or a stateful fuzzer) can follow the workflow: sign in,
    then read the session and the portrait ending on the app's ``yesterday`` (the session is the
    cookie the sign-in sets)."""
    paths = schema["paths"]
    if "/api/v1/session" not in paths:
        return
    end = "$response.body#/yesterday"
    links = {
        "GetSession": {"operationId": _operation_id(schema, "/api/v1/session", "get")},
        "GetPortrait": {
            "operationId": _operation_id(schema, "/api/v1/portrait", "get"),
            "parameters": {"end": end},
        },
        "GetPortraitCsv": {
            "operationId": _operation_id(schema, "/api/v1/portrait.csv", "get"),
            "parameters": {"end": end},
        },
    }
    for method in ("post", "get"):
        ok = paths["/api/v1/session"][method]["responses"]["200"]
        ok["links"] = {k: v for k, v in links.items() if method == "post" or k != "GetSession"}
