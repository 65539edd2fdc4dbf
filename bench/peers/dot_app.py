"""django-oauth-toolkit's token endpoint with its refresh-token rotation settings.

``ROTATE_REFRESH_TOKEN`` (a new refresh token per refresh, the old one
revoked), ``REFRESH_TOKEN_GRACE_PERIOD_SECONDS`` (the old one still answers
for a while, as concurrent tabs need) and ``REFRESH_TOKEN_REUSE_PROTECTION``
(a revoked refresh token presented after the grace period revokes its whole
family), as django-oauth-toolkit's settings documentation recommends for
public clients. One public client; sessions start with the password grant
(the load generator's login). Access and refresh tokens are opaque rows in
SQLite (WAL, ``synchronous=NORMAL``); nothing is signed.

Serve with ``granian --interface wsgi bench.peers.dot_app:application``;
prepare the database first with ``python -m bench.peers.dot_app USER PASS``.
``BENCH_DB`` names the SQLite file.
"""

from __future__ import annotations

import os
import sys

import django
from django.conf import settings

CLIENT_ID = "bench-public-client"

settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-django-secret-key-0123456789abcdef",
    ALLOWED_HOSTS=["127.0.0.1", "localhost"],
    ROOT_URLCONF=__name__,
    USE_TZ=True,
    MIDDLEWARE=[],
    INSTALLED_APPS=[
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "oauth2_provider",
    ],
    DATABASES={
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": os.environ.get("BENCH_DB", "bench-dot.db"),
            "OPTIONS": {
                "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
                "transaction_mode": "IMMEDIATE",
                "timeout": 20,
            },
        }
    },
    PASSWORD_HASHERS=["bench.peers.hashers.BenchArgon2PasswordHasher"],
    OAUTH2_PROVIDER={
        "ACCESS_TOKEN_EXPIRE_SECONDS": 900,
        "REFRESH_TOKEN_EXPIRE_SECONDS": 7 * 24 * 3600,
        "ROTATE_REFRESH_TOKEN": True,
        "REFRESH_TOKEN_GRACE_PERIOD_SECONDS": 120,
        "REFRESH_TOKEN_REUSE_PROTECTION": True,
    },
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.http import HttpRequest, JsonResponse  # noqa: E402
from django.urls import path  # noqa: E402
from oauth2_provider.views import TokenView  # noqa: E402


def noop(request: HttpRequest) -> JsonResponse:
    """The baseline: the same stack answering without doing anything."""
    return JsonResponse({"ok": True})


urlpatterns = [
    path("o/token/", TokenView.as_view()),
    path("noop", noop),
]

application = get_wsgi_application()


def setup(username: str, password: str) -> None:
    """Create the tables, one user and one public client allowed the password grant."""
    from django.contrib.auth.models import User
    from django.core.management import call_command
    from oauth2_provider.models import get_application_model

    call_command("migrate", verbosity=0, interactive=False)
    user = User.objects.filter(username=username).first() or User.objects.create_user(username, password=password)
    app_model = get_application_model()
    if not app_model.objects.filter(client_id=CLIENT_ID).exists():
        app_model.objects.create(
            client_id=CLIENT_ID,
            user=user,
            name="bench",
            client_type=app_model.CLIENT_PUBLIC,
            authorization_grant_type=app_model.GRANT_PASSWORD,
            client_secret="",
        )


if __name__ == "__main__":
    setup(sys.argv[1], sys.argv[2])
