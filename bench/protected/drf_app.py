"""Django REST framework with :class:`SilentAuthAuthentication` as the default.

``/open`` opts out (no authentication classes, ``AllowAny``), as a public view
of a protected API does. Serve with
``granian --interface wsgi bench.protected.drf_app:application``.
"""

from __future__ import annotations

import django
from django.conf import settings

from bench.protected import PAYLOAD, issuer

# Settings first: Django REST framework reads them as its modules are imported.
settings.configure(
    DEBUG=False,
    SECRET_KEY="bench-only-not-secret",  # signs nothing here: no sessions, no CSRF
    ROOT_URLCONF=__name__,
    ALLOWED_HOSTS=["*"],
    INSTALLED_APPS=["rest_framework"],
    MIDDLEWARE=[],
    SILENTAUTH={"ISSUER": issuer()},
    REST_FRAMEWORK={
        "DEFAULT_AUTHENTICATION_CLASSES": ["silentauth.resource.drf.SilentAuthAuthentication"],
        "DEFAULT_PERMISSION_CLASSES": ["silentauth.resource.drf.IsTokenAuthenticated"],
        "EXCEPTION_HANDLER": "silentauth.resource.drf.exception_handler",
        "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
        "UNAUTHENTICATED_USER": None,
    },
)
django.setup()

from django.core.wsgi import get_wsgi_application  # noqa: E402
from django.urls import path  # noqa: E402
from rest_framework.permissions import AllowAny  # noqa: E402
from rest_framework.request import Request  # noqa: E402
from rest_framework.response import Response  # noqa: E402
from rest_framework.views import APIView  # noqa: E402


class Open(APIView):
    authentication_classes = ()
    permission_classes = (AllowAny,)

    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)


class Protected(APIView):
    def get(self, request: Request) -> Response:
        return Response(PAYLOAD)


urlpatterns = [path("open", Open.as_view()), path("protected", Protected.as_view())]
application = get_wsgi_application()
