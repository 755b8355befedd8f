"""Shipped carbon-intensity tables: one record per zone, each with its value, year and source.

Four CSV tables ship in ``bertwatt/carbon/data/`` (see ``data/README.md`` there and
``docs/carbon.md`` for where every number comes from):

================== ====================== =====================================================
table              keys                   example
================== ====================== =====================================================
``countries``      ISO 3166-1 alpha-2/3   ``FR``, ``fra``
``us_states``      ``US-XX``              ``US-CA``
``subnational``    Nordic bidding zones,  ``SE3``, ``NO1``, ``CN-BJ``
                   Chinese provinces
``cloud_regions``  ``provider:region``    ``aws:eu-west-3``, ``gcp:europe-west1``
================== ====================== =====================================================

Lookups are case-insensitive. Every row can also be reached by a table-qualified key
``<table>:<zone>`` (``countries:FR``, ``subnational:FI``). When two tables use the same plain key
(``FI`` is both a country and a Nordic bidding zone) the plain key resolves in the table order
above and the other row's canonical key is its qualified one; both records say so in ``notes``.

Nothing is read at import: the tables are parsed on the first lookup, once per
:class:`ZoneTables`.
"""

from __future__ import annotations

import csv
import difflib
import io
import math
import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from os import PathLike
from pathlib import Path
from typing import Any

from bertwatt._echo import quote
from bertwatt.errors import BertwattWarning, CarbonDataError, ConfigError

__all__ = [
    "ZoneRecord",
    "ZoneTables",
    "all_zones",
    "check_env_zone",
    "default_tables",
    "format_zones",
    "lookup",
    "normalize_zone",
    "search",
]


@dataclass(frozen=True, slots=True, kw_only=True)
class ZoneRecord:
    """One row of a shipped (or user) intensity table.

    Attributes:
        key: canonical lookup key, e.g. ``"FR"``, ``"US-CA"``, ``"aws:eu-west-3"``.
        name: human name of the area or region, e.g. ``"France"``, ``"Paris (FRA)"``.
        g_per_kwh: yearly average intensity in gCO2e/kWh; ``None`` when the table has no
            published value for this zone (it is listed, but cannot be used for emissions).
        year: data year of the value; ``None`` when the source does not establish it.
        source: where the value comes from, as carried by the table.
        table: ``"countries"``, ``"us_states"``, ``"subnational"`` or ``"cloud_regions"``.
        aliases: other keys that resolve to this record (alpha-3 code, qualified key, ...).
        notes: what a reader of the figure should know (basis, unit caveats, mappings).
    """

    key: str
    name: str
    g_per_kwh: float | None
    year: int | None
    source: str
    table: str
    aliases: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class _Table:
    id: str
    file: str
    columns: tuple[str, ...]
    note: str


_TABLES: tuple[_Table, ...] = (
    _Table(
        "countries",
        "grid_intensity_countries.csv",
        ("zone", "iso3", "name", "year", "gco2e_per_kwh", "source"),
        "yearly average intensity of the country's electricity generation, life-cycle basis "
        "(Ember / Energy Institute via Our World in Data); location-based, not marginal",
    ),
    _Table(
        "us_states",
        "grid_intensity_us_states.csv",
        ("zone", "name", "year", "gco2e_per_kwh", "source"),
        "US EPA eGRID state total output emission rate (STC2ERTA): CO2e emitted at the power "
        "plants of the state per MWh generated (no upstream life-cycle emissions), converted "
        "from lb/MWh x 0.45359237",
    ),
    _Table(
        "subnational",
        "grid_intensity_subnational.csv",
        ("zone", "name", "year", "gco2e_per_kwh", "source"),
        "yearly average of a sub-national grid area; location-based, not marginal",
    ),
    _Table(
        "cloud_regions",
        "grid_intensity_cloud_regions.csv",
        ("provider", "region", "location", "country_iso3", "zone", "gco2e_per_kwh", "source"),
        "average intensity of the grid that serves the cloud region (location-based: the "
        "provider's clean-energy purchases are not subtracted)",
    ),
)

#: The cloud table has no ``year`` column. Years established from the sources (docs/carbon.md):
#: Google's values equal GoogleCloudPlatform/region-carbon-info ``data/yearly/2023.csv`` row for
#: row; the AWS US rows are eGRID2023 state averages; the Cloud Carbon Footprint factors used for
#: other AWS regions do not state one data year, so those stay unknown.
_CLOUD_YEAR_RULES: tuple[tuple[str, int | None, str], ...] = (
    (
        "https://cloud.google.com/sustainability/region-carbon",
        2023,
        "year 2023 established by bertwatt: the values equal Google's published "
        "region-carbon-info data/yearly/2023.csv",
    ),
    ("location-based: EPA eGRID2023", 2023, "year 2023: EPA eGRID2023 state average"),
    (
        "Cloud Carbon Footprint",
        None,
        "data year unknown: Cloud Carbon Footprint compiles these country factors from "
        "several publications and does not state one year",
    ),
)

#: Known errata in the shipped cloud table: (provider, region as spelled in the file) -> name.
_REGION_ERRATA: dict[tuple[str, str], str] = {("gcp", "me-cenrtal1"): "me-central1"}

#: Rows of the non-cloud tables whose name needs explaining: key -> (name, note).
_ROW_ERRATA: dict[tuple[str, str], tuple[str, str]] = {
    ("us_states", "US-USA"): (
        "United States (eGRID national total)",
        "eGRID's US national total, keyed 'US-usa' and named 'Usa' in the shipped table",
    ),
}

#: Caveats for particular rows, matched on the source text.
_SOURCE_NOTES: tuple[tuple[str, str], ...] = (
    ("unit gCO2/kWh", "value is CO2 only (gCO2/kWh), not CO2e: other greenhouse gases excluded"),
)


def normalize_zone(name: object) -> str:
    """Return the lookup form of a zone string: upper case, or lower case after a ``prefix:``.

    Raises:
        ConfigError: ``name`` is not a string, or is empty.
    """
    if not isinstance(name, str):
        raise ConfigError(
            "a zone must be a string such as 'FR', 'US-CA' or 'aws:eu-west-3', got "
            f"{quote(name, 60)}"
        )
    text = name.strip()
    if not text:
        raise ConfigError(
            "a zone must be a non-empty string such as 'FR', 'US-CA' or 'aws:eu-west-3'"
        )
    if ":" in text:
        prefix, _, rest = text.partition(":")
        return f"{prefix.strip().lower()}:{rest.strip().lower()}"
    return text.upper()


class ZoneTables:
    """A set of intensity tables, parsed on first use (thread-safe).

    Args:
        data_dir: directory holding the four CSV files; ``None`` (default) uses the tables shipped
            inside the package. Point it at a copy to use your own, updated values.
    """

    def __init__(self, data_dir: str | PathLike[str] | None = None) -> None:
        self._data_dir = Path(data_dir) if data_dir is not None else None
        self._lock = threading.Lock()
        self._records: tuple[ZoneRecord, ...] | None = None
        self._index: dict[str, ZoneRecord] = {}

    def __repr__(self) -> str:
        where = "package data" if self._data_dir is None else str(self._data_dir)
        return f"ZoneTables({where})"

    # ------------------------------------------------------------------ public
    def records(self) -> tuple[ZoneRecord, ...]:
        """Every record of every table, in table order then file order."""
        self._load()
        assert self._records is not None
        return self._records

    def lookup(self, name: str) -> ZoneRecord:
        """The record for ``name`` (any key or alias, case-insensitive).

        Raises:
            ConfigError: ``name`` is not a non-empty string.
            CarbonDataError: no table has that zone; the message names the closest matches.
        """
        norm = normalize_zone(name)
        self._load()
        record = self._index.get(norm)
        if record is None:
            raise self._unknown(name, norm)
        return record

    def search(self, query: str | None = None) -> list[ZoneRecord]:
        """Records whose key, alias, name or table contains ``query`` (case-insensitive).

        ``None`` or an empty query lists every record.
        """
        records = self.records()
        q = (query or "").strip().casefold()
        if not q:
            return list(records)
        out = []
        for r in records:
            hay = (r.key, r.name, r.table, *r.aliases)
            if any(q in h.casefold() for h in hay):
                out.append(r)
        return out

    def suggestions(self, name: str, limit: int = 5) -> list[str]:
        """Canonical keys closest to ``name`` (by key, alias or name), best first (none for a
        name longer than any zone name could be: fuzzy matching is quadratic in its length)."""
        if not isinstance(name, str) or len(name) > _MAX_SUGGEST_LEN:
            return []
        try:
            norm = normalize_zone(name)
        except ConfigError:
            return []
        self._load()
        found: list[str] = []
        for cand in difflib.get_close_matches(norm, list(self._index), n=limit * 2, cutoff=0.6):
            key = self._index[cand].key
            if key not in found:
                found.append(key)
        q = name.strip().casefold()
        if len(q) >= 3:
            for r in self.records():
                if q in r.name.casefold() and r.key not in found:
                    found.append(r.key)
            names = {r.name.casefold(): r.key for r in self.records()}
            for cand in difflib.get_close_matches(q, list(names), n=limit, cutoff=0.75):
                if names[cand] not in found:
                    found.append(names[cand])
        return found[:limit]

    # ------------------------------------------------------------------ loading
    def _load(self) -> None:
        if self._records is not None:
            return
        with self._lock:
            if self._records is not None:
                return
            raw: list[dict[str, Any]] = []
            for table in _TABLES:
                raw.extend(self._read_table(table))
            records, index = _build(raw)
            self._index = index
            self._records = records

    def _read_text(self, file: str) -> tuple[str, str]:
        if self._data_dir is None:
            res = resources.files("bertwatt.carbon").joinpath("data").joinpath(file)
            where = f"bertwatt/carbon/data/{file}"
            try:
                return res.read_text(encoding="utf-8-sig"), where
            except OSError as err:
                raise CarbonDataError(
                    f"cannot read the shipped zone table ({err.strerror or err})",
                    where=where,
                    fix="reinstall bertwatt: `pip install --force-reinstall bertwatt`",
                ) from err
        path = self._data_dir / file
        try:
            return path.read_text(encoding="utf-8-sig"), str(path)
        except OSError as err:
            raise CarbonDataError(
                f"cannot read zone table ({err.strerror or err})",
                where=str(path),
                fix=f"put {file} in {self._data_dir} (copy it from the shipped tables)",
            ) from err

    def _read_table(self, table: _Table) -> list[dict[str, Any]]:
        text, where = self._read_text(table.file)
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None:
            raise CarbonDataError("zone table is empty (no header line)", where=where)
        cols = [h.strip() for h in header]
        missing = [c for c in table.columns if c not in cols]
        if missing:
            raise CarbonDataError(
                f"line 1: header lacks column(s) {', '.join(missing)}; expected "
                f"{', '.join(table.columns)}",
                where=where,
            )
        pos = {c: i for i, c in enumerate(cols)}
        rows = []
        for fields in reader:
            line = reader.line_num
            if not fields or all(not f.strip() for f in fields):
                continue
            if len(fields) != len(cols):
                raise CarbonDataError(
                    f"line {line}: {len(fields)} fields, the header has {len(cols)}", where=where
                )
            row = {c: fields[i].strip() for c, i in pos.items()}
            rows.append(_parse_row(table, row, where, line))
        return rows

    def _unknown(self, name: str, norm: str) -> CarbonDataError:
        close = self.suggestions(name)
        records = self.records()
        prefixes = sorted({r.key.split(":", 1)[0] for r in records if r.table == "cloud_regions"})
        prefixes += [t.id for t in _TABLES if t.id != "cloud_regions"]
        msg = f"unknown carbon-intensity zone {quote(name.strip(), 60)}"
        if ":" in norm and norm.split(":", 1)[0] not in prefixes:
            msg += f" (known prefixes: {', '.join(prefixes)})"
        if close:
            shown = ", ".join(f"{k} ({self._index[normalize_zone(k)].name})" for k in close)
            msg += f"; closest: {shown}"
        return CarbonDataError(
            msg,
            fix="use one of the suggested zones, list zones with `bertwatt zones QUERY`, or "
            "pass CarbonIntensity.constant(g_per_kwh, source=...) with your own value",
        )


def _parse_row(table: _Table, row: dict[str, str], path: str, line: int) -> dict[str, Any]:
    def bad(message: str) -> CarbonDataError:
        return CarbonDataError(f"line {line}: {message}", where=path)

    value_text = row["gco2e_per_kwh"]
    value: float | None
    if value_text == "":
        value = None
    else:
        try:
            value = float(value_text)
        except ValueError:
            raise bad(f"gco2e_per_kwh {value_text!r} is not a number") from None
        if not math.isfinite(value) or value < 0:
            raise bad(f"gco2e_per_kwh {value_text!r} must be a finite number >= 0")
    year: int | None = None
    year_text = row.get("year", "")
    if year_text:
        try:
            year = int(year_text)
        except ValueError:
            raise bad(f"year {year_text!r} is not an integer") from None
    source = row["source"]
    if not source:
        raise bad("source is empty: every row must name its source")
    notes = [table.note]
    notes += [n for pattern, n in _SOURCE_NOTES if pattern in source]
    if value is None:
        notes.append("the table lists this zone without a published value")
    aliases: list[str] = []
    if table.id == "cloud_regions":
        provider, region = row["provider"].lower(), row["region"].lower()
        if not provider or not region:
            raise bad("provider and region must not be empty")
        fixed = _REGION_ERRATA.get((provider, region))
        if fixed is not None:
            aliases.append(f"{provider}:{region}")
            notes.append(
                f"spelled {region!r} in the shipped table; the provider's name is {fixed!r}"
            )
            region = fixed
        key = f"{provider}:{region}"
        name = row["location"] or region
        if row["country_iso3"]:
            name = f"{name} ({row['country_iso3']})"
        if row["zone"]:
            notes.append(f"the region is in grid zone {row['zone']}")
        if not year_text:
            for pattern, rule_year, why in _CLOUD_YEAR_RULES:
                if source.startswith(pattern) or pattern in source:
                    year = rule_year
                    notes.append(why)
                    break
            else:
                notes.append("data year unknown: the source does not state it")
    else:
        key = row["zone"].upper()
        if not key:
            raise bad("zone is empty")
        name = row["name"] or key
        if (table.id, key) in _ROW_ERRATA:
            name, erratum = _ROW_ERRATA[(table.id, key)]
            notes.append(erratum)
        if table.id == "countries" and row["iso3"]:
            aliases.append(row["iso3"].upper())
        aliases.append(f"{table.id}:{key}")
    return {
        "key": key,
        "name": name,
        "g_per_kwh": value,
        "year": year,
        "source": source,
        "table": table.id,
        "aliases": aliases,
        "notes": notes,
        "where": f"{path} line {line}",
    }


def _build(raw: list[dict[str, Any]]) -> tuple[tuple[ZoneRecord, ...], dict[str, ZoneRecord]]:
    owner: dict[str, int] = {}  # normalized plain key -> index of the row that owns it
    canonical: list[str] = []
    extra_notes: list[list[str]] = [[] for _ in raw]
    for i, row in enumerate(raw):
        norm = normalize_zone(row["key"])
        j = owner.get(norm)
        if j is None:
            owner[norm] = i
            canonical.append(row["key"])
            continue
        if raw[j]["table"] == row["table"]:
            raise CarbonDataError(
                f"zone {row['key']!r} appears twice in the {row['table']} table "
                f"(first at {raw[j]['where']})",
                where=row["where"],
            )
        qualified = f"{row['table']}:{row['key']}"
        canonical.append(qualified)
        extra_notes[i].append(
            f"plain {row['key']!r} resolves to the {raw[j]['table']} table; "
            f"use {qualified!r} for this row"
        )
        extra_notes[j].append(
            f"the {row['table']} table also has {row['key']!r} ({row['year'] or 'year unknown'}, "
            f"{row['source']}): use {qualified!r} for it"
        )
    claimed = {normalize_zone(k) for k in canonical}
    records: list[ZoneRecord] = []
    index: dict[str, ZoneRecord] = {}
    for i, row in enumerate(raw):
        aliases = []
        for alias in row["aliases"]:
            norm = normalize_zone(alias)
            if norm not in claimed:  # an alias never shadows a key or an earlier alias
                claimed.add(norm)
                aliases.append(alias)
        rec = ZoneRecord(
            key=canonical[i],
            name=row["name"],
            g_per_kwh=row["g_per_kwh"],
            year=row["year"],
            source=row["source"],
            table=row["table"],
            aliases=tuple(aliases),
            notes=tuple(row["notes"] + extra_notes[i]),
        )
        records.append(rec)
        index[normalize_zone(rec.key)] = rec
        for alias in aliases:
            index[normalize_zone(alias)] = rec
    return tuple(records), index


# ---------------------------------------------------------------------- module-level helpers
_MAX_SUGGEST_LEN = 64
_default: ZoneTables | None = None
_default_lock = threading.Lock()


def default_tables() -> ZoneTables:
    """The shared :class:`ZoneTables` over the shipped package data (created on first use)."""
    global _default
    with _default_lock:
        if _default is None:
            _default = ZoneTables()
        return _default


def lookup(name: str) -> ZoneRecord:
    """Look ``name`` up in the shipped tables (see :meth:`ZoneTables.lookup`)."""
    return default_tables().lookup(name)


def search(query: str | None = None) -> list[ZoneRecord]:
    """Search the shipped tables; ``None`` lists every zone (see :meth:`ZoneTables.search`)."""
    return default_tables().search(query)


_warned_env: set[str] = set()
_warned_lock = threading.Lock()


def check_env_zone(value: str, *, stacklevel: int = 3) -> str | None:
    """Check the zone named by ``BERTWATT_ZONE``; return why it is unusable, or None.

    An unusable zone is a configuration error, reported as a :class:`BertwattWarning` (once per
    value and process) that names the fix. It stays a warning, not an exception, so a typo in an
    environment variable never stops the training it would only label; the report's
    ``carbon_note`` says emissions were not computed and why.
    """
    try:
        lookup(value)
    except (CarbonDataError, ConfigError) as err:
        why = err.message
    else:
        return None
    with _warned_lock:
        first = value not in _warned_env
        _warned_env.add(value)
    if first:
        import warnings

        warnings.warn(
            f"configuration error: BERTWATT_ZONE={quote(value, 60)} is not a usable "
            f"carbon-intensity zone ({why}); emissions will not be computed. Fix: set "
            "BERTWATT_ZONE to a zone listed by `bertwatt zones` (e.g. FR, US-CA, "
            "aws:eu-west-3), or unset it",
            BertwattWarning,
            stacklevel=stacklevel,
        )
    return why


def all_zones() -> tuple[ZoneRecord, ...]:
    """Every record of the shipped tables."""
    return default_tables().records()


def format_zones(records: Iterable[ZoneRecord]) -> str:
    """A plain-text table of ``records`` for the ``bertwatt zones`` command.

    Columns: zone key, gCO2e/kWh, year, name, source. An empty input gives a one-line message.
    """
    rows: Sequence[ZoneRecord] = list(records)
    if not rows:
        return "no matching zone; run `bertwatt zones` without a query to list them all"
    head = ("ZONE", "gCO2e/kWh", "YEAR", "NAME", "SOURCE")
    body = [
        (
            r.key,
            "n/a" if r.g_per_kwh is None else f"{r.g_per_kwh:g}",
            "unknown" if r.year is None else str(r.year),
            r.name,
            r.source,
        )
        for r in rows
    ]
    widths = [max(len(head[i]), *(len(b[i]) for b in body)) for i in range(4)]
    lines = []
    for cells in (head, *body):
        lines.append(
            f"{cells[0]:<{widths[0]}}  {cells[1]:>{widths[1]}}  {cells[2]:<{widths[2]}}  "
            f"{cells[3]:<{widths[3]}}  {cells[4]}".rstrip()
        )
    lines.append(f"{len(rows)} zone{'s' if len(rows) != 1 else ''}")
    return "\n".join(lines)
