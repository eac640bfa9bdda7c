bind = "0.0.0.0:3100"
workers = 1
worker_class = "uvicorn.workers.UvicornWorker"
timeout = 30
