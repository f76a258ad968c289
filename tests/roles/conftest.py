from tests.support import clock, client, config  # noqa: F401  (fixtures)
