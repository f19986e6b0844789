"""Database triggers that keep the store's record from being rewritten, and how `store verify` checks them.

Per table, one of two rules (the schema docstrings say which and why):
- append-only: a row is never changed or deleted, and an INSERT may not reuse an existing key (SQLite's
  `INSERT OR REPLACE` would otherwise delete the old row and write a new one without firing a delete
  trigger, unless the connection has `PRAGMA recursive_triggers=ON`, which OncoLens sets but a sqlite3
  shell does not);
- guarded updates: a row is never deleted and an UPDATE may change only the listed columns, in the
  listed way (a reader's PIN hash; a reading session's completion time, once, from empty to set).
Every change that is allowed is also recorded with a fingerprint in the audit log (engine.store.fingerprints).

Migration 0003 installs this set (replacing the triggers of 0001 and 0002, whose names are kept on SQLite).
A later revision that changes a guard adds its own definitions rather than editing these, since `store
verify` compares the database's triggers with this module's text.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Guard:
    table: str
    key: tuple[str, ...]  # primary key
    unique: tuple[tuple[str, ...], ...] = ()  # other unique keys (REPLACE removes rows that clash on these too)
    updatable: tuple[str, ...] = ()  # columns an UPDATE may change; empty: append-only
    update_rule_sqlite: str = ""  # extra condition an allowed UPDATE must meet (SQLite syntax, OLD/NEW)
    update_rule_postgresql: str = ""
    columns: tuple[str, ...] = ()  # every column (needed to say "nothing else changed")

    @property
    def append_only(self) -> bool:
        return not self.updatable

    @property
    def message(self) -> str:
        if self.append_only:
            return f"{self.table} is append-only - rows cannot be changed, replaced or deleted"
        changes = ", ".join(self.updatable)
        return f"{self.table} rows cannot be deleted or replaced, and only {changes} may change as OncoLens changes it"


GUARDS = (
    Guard("audit_events", ("id",)),
    Guard("reads", ("id",)),
    Guard("studies", ("id",)),
    Guard("study_cases", ("study_id", "position"), (("study_id", "case_id"),)),
    Guard("store_settings", ("key",)),
    Guard("readers", ("study_id", "reader_id"), updatable=("pin_hash",),
          columns=("study_id", "reader_id", "display_name", "pin_hash", "created", "created_by")),
    Guard("reading_sessions", ("id",), (("study_id", "reader_id", "arm", "round"),), updatable=("completed",),
          update_rule_sqlite="OLD.completed IS NULL AND NEW.completed IS NOT NULL",
          update_rule_postgresql="OLD.completed IS NULL AND NEW.completed IS NOT NULL",
          columns=("id", "study_id", "reader_id", "arm", "round", "order_json", "order_seed", "started",
                   "completed")),
)

# -- SQLite -------------------------------------------------------------------------------------------


def _clash(guard: Guard, columns: tuple[str, ...]) -> str:
    match = " AND ".join(f"{c} = NEW.{c}" for c in columns)
    return f"EXISTS (SELECT 1 FROM {guard.table} WHERE {match})"


def sqlite_triggers(guard: Guard) -> dict[str, str]:
    """Trigger name -> CREATE TRIGGER statement."""
    t, raise_ = guard.table, f"SELECT RAISE(ABORT, '{guard.message}');"
    clashes = " OR ".join(_clash(guard, cols) for cols in (guard.key, *guard.unique))
    triggers = {
        f"{t}_no_replace": f"CREATE TRIGGER {t}_no_replace BEFORE INSERT ON {t} WHEN {clashes} BEGIN {raise_} END",
        f"{t}_no_delete": f"CREATE TRIGGER {t}_no_delete BEFORE DELETE ON {t} BEGIN {raise_} END",
    }
    if guard.append_only:
        triggers[f"{t}_no_update"] = f"CREATE TRIGGER {t}_no_update BEFORE UPDATE ON {t} BEGIN {raise_} END"
    else:
        frozen = [f"OLD.{c} IS NOT NEW.{c}" for c in guard.columns if c not in guard.updatable]
        if guard.update_rule_sqlite:
            frozen.append(f"NOT ({guard.update_rule_sqlite})")
        triggers[f"{t}_guard_update"] = (f"CREATE TRIGGER {t}_guard_update BEFORE UPDATE ON {t} "
                                         f"WHEN {' OR '.join(frozen)} BEGIN {raise_} END")
    return triggers


def all_sqlite_triggers() -> dict[str, tuple[str, str]]:
    """Trigger name -> (table, statement) for every guard."""
    return {name: (g.table, sql) for g in GUARDS for name, sql in sqlite_triggers(g).items()}


# -- PostgreSQL -----------------------------------------------------------------------------------------
# One plpgsql function per table, called BEFORE UPDATE OR DELETE (per row) and BEFORE TRUNCATE. ERRCODE
# restrict_violation reaches Python as an IntegrityError, as SQLite's RAISE(ABORT) does. PostgreSQL has no
# REPLACE; `INSERT ... ON CONFLICT DO UPDATE` runs the UPDATE trigger.

PG_ROW_EVENTS = 1 | 2 | 8 | 16  # tgtype bits: FOR EACH ROW, BEFORE, DELETE, UPDATE
PG_TRUNCATE_EVENTS = 2 | 32  # BEFORE, TRUNCATE


def pg_function_name(guard: Guard) -> str:
    return f"{guard.table}_guard"


def pg_function_body(guard: Guard) -> str:
    allowed = ""
    if not guard.append_only:
        same = [f"NEW.{c} IS NOT DISTINCT FROM OLD.{c}" for c in guard.columns if c not in guard.updatable]
        if guard.update_rule_postgresql:
            same.append(f"({guard.update_rule_postgresql})")
        allowed = f"IF TG_OP = 'UPDATE' AND {' AND '.join(same)} THEN RETURN NEW; END IF; "
    return (f" BEGIN {allowed}RAISE EXCEPTION USING MESSAGE = '{guard.message} (' || TG_OP || ')', "
            "ERRCODE = 'restrict_violation'; END ")


def postgresql_statements(guard: Guard) -> list[str]:
    t, fn = guard.table, pg_function_name(guard)
    return [
        f"CREATE OR REPLACE FUNCTION {fn}() RETURNS trigger LANGUAGE plpgsql AS ${fn}${pg_function_body(guard)}${fn}$",
        f"CREATE TRIGGER {t}_guard_change BEFORE UPDATE OR DELETE ON {t} FOR EACH ROW EXECUTE FUNCTION {fn}()",
        f"CREATE TRIGGER {t}_guard_truncate BEFORE TRUNCATE ON {t} FOR EACH STATEMENT EXECUTE FUNCTION {fn}()",
    ]


def pg_expected_triggers() -> dict[str, tuple[str, str, int]]:
    """Trigger name -> (table, function, tgtype)."""
    out = {}
    for g in GUARDS:
        out[f"{g.table}_guard_change"] = (g.table, pg_function_name(g), PG_ROW_EVENTS)
        out[f"{g.table}_guard_truncate"] = (g.table, pg_function_name(g), PG_TRUNCATE_EVENTS)
    return out


# -- installing and removing ----------------------------------------------------------------------------


def install_statements(dialect: str) -> list[str]:
    """What migration 0003 runs to install every guard (other dialects get none: there only the ORM guards
    in schema.py hold, and `store verify` says so)."""
    if dialect == "sqlite":
        return [sql for _table, sql in all_sqlite_triggers().values()]
    if dialect == "postgresql":
        return [s for g in GUARDS for s in postgresql_statements(g)]
    return []


def drop_statements(dialect: str) -> list[str]:
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {name}" for name in all_sqlite_triggers()]
    if dialect == "postgresql":
        drops = [f"DROP TRIGGER IF EXISTS {name} ON {table}" for name, (table, _f, _t) in pg_expected_triggers().items()]
        return drops + [f"DROP FUNCTION IF EXISTS {pg_function_name(g)}()" for g in GUARDS]
    return []


def normalised_sql(text: str) -> str:
    """SQL with runs of whitespace made one space, for comparing a stored trigger with its definition."""
    return " ".join(text.split())
