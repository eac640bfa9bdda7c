import os

bind = f"0.0.0.0:{os.getenv('PORT', '3100')}"
workers = int(os.getenv("WEB_CONCURRENCY", "1"))
worker_class = "uvicorn.workers.UvicornWorker"
accesslog = "-"
