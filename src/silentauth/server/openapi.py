"""The service's OpenAPI 3.1 document, served at ``GET /openapi.json``.

The document is hand-written rather than generated from the routes, because
what matters to clients (and to the schemathesis run in ``tests/fuzz``) is
what the service promises: every status a route may answer with and the exact
shape of each body, errors included. A response outside this document is a bug.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from silentauth import __version__

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _errors(*codes: int) -> dict[str, Any]:
    text = {
        400: "Malformed request or rejected grant (RFC 6749 §5.2), or a Bearer header without a token (RFC 6750 §3.1).",
        401: "Missing, invalid, expired or revoked bearer token (RFC 6750), failed client authentication (invalid_client, RFC 6749 §5.2), or a wrong service credential.",
        403: "CSRF proof missing or wrong, Origin missing or foreign, or insufficient scope.",
        404: "No such resource.",
        413: "The request body is too large.",
        415: "The body is not application/json.",
        429: "Rate limited; see Retry-After.",
        503: "The store, the identity provider or a hook is unavailable; see Retry-After.",
    }
    return {str(c): _error(text[c]) for c in codes}


_STR = {"type": "string"}
_NUM = {"type": "number"}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error", "error_description"],
        "properties": {"error": _STR, "error_description": _STR, "max_age": {"type": "integer"}},
    },
    "TokenResponse": {
        "type": "object",
        # No refresh_token when a lifetime hook gives the client none (RFC 6749 §5.1: optional).
        "required": ["access_token", "token_type", "expires_in", "scope"],
        "properties": {
            "access_token": _STR,
            "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer", "minimum": 0},
            "refresh_token": _STR,
            "scope": _STR,
            # Password grant only: send it back as ``device_token`` on this device's next login.
            "device_token": _STR,
        },
        "additionalProperties": False,
    },
    "StartedSession": {
        "type": "object",
        "required": ["session_id", "access_token", "token_type", "expires_in", "scope", "csrf_token", "set_cookie"],
        "properties": {
            "session_id": _STR,
            "access_token": _STR,
            "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer", "minimum": 0},
            "refresh_token": _STR,
            "scope": _STR,
            "csrf_token": _STR,
            "set_cookie": {"type": "array", "items": _STR},
        },
        "additionalProperties": False,
    },
    "ServiceSession": {
        "type": "object",
        "required": ["id", "user_id", "client_id", "created", "last_used", "expires_at", "user_agent", "ip"],
        "properties": {
            "id": _STR,
            "user_id": _STR,
            "client_id": _STR,
            "created": _NUM,
            "last_used": _NUM,
            "expires_at": _NUM,
            "user_agent": _STR,
            "ip": _STR,
        },
    },
    "BrowserTokenResponse": {
        "type": "object",
        "required": ["access_token", "token_type", "expires_in", "scope", "csrf_token"],
        "properties": {
            "access_token": _STR,
            "token_type": {"const": "Bearer"},
            "expires_in": {"type": "integer", "minimum": 0},
            "scope": _STR,
            "csrf_token": _STR,
        },
        # The refresh token travels only in the HttpOnly cookie, never here.
        "additionalProperties": False,
    },
    "Session": {
        "type": "object",
        "required": ["id", "created", "last_used", "user_agent", "current"],
        "properties": {
            "id": _STR,
            "created": _NUM,
            "last_used": _NUM,
            "user_agent": _STR,
            "ip": _STR,
            "client_id": _STR,
            "expires_at": _NUM,
            "current": {"type": "boolean"},
        },
    },
    "JWKS": {
        "type": "object",
        "required": ["keys"],
        "properties": {"keys": {"type": "array", "items": {"type": "object"}}},
    },
    "Me": {
        "type": "object",
        "required": ["sub", "username", "session_id", "exp"],
        "properties": {
            "sub": _STR,
            "username": _STR,
            "session_id": _STR,
            "exp": _NUM,
            "scope": _STR,
            "auth_time": _NUM,
        },
    },
}

_BEARER: list[dict[str, list[str]]] = [{"bearerAuth": []}]
# /auth/service/*: the application's back end, never a user (SERVICE_CREDENTIAL).
_SERVICE: list[dict[str, list[str]]] = [{"serviceCredential": []}]
_CSRF_HEADER = {
    "name": "X-CSRF-Token",
    "in": "header",
    "required": False,
    "description": "The csrf_token of the login/refresh answer (double submit, bound to the session).",
    "schema": _STR,
}
_IDEMPOTENCY_HEADER = {
    "name": "Idempotency-Key",
    "in": "header",
    "required": False,
    "description": (
        "Refresh only: 22-128 base64url characters (>= 128 random bits), optionally quoted "
        "(IETF httpapi Idempotency-Key draft). A retry of the same refresh token with the same "
        "key gets the same successor while that successor is unused."
    ),
    "schema": _STR,
}
_REFRESH_COOKIE = {
    "name": "silentauth-refresh",
    "in": "cookie",
    "required": False,
    "description": "The HttpOnly refresh cookie (__Host-silentauth-refresh, Path=/, when cookie_secure).",
    "schema": _STR,
}
_ORIGIN_HEADER = {
    "name": "Origin",
    "in": "header",
    "required": False,
    "description": (
        "Required whenever the session cookies are set or read: this service's own origin "
        "or one of CORS_ORIGINS (browsers send it on every POST)."
    ),
    "schema": _STR,
}
_NO_CONTENT = {"204": {"description": "Done; the session cookies are cleared."}}

PATHS: dict[str, Any] = {
    "/auth/token": {
        "post": {
            "summary": "RFC 6749 token endpoint: password and refresh_token grants.",
            "operationId": "token",
            "parameters": [_IDEMPOTENCY_HEADER],
            "requestBody": {
                "required": True,
                "content": {
                    FORM: {
                        "schema": {
                            "type": "object",
                            "required": ["grant_type"],
                            "properties": {
                                "grant_type": {"enum": ["password", "refresh_token"]},
                                "username": _STR,
                                "password": _STR,
                                "refresh_token": _STR,
                                "scope": _STR,
                                "client_id": _STR,
                                "device_token": _STR,
                                "remember": {"enum": ["true", "false"]},
                                "client_secret": _STR,
                                # RFC 8707; may be repeated (one URI per parameter).
                                "resource": _STR,
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_ref("TokenResponse"), "Tokens issued (RFC 6749 §5.1)."),
                **_errors(400, 401, 413, 429, 503),
            },
        }
    },
    "/auth/login": {
        "post": {
            "summary": "Browser login; the refresh token is set as an HttpOnly cookie.",
            "operationId": "login",
            "parameters": [_ORIGIN_HEADER],
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "required": ["username", "password"],
                            "properties": {
                                "username": _STR,
                                "password": _STR,
                                "scope": _STR,
                                "remember": {"type": "boolean"},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(_ref("BrowserTokenResponse"), "Logged in; cookies set."),
                **_errors(400, 403, 413, 415, 429, 503),
            },
        }
    },
    "/auth/refresh": {
        "post": {
            "summary": "Browser refresh: refresh cookie plus CSRF proof; the cookie rotates.",
            "operationId": "refresh",
            "parameters": [_CSRF_HEADER, _IDEMPOTENCY_HEADER, _REFRESH_COOKIE, _ORIGIN_HEADER],
            "responses": {
                "200": _json(_ref("BrowserTokenResponse"), "Refreshed; cookie rotated."),
                **_errors(400, 403, 415, 429, 503),
            },
        }
    },
    "/auth/logout": {
        "post": {
            "summary": "End this session, by refresh cookie (with CSRF proof) or bearer token.",
            "operationId": "logout",
            "parameters": [_CSRF_HEADER, _REFRESH_COOKIE, _ORIGIN_HEADER],
            "security": [{}, *_BEARER],
            "responses": {**_NO_CONTENT, **_errors(400, 401, 403, 415, 503)},
        }
    },
    "/auth/logout-all": {
        "post": {
            "summary": "End every session of the user.",
            "operationId": "logoutAll",
            "security": _BEARER,
            "responses": {**_NO_CONTENT, **_errors(400, 401, 503)},
        }
    },
    "/auth/sessions": {
        "get": {
            "summary": "The user's live sessions (devices).",
            "operationId": "listSessions",
            "security": _BEARER,
            "responses": {
                "200": _json({"type": "array", "items": _ref("Session")}, "The sessions."),
                **_errors(400, 401, 503),
            },
        }
    },
    "/auth/sessions/{session_id}": {
        "delete": {
            "summary": "Log one device out.",
            "operationId": "deleteSession",
            "security": _BEARER,
            "parameters": [{"name": "session_id", "in": "path", "required": True, "schema": _STR}],
            "responses": {
                "204": {"description": "That session is revoked."},
                **_errors(400, 401, 404, 503),
            },
        }
    },
    "/auth/revoke": {
        "post": {
            "summary": "RFC 7009 token revocation; 200 for every well-formed request.",
            "operationId": "revoke",
            "requestBody": {
                "required": True,
                "content": {
                    FORM: {
                        "schema": {
                            "type": "object",
                            "required": ["token"],
                            "properties": {
                                "token": _STR,
                                "token_type_hint": {"enum": ["access_token", "refresh_token"]},
                            },
                        }
                    }
                },
            },
            "responses": {"200": {"description": "Revoked (or nothing to revoke)."}, **_errors(400, 401, 413, 503)},
        }
    },
    "/auth/introspect": {
        "post": {
            "summary": "RFC 7662 token introspection, for registered confidential clients.",
            "operationId": "introspect",
            "requestBody": {
                "required": True,
                "content": {
                    FORM: {
                        "schema": {
                            "type": "object",
                            "required": ["token"],
                            "properties": {
                                "token": _STR,
                                "token_type_hint": {"enum": ["access_token", "refresh_token"]},
                            },
                        }
                    }
                },
            },
            "responses": {
                "200": _json(
                    {"type": "object", "required": ["active"], "properties": {"active": {"type": "boolean"}}},
                    "The token's state; only `active` when it is not active.",
                ),
                **_errors(400, 401, 413, 503),
            },
        }
    },
    "/.well-known/oauth-authorization-server": {
        "get": {
            "summary": "RFC 8414 authorization server metadata.",
            "operationId": "authorizationServerMetadata",
            "responses": {
                "200": _json(
                    {"type": "object", "required": ["issuer", "token_endpoint", "jwks_uri"]},
                    "The metadata document.",
                )
            },
        }
    },
    "/auth/service/sessions": {
        "post": {
            "summary": "The application's back end starts a session for a user it authenticated.",
            "operationId": "serviceStartSession",
            "security": _SERVICE,
            "requestBody": {
                "required": True,
                "content": {
                    JSON: {
                        "schema": {
                            "type": "object",
                            "required": ["user_id"],
                            "properties": {
                                "user_id": _STR,
                                "username": _STR,
                                "scope": _STR,
                                "client_id": _STR,
                                "device": _STR,
                                "ip": _STR,
                                "remember": {"type": "boolean"},
                                "claims": {
                                    "type": "object",
                                    "description": "Put into every access token of the session; the claims "
                                    "hook's answer wins a name both give. No registered claim (iss, sub, aud, "
                                    "exp, ...), at most CLAIMS_MAX_BYTES: otherwise 400 invalid_request.",
                                },
                            },
                        }
                    }
                },
            },
            "responses": {
                "201": _json(_ref("StartedSession"), "Started; forward set_cookie to a browser."),
                **_errors(400, 401, 404, 413, 415, 503),
            },
        }
    },
    "/auth/service/sessions/{session_id}": {
        "delete": {
            "summary": "End one session.",
            "operationId": "serviceEndSession",
            "security": _SERVICE,
            "parameters": [{"name": "session_id", "in": "path", "required": True, "schema": _STR}],
            "responses": {"204": {"description": "Ended."}, **_errors(400, 401, 404, 503)},
        }
    },
    "/auth/service/users/{user_id}/sessions": {
        "get": {
            "summary": "A user's live sessions.",
            "operationId": "serviceListSessions",
            "security": _SERVICE,
            "parameters": [{"name": "user_id", "in": "path", "required": True, "schema": _STR}],
            "responses": {
                "200": _json({"type": "array", "items": _ref("ServiceSession")}, "The sessions."),
                **_errors(400, 401, 404, 503),
            },
        },
        "delete": {
            "summary": "End a user's sessions; reason=password_change spares keep.",
            "operationId": "serviceRevokeUser",
            "security": _SERVICE,
            "parameters": [
                {"name": "user_id", "in": "path", "required": True, "schema": _STR},
                {"name": "reason", "in": "query", "required": False, "schema": {"enum": ["password_change", "admin"]}},
                {"name": "keep", "in": "query", "required": False, "schema": _STR},
            ],
            "responses": {
                "200": _json(
                    {"type": "object", "required": ["revoked"], "properties": {"revoked": {"type": "integer"}}},
                    "How many were live.",
                ),
                **_errors(400, 401, 404, 503),
            },
        },
    },
    "/.well-known/jwks.json": {
        "get": {
            "summary": "Public signing keys.",
            "operationId": "jwks",
            "responses": {"200": _json(_ref("JWKS"), "The JWK Set.")},
        }
    },
    "/metrics": {
        "get": {
            "summary": "Prometheus metrics.",
            "operationId": "metrics",
            "responses": {
                "200": {
                    "description": "Prometheus text format.",
                    "content": {"text/plain": {"schema": _STR}},
                }
            },
        }
    },
    "/healthz": {
        "get": {
            "summary": "Liveness.",
            "operationId": "healthz",
            "responses": {
                "200": _json(
                    {"type": "object", "required": ["status"], "properties": {"status": _STR}}, "Alive."
                )
            },
        }
    },
    "/readyz": {
        "get": {
            "summary": "Readiness: the store answers and a signing key is loaded.",
            "operationId": "readyz",
            "responses": {
                "200": _json(
                    {"type": "object", "required": ["status"], "properties": {"status": _STR}}, "Ready."
                ),
                "503": _json(
                    {
                        "type": "object",
                        "required": ["status", "reason"],
                        "properties": {"status": _STR, "reason": _STR},
                    },
                    "Not ready (store unreachable or no signing key).",
                ),
            },
        }
    },
    "/api/me": {
        "get": {
            "summary": "Demo API: who am I.",
            "operationId": "me",
            "security": _BEARER,
            "responses": {"200": _json(_ref("Me"), "The caller."), **_errors(400, 401)},
        }
    },
    "/api/echo": {
        "post": {
            "summary": "Demo API: the JSON body, echoed.",
            "operationId": "echo",
            "security": _BEARER,
            "requestBody": {"required": True, "content": {JSON: {"schema": {}}}},
            "responses": {"200": _json({}, "The same JSON."), **_errors(400, 401, 413)},
        }
    },
    "/api/payments": {
        "post": {
            "summary": "Demo API, high risk: needs a recent login (RFC 9470 step-up).",
            "operationId": "payments",
            "security": _BEARER,
            "responses": {
                "200": _json(
                    {
                        "type": "object",
                        "required": ["status", "sub", "auth_time"],
                        "properties": {"status": _STR, "sub": _STR, "auth_time": _NUM},
                    },
                    "Accepted.",
                ),
                **_errors(400, 401),
            },
        }
    },
}


def document(server_url: str | None = None) -> dict[str, Any]:
    """The OpenAPI 3.1 document; ``server_url`` fills ``servers`` when given."""
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "silentauth token service",
            "version": __version__,
            "description": "Seamless token refresh: RFC 6749 token endpoint, browser "
            "login/refresh with HttpOnly cookies and CSRF proof, RFC 7009 revocation.",
        },
        "paths": PATHS,
        "components": {
            "schemas": SCHEMAS,
            "securitySchemes": {
                "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"},
                "serviceCredential": {
                    "type": "http",
                    "scheme": "service",
                    "description": "Authorization: Service <SERVICE_CREDENTIAL>",
                },
            },
        },
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


async def openapi_json(request: Request) -> Response:
    """``GET /openapi.json``."""
    return JSONResponse(document(), headers={"Cache-Control": "public, max-age=300"})


routes = [Route("/openapi.json", openapi_json, methods=["GET"])]
