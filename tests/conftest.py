pytest_plugins = ["tests.simulation.fixtures"]
