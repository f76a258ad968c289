"""The fleet aggregates on PostgreSQL (issue #15; docs/fleet.md "How the aggregates are kept"): the same counters
as verifier/fleet/store.py, kept by PL/pgSQL triggers instead of SQLite's, and the PostgreSQL mixin of
verifier.store_pg.PGStorage.

- The triggers are AFTER triggers (row-level, but for fleet_dev_ins) of the statement that changes devices or auth_state, so a change
  and its aggregates commit or roll back together, as SQLite's do. Their rules are those of store.py: HEALTH_SQL
  as is; firmware and location read the metadata as jsonb (`->>`), where SQLite says json_extract: the two
  agree on what janua writes there (json.dumps of an object whose fields are strings or null,
  verifier/registry/model.py validate_metadata; an integer gives the same text too). Metadata that is not JSON
  at all, which SQLite counts as 'unknown', makes the write fail on PostgreSQL instead of counting it silently.
- fleet_dev_upd fires only when one of the columns the rules read changed (its WHEN): SQLite fires on any
  UPDATE OF them and takes the row out and back in, which leaves the counts as they were.
- fleet_dev_ins is a statement-level trigger over the statement's new rows (a transition table): one upsert per
  dimension and key for a whole COPY of a million devices (verifier/registry/store_pg.py insert_devices), where a
  row-level one would update the same few counter rows once per device, each update walking the versions the
  ones before it left in the transaction (quadratic).
- fleet_seen_upd keeps SQLite's WHEN (a new minute), tested by PostgreSQL before the function is called, so the
  binary-auth hot path pays only that comparison.
- The one-off build of a database that has no aggregates yet (fleet_built empty) runs in the same transaction
  as the schema (PGStorage's open holds the writer lock), before any other write can reach the tables.

The script is PostgreSQL text, sent as is (PGStorage.PG_SCRIPTS): pgconn.translate_ddl does not translate
triggers, whose bodies differ.
"""

from verifier.fleet.store import HEALTH_SQL, MINUTE, count_changes

FIRMWARE_PG = "COALESCE(X.reported_version, X.metadata::jsonb ->> 'firmware_version', 'unknown')"
LOCATION_PG = "COALESCE(X.metadata::jsonb ->> 'location', 'unknown')"
DIMS_PG = (("status", "X.status"), ("health", HEALTH_SQL), ("firmware", FIRMWARE_PG), ("location", LOCATION_PG))
# the columns the rules read (an UPDATE that changes none of them leaves every bucket as it was)
_RULE_COLUMNS = ("tenant_id", "status", "compromised", "metadata", "health_score", "attestation_status",
                 "reported_version")


def _add(row, sign):
    return count_changes(row, sign, DIMS_PG, "    ")


def _add_all(table):
    # the rows of a statement at once (a transition table): one upsert per dimension and key, however many rows
    out = []
    for dim, expr in DIMS_PG:
        key = expr.replace("X.", "r.")
        out.append(f"    INSERT INTO fleet_counts SELECT r.tenant_id, '{dim}', {key} AS k, count(*) FROM {table} r\n"
                   "        GROUP BY r.tenant_id, k\n"
                   "        ON CONFLICT (tenant_id, dim, key) DO UPDATE SET n = fleet_counts.n + excluded.n;")
    return "\n".join(out)


def _seen_add(v):
    return (f"    IF t IS NOT NULL THEN\n        INSERT INTO fleet_seen VALUES (t, {MINUTE.format(v=v)}, 1)\n"
            "            ON CONFLICT (tenant_id, minute) DO UPDATE SET n = fleet_seen.n + 1;\n    END IF;")


def _seen_sub(v):
    # a device deleted before its auth_state row has no tenant: tenant_id = NULL matches nothing
    return f"    UPDATE fleet_seen SET n = n - 1 WHERE tenant_id = t AND minute = {MINUTE.format(v=v)};"


def _function(name, body, declare=""):
    return (f"CREATE OR REPLACE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql AS $fn$\n{declare}BEGIN\n"
            f"{body}\n    RETURN NULL;\nEND\n$fn$;")


def _trigger(name, event, table, when=""):
    return (f"CREATE OR REPLACE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW {when}"
            f"EXECUTE FUNCTION {name}();")


_TENANT = "    t := (SELECT tenant_id FROM devices WHERE id = {id});"
_DECLARE_T = "DECLARE\n    t TEXT;\n    v BIGINT;\n"
_CHANGED = " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in _RULE_COLUMNS)

PG_FLEET_TRIGGERS = "\n".join((
    _function("fleet_dev_ins", _add_all("new_rows")),
    "CREATE OR REPLACE TRIGGER fleet_dev_ins AFTER INSERT ON devices REFERENCING NEW TABLE AS new_rows "
    "FOR EACH STATEMENT EXECUTE FUNCTION fleet_dev_ins();",
    _function("fleet_dev_del", _add("OLD", -1) + "\n"
              "    v := (SELECT last_authenticated_at FROM auth_state WHERE id = OLD.id);\n"
              "    t := OLD.tenant_id;\n    IF v IS NOT NULL THEN\n" + _seen_sub("v") + "\n    END IF;", _DECLARE_T),
    _trigger("fleet_dev_del", "DELETE", "devices"),
    _function("fleet_dev_upd", _add("OLD", -1) + "\n" + _add("NEW", 1)),
    _trigger("fleet_dev_upd", "UPDATE OF " + ", ".join(_RULE_COLUMNS), "devices", f"WHEN ({_CHANGED}) "),
    _function("fleet_seen_ins", _TENANT.format(id="NEW.id") + "\n" + _seen_add("NEW.last_authenticated_at"),
              _DECLARE_T),
    _trigger("fleet_seen_ins", "INSERT", "auth_state"),
    _function("fleet_seen_upd", _TENANT.format(id="OLD.id") + "\n" + _seen_sub("OLD.last_authenticated_at") + "\n"
              + _TENANT.format(id="NEW.id") + "\n" + _seen_add("NEW.last_authenticated_at"), _DECLARE_T),
    _trigger("fleet_seen_upd", "UPDATE OF last_authenticated_at", "auth_state",
             "WHEN (NEW.last_authenticated_at / 60 != OLD.last_authenticated_at / 60) "),
    _function("fleet_seen_del", _TENANT.format(id="OLD.id") + "\n" + _seen_sub("OLD.last_authenticated_at"),
              _DECLARE_T),
    _trigger("fleet_seen_del", "DELETE", "auth_state"),
))


def _build_dim(dim, expr):
    key = expr.replace("X.", "d.")
    return (f"        INSERT INTO fleet_counts SELECT d.tenant_id, '{dim}', {key} AS k, count(*) FROM devices d "
            "GROUP BY d.tenant_id, k;")


# the one-off build of a database that has no aggregates yet, as store.FLEET_BUILD (a new database builds
# empty ones); inside PGStorage's opening transaction
PG_FLEET_BUILD = "DO $build$\nBEGIN\n    IF NOT EXISTS (SELECT 1 FROM fleet_built) THEN\n" + "\n".join(
    _build_dim(d, e) for d, e in DIMS_PG) + """
        INSERT INTO fleet_seen SELECT d.tenant_id, a.last_authenticated_at / 60 AS m, count(*)
            FROM auth_state a JOIN devices d ON d.id = a.id GROUP BY d.tenant_id, m;
        INSERT INTO fleet_built VALUES (0, floor(extract(epoch FROM now()))::bigint) ON CONFLICT DO NOTHING;
    END IF;
END
$build$;"""

PG_FLEET_INDEXES = PG_FLEET_TRIGGERS + "\n" + PG_FLEET_BUILD


class PGFleetStorage:
    """What differs from SQLiteFleetStorage on PostgreSQL: the open alerts are counted without SQLite's
    INDEXED BY (PostgreSQL's planner picks the partial index alerts_open for that WHERE itself)."""

    def count_open_alerts(self, tenant_id):
        return self._db.execute("SELECT count(*) FROM alerts WHERE tenant_id = ? AND resolved_at IS NULL",
                                (tenant_id,)).fetchone()[0]
