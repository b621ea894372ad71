pytest_plugins = ["tests.fixtures.stack", "tests.fixtures.postgres", "tests.fixtures.leaks"]
