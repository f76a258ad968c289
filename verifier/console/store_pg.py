"""The console's store on PostgreSQL: the dialect parts of verifier/console/store.py (a mixin of
verifier.store_pg.PGStorage)."""


class PGConsoleStorage:
    # starts_with: a serial prefix whatever the database's collation (a range would follow the locale's order)
    SERIAL_PREFIX_SQL = "starts_with(d.serial_number, ?)"
    FIRMWARE_SQL = "(d.metadata::jsonb ->> 'firmware_version') = ?"

    @staticmethod
    def serial_prefix_args(prefix):
        return [prefix]
