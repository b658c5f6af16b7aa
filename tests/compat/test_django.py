"""Django's ASGI handler through the real ``devserve`` command.

A minimal project made in `tmp_path` with ``runserver``-like settings (DEBUG, no
ALLOWED_HOSTS, staticfiles): sync and async views, a form POST, static files served by
Django's own ``ASGIStaticFilesHandler`` (what ``runserver`` does for WSGI), APP discovery
of ``mysite/asgi.py``, and a view edited under ``--reload``.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from tests.compat.serving import devserve, reload_after_edit, write_files

pytest.importorskip("django", reason="Django is not installed (pip install -e '.[test]')")

SETTINGS = """
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
SECRET_KEY = "devserve-compat-test-only"
DEBUG = True
ALLOWED_HOSTS = []
INSTALLED_APPS = ["django.contrib.staticfiles"]
MIDDLEWARE = ["django.middleware.common.CommonMiddleware"]
ROOT_URLCONF = "mysite.urls"
DATABASES = {}
USE_TZ = True
STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
"""

URLS = """
from django.urls import path

from mysite import views

urlpatterns = [
    path("", views.home),
    path("async/<int:n>/", views.count),
    path("form/", views.form),
]
"""

VIEWS = """
import asyncio

from django.http import HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt


def home(request):
    return HttpResponse("django v1", content_type="text/plain")


async def count(request, n):
    await asyncio.sleep(0)
    return JsonResponse({"n": n, "double": n * 2, "path": request.path})


@csrf_exempt
def form(request):
    return JsonResponse({"method": request.method, "name": request.POST.get("name")})
"""

ASGI = """
import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "mysite.settings")

from django.conf import settings  # noqa: E402
from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler  # noqa: E402

application = get_asgi_application()
if settings.DEBUG:
    application = ASGIStaticFilesHandler(application)
"""

FILES = {
    "mysite/__init__.py": "",
    "mysite/settings.py": SETTINGS,
    "mysite/urls.py": URLS,
    "mysite/views.py": VIEWS,
    "mysite/asgi.py": ASGI,
    "static/css/site.css": "h1 { color: green; }\n",
    "manage.py": "# a real project has one; devserve does not need it\n",
}


def test_django_single_process(tmp_path: Path) -> None:
    write_files(tmp_path, FILES)
    with devserve(tmp_path) as cli, httpx.Client(base_url=cli.url, timeout=5) as client:
        assert client.get("/").text == "django v1"
        assert client.get("/async/21/").json() == {"n": 21, "double": 42, "path": "/async/21/"}
        # CommonMiddleware's APPEND_SLASH redirect.
        redirect = client.get("/async/21")
        assert redirect.status_code == 301 and redirect.headers["location"] == "/async/21/"
        assert client.post("/form/", data={"name": "ada"}).json() == {
            "method": "POST",
            "name": "ada",
        }
        css = client.get("/static/css/site.css")
        assert css.status_code == 200 and css.text == "h1 { color: green; }\n"
        assert css.headers["content-type"].startswith("text/css")
        assert client.get("/static/css/missing.css").status_code == 404
        assert client.get("/nowhere/").status_code == 404
        # Sync views run through asgiref, whose state lives in context variables: none may
        # leak from one request of a keep-alive connection into the next.
        statuses = [client.get("/" if n % 2 else "/async/1/").status_code for n in range(30)]
        assert statuses == [200] * 30
        # DEBUG with no ALLOWED_HOSTS allows only local names, as under runserver.
        assert client.get("/", headers={"host": "evil.example"}).status_code == 400
    assert "using app mysite.asgi:application" in cli.output()


def test_django_reload_edits_a_view(tmp_path: Path) -> None:
    write_files(tmp_path, FILES)
    with devserve(tmp_path, "mysite.asgi:application", reload=True) as cli:
        reload_after_edit(cli, tmp_path / "mysite" / "views.py", "/", "django v1", "django v2")
        assert httpx.get(cli.url + "/static/css/site.css", timeout=5).status_code == 200
