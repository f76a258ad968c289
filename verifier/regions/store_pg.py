"""The regions store on PostgreSQL: the dialect part of verifier/regions/store.py (a mixin of
verifier.store_pg.PGStorage): devices.metadata is JSON text, read with jsonb's ->> instead of json_extract."""


class PGRegionsStorage:
    REGION_DEVICES_SQL = "(metadata::jsonb ->> 'region') = ?"
