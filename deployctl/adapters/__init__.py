"""The only modules that touch the outside world: AWS, Docker, git, processes."""
