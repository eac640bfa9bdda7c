"""One module per group of commands. Each exposes register(app) and imports its work lazily."""
