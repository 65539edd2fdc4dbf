"""A third-party Django REST framework API protected by silentauth access tokens.

One file, no project: settings, URLs and views. Keys come from the issuer's JWKS,
revocations from its feed (a background thread started on the first request).

Run: SILENTAUTH_ISSUER=http://127.0.0.1:8000 python -m examples.django_app runserver 9002
"""

import os
import sys
from typing import Any

import django
from django.conf import settings

# Settings first: Django REST framework reads them as its modules are imported.
if not settings.configured:
    settings.configure(
        DEBUG=False,
        SECRET_KEY="example-only-not-secret",  # noqa: S106 (signs nothing here: no sessions, no CSRF)
        ROOT_URLCONF=__name__,
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=["rest_framework"],
        MIDDLEWARE=[],
        SILENTAUTH={"ISSUER": os.environ.get("SILENTAUTH_ISSUER", "http://127.0.0.1:8000")},
        REST_FRAMEWORK={
            "DEFAULT_AUTHENTICATION_CLASSES": ["silentauth.resource.drf.SilentAuthAuthentication"],
            "DEFAULT_PERMISSION_CLASSES": ["silentauth.resource.drf.IsTokenAuthenticated"],
            "EXCEPTION_HANDLER": "silentauth.resource.drf.exception_handler",
            "UNAUTHENTICATED_USER": None,
        },
    )
    django.setup()

from django.core.handlers.wsgi import WSGIHandler
from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from silentauth.resource import drf


def configure(issuer: str, **options: Any) -> None:
    """Point the app at ``issuer`` (tests re-point it; the next request builds a new authenticator)."""
    settings.SILENTAUTH = {"ISSUER": issuer, "OPTIONS": options}
    drf.reset()


class WhoAmI(APIView):
    def get(self, request: Request) -> Response:
        return Response({"sub": request.auth.subject, "username": request.auth.username})


class Transfer(APIView):
    permission_classes = [drf.require("payments")]

    def post(self, request: Request) -> Response:
        return Response({"status": "accepted", "by": request.auth.subject})


urlpatterns = [path("whoami", WhoAmI.as_view()), path("transfer", Transfer.as_view())]


def create_app(issuer: str, **options: Any) -> WSGIHandler:
    configure(issuer, **options)
    return WSGIHandler()


if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(sys.argv)
