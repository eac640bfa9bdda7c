# The layouts' own files (their tests, their conftest) belong to those apps, not to this suite.
collect_ignore_glob = ["*/*"]
