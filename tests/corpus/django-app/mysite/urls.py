from django.http import JsonResponse
from django.urls import path

VERSION = "1"


def healthz(request):
    return JsonResponse({"ok": True})


def version(request):
    return JsonResponse({"version": VERSION})


urlpatterns = [
    path("healthz/", healthz),
    path("version/", version),
]
