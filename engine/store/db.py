"""The OncoLens store: cases, prediction summaries and the audit log in one SQL database.

SQLite in the user data folder by default (WAL, so several OncoLens processes can share the file);
any SQLAlchemy URL (e.g. PostgreSQL for a multi-reader site) through the `db_url` setting or
ONCOLENS_DB_URL. Opening a Store runs the Alembic migrations up to the newest revision; a read-only Store
(`read_only=True`, for commands that only read) neither migrates nor takes the write lock.

Every change is logged in the chained audit log (fingerprints.py), with the changed row's fingerprint, and
patient ids in the log are keyed hashes; `oncolens store verify` (verify.py) checks the record.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, delete, func, make_url, or_, select
from sqlalchemy.exc import DatabaseError, IntegrityError
from sqlalchemy.orm import Session

from engine.cases.bundle import BundleError, is_bundle, read_bundle, set_bundle_identity
from engine.cases.model import Case, content_sha256
from engine.data import Prediction, PredictionSummary, utc_now
from engine.paths import user_data_dir
from engine.settings import load_settings
from engine.store.audit import AuditTrail, dumps
from engine.store.connect import WRITE_OPTION, database_error, make_engine, take_write_lock
from engine.store.fingerprints import image_sha256
from engine.store.schema import CaseRecord, PredictionRecord, StoreError, StudyCaseRecord

log = logging.getLogger(__name__)
# Alembic logs its context at INFO once per MigrationContext (so each line twice per start) and every step;
# the store logs one line of its own per upgrade instead. Alembic's warnings and errors still show.
logging.getLogger("alembic").setLevel(logging.WARNING)

SQLITE_FILE = "oncolens.sqlite3"
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

_PG_MIGRATION_LOCK = 0x0C0_1E25  # advisory lock id: one process migrates a PostgreSQL database at a time
_CASE_FIELDS_AUDITED = ("kind", "patient_id", "bundle_path", "modalities", "has_truth")
_CASE_FIELDS_KEYED = ("patient_id", "name")  # in the log only as keyed hashes: they may identify a patient


def default_db_url() -> str:
    """The `db_url` setting (or ONCOLENS_DB_URL) if set, else a SQLite file in the user data folder."""
    configured = load_settings().db_url.strip()
    if configured:
        return configured
    return f"sqlite:///{(user_data_dir() / SQLITE_FILE).as_posix()}"


def alembic_config() -> Config:
    """Alembic configuration pointing at the migrations shipped in this package (no alembic.ini needed)."""
    config = Config()
    # Config values go through configparser interpolation, so a '%' in the path must be doubled.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def head_revision() -> str:
    """Id of the newest migration this version of OncoLens ships."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise StoreError(f"No database migrations found in {MIGRATIONS_DIR}; the installation is incomplete.")
    return head


@dataclass(frozen=True)
class StoredPrediction:
    """One prediction summary as kept in the store, with its row id (studies freeze these ids)."""

    id: int
    case_id: str
    summary: PredictionSummary


def parse_summary(text: str, model: str = "") -> PredictionSummary:
    """A stored summary's JSON (format 2, or format 1 from stores written before the typed model); `model` is
    the row's model column, for format-1 summaries that lack their own."""
    raw = json.loads(text)
    if "family" not in raw and "model" not in raw:
        raw["model"] = model
    return PredictionSummary.from_dict(raw)


def record_summary(record: PredictionRecord) -> PredictionSummary:
    """The typed summary of one stored prediction row."""
    return parse_summary(record.summary_json, record.model)


@dataclass(frozen=True)
class CaseSummary:
    """One row of the case list: enough to show and filter cases without reading their bundles."""

    id: str
    kind: str
    patient_id: str | None
    modalities: tuple[str, ...]
    has_truth: bool
    n_predictions: int
    bundle_path: Path
    created: str
    name: str = ""


def _case_values(case: Case, bundle_path: Path) -> dict[str, Any]:
    """Column values of a case's row (everything but id and updated)."""
    bad = [m for m in case.images if "," in m]
    if bad:
        raise StoreError(f"Case {case.id}: modality names may not contain commas ({bad}).")
    truth = None
    if case.truth is not None:
        truth = {"labels": case.truth.labels, "source": case.truth.source, "masks": sorted(case.truth.masks)}
    return {
        "kind": case.kind,
        "patient_id": case.patient_id,
        "bundle_path": str(bundle_path.resolve()),
        "modalities": ",".join(case.images),
        "has_truth": case.truth is not None,
        "truth_json": dumps(truth) if truth is not None else None,
        "created": case.created or utc_now(),
        "name": case.name or None,
        "content_sha256": content_sha256(case),
    }


class Store(AuditTrail):
    """Cases, prediction summaries and the audit log; safe to open from several processes at once.
    `read_only=True`: no migration, no write lock, every write refused (the schema must be at the newest
    revision already)."""

    def __init__(self, url: str | None = None, *, read_only: bool = False) -> None:
        self.url = url or default_db_url()
        self.read_only = read_only
        self._engine = make_engine(self.url, read_only=read_only)
        self._write_engine = self._engine.execution_options(**{WRITE_OPTION: True})
        self._shown_url = make_url(self.url).render_as_string(hide_password=True)
        try:
            if read_only:
                self._require_head()
            else:
                self.upgrade()
        except BaseException:
            self._engine.dispose()
            raise

    def __repr__(self) -> str:
        return f"Store({self._shown_url!r})"

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @property
    def shown_url(self) -> str:
        """The database URL without its password, for messages and reports."""
        return self._shown_url

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (reads; writes should go through the Store's methods)."""
        return self._engine

    def close(self) -> None:
        """Release every pooled connection; the Store is not usable afterwards."""
        self._engine.dispose()

    # -- schema ---------------------------------------------------------------------------------

    def upgrade(self) -> None:
        """Migrate the database to the newest revision; does nothing when it is already there."""
        if self.read_only:
            raise StoreError(f"The store {self._shown_url} was opened read-only; it cannot be upgraded from here.")
        config = alembic_config()
        script = ScriptDirectory.from_config(config)
        known = {rev.revision for rev in script.walk_revisions()}
        with self._writing_connection() as connection:
            if connection.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_PG_MIGRATION_LOCK})")
            current = MigrationContext.configure(connection).get_current_revision()
            if current is not None and current not in known:
                raise StoreError(
                    f"The database {self._shown_url} has schema revision {current}, which this OncoLens "
                    f"does not know (newest here: {script.get_current_head()}). Update OncoLens, or set "
                    "db_url to another database."
                )
            config.attributes["connection"] = connection
            head = script.get_current_head()
            if current != head:
                log.info("Upgrading the store %s from schema %s to %s.", self._shown_url, current or "(empty)", head)
            command.upgrade(config, "head")

    def schema_revision(self) -> str:
        """The Alembic revision the database is at ('' if it was never migrated)."""
        with self._database_errors(), self._engine.connect() as connection:
            return MigrationContext.configure(connection).get_current_revision() or ""

    def _require_head(self) -> None:
        """For a read-only store: the schema must be this version's, since reading may not migrate it."""
        current, head = self.schema_revision(), head_revision()
        if current == head:
            return
        known = {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}
        if not current:
            raise StoreError(f"{self._shown_url} is not an OncoLens store (it has no schema revision). Check --db "
                             "(or the db_url setting).")
        if current not in known:
            raise StoreError(f"The database {self._shown_url} has schema revision {current}, which this OncoLens does "
                             f"not know (newest here: {head}). Update OncoLens.")
        raise StoreError(
            f"The store {self._shown_url} is at schema revision {current}; this OncoLens reads revision {head}. "
            "Commands that only read never change a store, so upgrade it first: oncolens store upgrade "
            "(with the same --db), or open it once in the app.")

    # -- sessions -------------------------------------------------------------------------------

    @contextmanager
    def _writing_connection(self) -> Iterator[Connection]:
        with self._database_errors(), self._write_engine.begin() as connection:
            take_write_lock(connection)
            yield connection

    @contextmanager
    def _session(self, *, write: bool) -> Iterator[Session]:
        """A short transaction: committed on leaving, rolled back on error."""
        if write and self.read_only:
            raise StoreError(f"The store {self._shown_url} was opened read-only (for a command that only reads); "
                             "this change needs it opened for writing.")
        bind = self._write_engine if write else self._engine
        with self._database_errors(), Session(bind, expire_on_commit=False) as session, session.begin():
            if write:
                take_write_lock(session.connection())
            yield session

    @contextmanager
    def _database_errors(self) -> Iterator[None]:
        try:
            yield
        except IntegrityError:
            raise  # a refused change (guard trigger, duplicate key): callers tell these apart
        except DatabaseError as exc:
            raise database_error(exc, self._shown_url) from exc

    def _require_case(self, session: Session, case_id: str) -> CaseRecord:
        record = session.get(CaseRecord, case_id)
        if record is None:
            raise StoreError(
                f"No case {case_id!r} in the store {self._shown_url}. "
                "Add it first: open its bundle in OncoLens (File ▸ Open case bundle…)."
            )
        return record

    def _audited_case(self, session: Session, values: dict[str, Any]) -> dict[str, Any]:
        """The case fields the log keeps, with the patient id keyed."""
        detail = {name: values[name] for name in _CASE_FIELDS_AUDITED if name != "patient_id"}
        detail["patient_ref"] = self.patient_ref(values["patient_id"], session)
        if values.get("name"):
            detail["name_ref"] = self.patient_ref(values["name"], session)
        return detail

    def _check_frozen_images(self, session: Session, case: Case, folder: Path) -> None:
        """A case a study uses keeps the images frozen with the study: refuse a bundle with other ones."""
        frozen = session.execute(select(StudyCaseRecord.study_id, StudyCaseRecord.images_sha256).where(
            StudyCaseRecord.case_id == case.id, StudyCaseRecord.images_sha256.is_not(None))).all()
        for study_id, text in frozen:
            differ = [m for m, digest in json.loads(text).items()
                      if m not in case.images or image_sha256(case.images[m]) != digest]
            if differ:
                raise StoreError(
                    f"Case {case.id} is used by reader study {study_id}, and the {', '.join(differ)} image(s) in "
                    f"{folder} differ from those frozen with the study. Nothing was changed: the study keeps its "
                    "images. Open these images as a new case with another id.")

    def _upsert_case(self, session: Session, case: Case, values: dict[str, Any], actor: str) -> None:
        """Insert or update one case row and log what changed (with the row's new fingerprint, and patient ids
        keyed); an unchanged case logs nothing."""
        record = session.get(CaseRecord, case.id)
        if record is None:
            record = CaseRecord(id=case.id, updated=utc_now(), **values)
            session.add(record)
            detail = {**self._audited_case(session, values), "row": self.row_fingerprint(session, record)}
            self.record_event(session, actor, "case.add", "case", case.id, detail)
            return
        values = {k: v for k, v in values.items() if k != "created"}  # a case keeps its first creation time
        changed = {k: [getattr(record, k), v] for k, v in values.items() if getattr(record, k) != v}
        if not changed:
            return
        if {"bundle_path", "modalities", "content_sha256"} & set(changed):
            self._check_frozen_images(session, case, Path(values["bundle_path"]))
        for name, (_old, new) in changed.items():
            setattr(record, name, new)
        record.updated = utc_now()
        self._key_identity(session, changed)
        self.record_event(session, actor, "case.update", "case", case.id,
                           {"changed": changed, "row": self.row_fingerprint(session, record)})

    def _key_identity(self, session: Session, changed: dict[str, list]) -> None:
        """Patient id and case name changes as keyed hashes (`patient_ref`, `name_ref`), never in plain text."""
        for name in _CASE_FIELDS_KEYED:
            if name in changed:
                ref = "patient_ref" if name == "patient_id" else f"{name}_ref"
                changed[ref] = [self.patient_ref(v, session) for v in changed.pop(name)]

    # -- cases ----------------------------------------------------------------------------------

    def find_case_by_content(self, sha256: str, kind: str | None = None) -> str | None:
        """The id of the oldest stored case whose images have this content hash (see content_sha256), or None."""
        query = select(CaseRecord.id).where(CaseRecord.content_sha256 == sha256)
        if kind:
            query = query.where(CaseRecord.kind == kind)
        with self._session(write=False) as session:
            return session.scalars(query.order_by(CaseRecord.created, CaseRecord.id).limit(1)).first()

    def set_case_identity(self, case_id: str, *, patient_id: str | None, name: str, actor: str) -> bool:
        """Give a stored case a patient id and a name (empty: none), in its row and its bundle's case.json; the
        change is logged (case.update, both keyed). Returns False when nothing changed."""
        patient_id = (patient_id or "").strip() or None
        name = (name or "").strip()
        if patient_id is not None and len(patient_id) > 128:
            raise StoreError(f"Case {case_id}: the patient id is {len(patient_id)} characters; use at most 128.")
        if len(name) > 256:
            raise StoreError(f"Case {case_id}: the case name is {len(name)} characters; use at most 256.")
        with self._session(write=True) as session:
            record = self._require_case(session, case_id)
            changed = {k: [getattr(record, k), v] for k, v in (("patient_id", patient_id), ("name", name or None))
                       if getattr(record, k) != v}
            if not changed:
                return False
            try:
                set_bundle_identity(record.bundle_path, patient_id=patient_id, name=name)
            except BundleError as exc:
                raise StoreError(f"Case {case_id}: {exc} Nothing was changed.") from None
            record.patient_id, record.name, record.updated = patient_id, name or None, utc_now()
            self._key_identity(session, changed)
            self.record_event(session, actor, "case.update", "case", case_id,
                              {"changed": changed, "row": self.row_fingerprint(session, record)})
        return True

    def add_case(self, case: Case, bundle_path: Path, actor: str = "system") -> None:
        """Add a case whose bundle is already written at `bundle_path`, or update its row if known."""
        folder = Path(bundle_path)
        if not is_bundle(folder):
            raise StoreError(
                f"Case {case.id}: {folder} is not a case bundle (no case.json). "
                "Write it first with engine.cases.bundle.write_bundle(case, folder)."
            )
        values = _case_values(case, folder)
        with self._session(write=True) as session:
            self._upsert_case(session, case, values, actor)

    def get_case_record(self, case_id: str) -> CaseRecord:
        """The stored row of one case; StoreError if the id is unknown."""
        with self._session(write=False) as session:
            return self._require_case(session, case_id)

    def load_case(self, case_id: str) -> Case:
        """Read the case's images and truth back from its bundle folder."""
        folder = Path(self.get_case_record(case_id).bundle_path)
        if not folder.is_dir():
            raise StoreError(
                f"Case {case_id}: its bundle folder {folder} is missing (moved or deleted). "
                "Re-import the bundle from where it is now (File ▸ Open case bundle…)."
            )
        try:
            case = read_bundle(folder)
        except BundleError as exc:
            raise StoreError(f"Case {case_id}: {exc}") from exc
        if case.id != case_id:
            raise StoreError(
                f"Case {case_id}: the bundle at {folder} holds case {case.id} instead. Re-import the right bundle."
            )
        return case

    def list_cases(
        self, kind: str | None = None, text: str | None = None, limit: int | None = None
    ) -> list[CaseSummary]:
        """Cases newest first; `text` matches part of the id or patient id, ignoring case."""
        counts = (
            select(PredictionRecord.case_id, func.count().label("n"))
            .group_by(PredictionRecord.case_id)
            .subquery()
        )
        query = select(CaseRecord, func.coalesce(counts.c.n, 0)).outerjoin(
            counts, counts.c.case_id == CaseRecord.id
        )
        if kind:
            query = query.where(CaseRecord.kind.in_((kind,)))
        if text and text.strip():
            needle = text.strip()
            query = query.where(or_(
                CaseRecord.id.icontains(needle, autoescape=True),
                CaseRecord.patient_id.icontains(needle, autoescape=True),
                CaseRecord.name.icontains(needle, autoescape=True),
            ))
        query = query.order_by(CaseRecord.created.desc(), CaseRecord.id)
        if limit is not None:
            query = query.limit(limit)
        with self._session(write=False) as session:
            rows = session.execute(query).all()
        return [
            CaseSummary(
                id=record.id,
                kind=record.kind,
                patient_id=record.patient_id,
                modalities=tuple(m for m in record.modalities.split(",") if m),
                has_truth=record.has_truth,
                n_predictions=int(n),
                bundle_path=Path(record.bundle_path),
                created=record.created,
                name=record.name or "",
            )
            for record, n in rows
        ]

    def delete_case(self, case_id: str, actor: str) -> None:
        """Remove the case row and its predictions (the bundle folder stays on disk; the audit log keeps its history)."""
        with self._session(write=True) as session:
            record = self._require_case(session, case_id)
            removed = session.execute(delete(PredictionRecord).where(PredictionRecord.case_id == case_id))
            detail = self._audited_case(session, {name: getattr(record, name) for name in _CASE_FIELDS_AUDITED})
            detail["predictions_deleted"] = removed.rowcount
            session.delete(record)
            self.record_event(session, actor, "case.delete", "case", case_id, detail)

    def import_bundles(self, folder: Path, actor: str = "system") -> list[str]:
        """Add (or update) every case bundle one level below `folder`; other entries are skipped.

        All bundles are read first; if any is broken nothing is added and the error lists them.
        """
        folder = Path(folder)
        if not folder.is_dir():
            raise StoreError(f"Cannot import bundles from {folder}: it is not a folder.")
        found: dict[str, tuple[Path, Case, dict[str, Any]]] = {}
        problems: list[str] = []
        for child in sorted(p for p in folder.iterdir() if p.is_dir() and is_bundle(p)):
            try:
                case = read_bundle(child)
            except BundleError as exc:
                problems.append(str(exc))
                continue
            if case.id in found:
                problems.append(f"{child}: case {case.id} is also in {found[case.id][0]}.")
                continue
            found[case.id] = (child, case, _case_values(case, child))
        if problems:
            raise StoreError(
                f"Nothing was imported from {folder}; fix or move these bundles first:\n  " + "\n  ".join(problems)
            )
        with self._session(write=True) as session:
            for _child, case, values in found.values():
                self._upsert_case(session, case, values, actor)
        return list(found)

    # -- predictions ----------------------------------------------------------------------------

    def add_prediction(self, case_id: str, prediction: Prediction | PredictionSummary, actor: str = "system") -> int:
        """Keep the summary of `prediction` for a stored case; returns the new prediction id."""
        summary = prediction.summary() if isinstance(prediction, Prediction) else prediction
        with self._session(write=True) as session:
            self._require_case(session, case_id)
            record = PredictionRecord(
                case_id=case_id,
                model=summary.model,
                weights_sha256=dumps(summary.weights_sha256),
                summary_json=dumps(summary.to_dict()),
                created=summary.created or utc_now(),
            )
            session.add(record)
            session.flush()
            detail = {"prediction_id": record.id, "model": summary.model, "calls": dict(summary.calls)}
            self.record_event(session, actor, "prediction.add", "case", case_id, detail)
        return record.id

    def predictions_for(self, case_id: str) -> list[StoredPrediction]:
        """A case's stored prediction summaries, oldest first, with their row ids."""
        with self._session(write=False) as session:
            self._require_case(session, case_id)
            records = session.scalars(
                select(PredictionRecord).where(PredictionRecord.case_id == case_id).order_by(PredictionRecord.id)
            ).all()
        return [StoredPrediction(r.id, r.case_id, record_summary(r)) for r in records]

    # -- transactions for engine packages with their own tables --------------------------------

    @contextmanager
    def transaction(self, *, write: bool) -> Iterator[Session]:
        """A short ORM transaction for engine packages that keep their own tables here (engine.studies):
        committed on leaving, rolled back on error; `write=True` waits for SQLite's write lock up front."""
        with self._session(write=write) as session:
            yield session
