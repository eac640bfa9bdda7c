"""Use cases: what each command does, without typer. They take parsed values, call targets
(deployctl.targets) and the domain, and return data; commands render it."""
