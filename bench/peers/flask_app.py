"""flask-jwt-extended: explicit refresh with rotation and a SQLite blocklist.

The documented pattern ("Refreshing Tokens" + "Blocklist and Token Revoking",
database variant): a ``token_in_blocklist_loader`` looks the ``jti`` up; the
refresh route, ``@jwt_required(refresh=True)``, blocklists the presented
refresh token's ``jti`` and returns a new access and refresh token. Plain
``sqlite3`` stands in for Flask-SQLAlchemy (one connection per thread).

Serve with ``granian --interface wsgi bench.peers.flask_app:app``; prepare the
database with ``python -m bench.peers.flask_app USER PASS``. ``BENCH_DB``
names the SQLite file.
"""

from __future__ import annotations

import os
import sqlite3
import sys
import threading
import time
import uuid
from datetime import timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from flask import Flask, jsonify, request
from flask.typing import ResponseReturnValue
from flask_jwt_extended import (
    JWTManager,
    create_access_token,
    create_refresh_token,
    get_jwt,
    get_jwt_identity,
    jwt_required,
)

from bench.peers import ARGON2_MEMORY_KIB, ARGON2_PARALLELISM, ARGON2_TIME_COST

DB = os.environ.get("BENCH_DB", "bench-flask.db")
hasher = PasswordHasher(time_cost=ARGON2_TIME_COST, memory_cost=ARGON2_MEMORY_KIB, parallelism=ARGON2_PARALLELISM)

app = Flask(__name__)
app.config["JWT_SECRET_KEY"] = "bench-only-flask-secret-key-0123456789abcdef"
app.config["JWT_ACCESS_TOKEN_EXPIRES"] = timedelta(minutes=15)
app.config["JWT_REFRESH_TOKEN_EXPIRES"] = timedelta(days=7)
jwt = JWTManager(app)
_local = threading.local()


def db() -> sqlite3.Connection:
    conn: sqlite3.Connection | None = getattr(_local, "conn", None)
    if conn is None:
        conn = sqlite3.connect(DB, timeout=20, isolation_level=None)
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA synchronous=NORMAL")
        _local.conn = conn
    return conn


@jwt.token_in_blocklist_loader
def check_if_token_revoked(jwt_header: dict[str, Any], jwt_payload: dict[str, Any]) -> bool:
    row = db().execute("SELECT 1 FROM token_blocklist WHERE jti = ?", (jwt_payload["jti"],)).fetchone()
    return row is not None


@app.post("/login")
def login() -> ResponseReturnValue:
    body = request.get_json(silent=True) or {}
    row = db().execute("SELECT id, password_hash FROM users WHERE username = ?", (body.get("username"),)).fetchone()
    try:
        ok = row is not None and hasher.verify(row[1], str(body.get("password", "")))
    except VerificationError:
        ok = False
    if not ok:
        return jsonify(msg="Bad username or password"), 401
    return jsonify(access_token=create_access_token(identity=row[0]), refresh_token=create_refresh_token(identity=row[0]))


@app.post("/refresh")
@jwt_required(refresh=True)
def refresh() -> ResponseReturnValue:
    identity = get_jwt_identity()
    db().execute(
        "INSERT INTO token_blocklist (jti, type, created_at) VALUES (?, 'refresh', ?)", (get_jwt()["jti"], time.time())
    )
    return jsonify(access_token=create_access_token(identity=identity), refresh_token=create_refresh_token(identity=identity))


@app.get("/noop")
def noop() -> ResponseReturnValue:
    return jsonify(ok=True)


def setup(username: str, password: str) -> None:
    """Create the tables (the docs' ``TokenBlocklist`` model) and one user."""
    conn = db()
    conn.execute("CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, username TEXT UNIQUE, password_hash TEXT)")
    conn.execute(
        "CREATE TABLE IF NOT EXISTS token_blocklist "
        "(id INTEGER PRIMARY KEY, jti TEXT NOT NULL, type TEXT NOT NULL, created_at REAL NOT NULL)"
    )
    conn.execute("CREATE INDEX IF NOT EXISTS token_blocklist_jti ON token_blocklist (jti)")
    conn.execute(
        "INSERT OR IGNORE INTO users VALUES (?, ?, ?)", (str(uuid.uuid4()), username, hasher.hash(password))
    )


if __name__ == "__main__":
    setup(sys.argv[1], sys.argv[2])
