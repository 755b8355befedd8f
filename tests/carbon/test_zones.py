"""Zone tables: every shipped row resolves by its own key; unknown and malformed zones."""

from __future__ import annotations

import csv
import shutil
import subprocess
import sys
import textwrap
from importlib import resources
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bertwatt.carbon import CarbonIntensity, zones
from bertwatt.carbon.zones import ZoneTables, format_zones, lookup, normalize_zone, search
from bertwatt.errors import CarbonDataError, ConfigError

DATA = Path(str(resources.files("bertwatt.carbon").joinpath("data")))
SHARED = Path(__file__).resolve().parents[3] / "shared" / "data"  # beside the repository
FILES = [
    "grid_intensity_countries.csv",
    "grid_intensity_us_states.csv",
    "grid_intensity_subnational.csv",
    "grid_intensity_cloud_regions.csv",
]


def rows(file: str) -> list[dict[str, str]]:
    with open(DATA / file, encoding="utf-8-sig", newline="") as f:
        return list(csv.DictReader(f))


def test_every_table_ships_with_rows() -> None:
    counts = {f: len(rows(f)) for f in FILES}
    assert counts == {
        "grid_intensity_countries.csv": 213,
        "grid_intensity_us_states.csv": 52,
        "grid_intensity_subnational.csv": 40,
        "grid_intensity_cloud_regions.csv": 65,
    }
    assert len(zones.all_zones()) == sum(counts.values())


@pytest.mark.skipif(not SHARED.is_dir(), reason="shared data directory not present")
@pytest.mark.parametrize("file", FILES)
def test_shipped_tables_are_copies_of_the_shared_data(file: str) -> None:
    assert (DATA / file).read_bytes() == (SHARED / file).read_bytes()


def test_every_country_row_resolves_by_alpha2_alpha3_and_qualified_key() -> None:
    for row in rows("grid_intensity_countries.csv"):
        for key in (row["zone"], row["iso3"], f"countries:{row['zone']}"):
            rec = lookup(key)
            assert rec.table == "countries", key
            assert rec.g_per_kwh == float(row["gco2e_per_kwh"]), key
            assert rec.year == int(row["year"]), key
            assert rec.source == row["source"], key
            assert rec.name == row["name"]


@pytest.mark.parametrize(
    ("file", "table"),
    [
        ("grid_intensity_us_states.csv", "us_states"),
        ("grid_intensity_subnational.csv", "subnational"),
    ],
)
def test_every_regional_row_resolves_by_its_key(file: str, table: str) -> None:
    country_keys = {r["zone"] for r in rows("grid_intensity_countries.csv")}
    for row in rows(file):
        rec = lookup(f"{table}:{row['zone']}")
        assert (rec.table, rec.g_per_kwh, rec.year, rec.source) == (
            table,
            float(row["gco2e_per_kwh"]),
            int(row["year"]),
            row["source"],
        )
        plain = lookup(row["zone"])
        if row["zone"] in country_keys:  # FI: the countries table wins the plain key
            assert plain.table == "countries"
            assert rec.key == f"{table}:{row['zone']}"
        else:
            assert plain is rec
            assert rec.key == row["zone"].upper()


def test_every_cloud_row_resolves_by_provider_and_region() -> None:
    for row in rows("grid_intensity_cloud_regions.csv"):
        rec = lookup(f"{row['provider']}:{row['region']}")
        assert rec.table == "cloud_regions"
        assert rec.g_per_kwh == float(row["gco2e_per_kwh"])
        assert rec.source == row["source"]
        if row["provider"] == "gcp" or "eGRID2023" in row["source"]:
            assert rec.year == 2023
        else:
            assert rec.year is None
            assert any("data year unknown" in n for n in rec.notes)


def test_every_record_carries_a_source_and_says_when_its_year_is_unknown() -> None:
    for rec in zones.all_zones():
        assert rec.source.strip()
        assert rec.notes, rec.key
        if rec.year is None:
            assert any("year unknown" in n for n in rec.notes), rec.key


@pytest.mark.parametrize(
    ("query", "key"),
    [
        ("FR", "FR"),
        ("fr", "FR"),
        (" Fra ", "FR"),
        ("us-ca", "US-CA"),
        ("Se3", "SE3"),
        ("cn-bj", "CN-BJ"),
        ("AWS:EU-WEST-3", "aws:eu-west-3"),
        ("gcp:Europe-West1", "gcp:europe-west1"),
        ("subnational:fi", "subnational:FI"),
    ],
)
def test_lookups_are_case_insensitive(query: str, key: str) -> None:
    assert lookup(query).key == key


def test_shadowed_keys_point_at_each_other() -> None:
    country, nordic = lookup("FI"), lookup("subnational:FI")
    assert country.year == 2023 and nordic.year == 2025
    assert any("subnational:FI" in n for n in country.notes)
    assert any("resolves to the countries table" in n for n in nordic.notes)


def test_misspelt_cloud_region_is_reachable_under_both_names() -> None:
    right, wrong = lookup("gcp:me-central1"), lookup("gcp:me-cenrtal1")
    assert right is wrong
    assert right.key == "gcp:me-central1"
    assert any("me-cenrtal1" in n for n in right.notes)


def test_egrid_national_total_row_is_named_for_what_it_is() -> None:
    rec = lookup("us-usa")
    assert rec.name == "United States (eGRID national total)"
    assert any("US-usa" in n for n in rec.notes)


def test_china_rows_say_co2_only() -> None:
    assert any("CO2 only" in n for n in lookup("CN-GD").notes)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("FRX", "FR"),
        ("France", "FR"),
        ("US_CA", "US-CA"),
        ("aws:eu-west-9", "aws:eu-west-3"),
        ("gcp:europe-west99", "gcp:europe-west9"),
        ("SE5", "SE3"),
    ],
)
def test_unknown_zone_names_the_closest_matches(query: str, expected: str) -> None:
    with pytest.raises(CarbonDataError) as info:
        lookup(query)
    text = str(info.value)
    assert f"unknown carbon-intensity zone {query!r}" in text
    assert expected in text.split("closest:")[1]
    assert "bertwatt zones" in text


def test_unknown_prefix_lists_the_known_ones() -> None:
    with pytest.raises(CarbonDataError, match=r"known prefixes: aws, gcp, countries"):
        lookup("azure:westeurope")


@pytest.mark.parametrize("bad", ["", "   ", None, 42, b"FR"])
def test_malformed_zone_is_a_config_error(bad: object) -> None:
    with pytest.raises(ConfigError, match="zone must be"):
        lookup(bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        CarbonIntensity.zone(bad)  # type: ignore[arg-type]


def test_search_and_format() -> None:
    found = search("paris")
    assert {r.key for r in found} == {"aws:eu-west-3", "gcp:europe-west9"}
    text = format_zones(found)
    lines = text.splitlines()
    assert lines[0].split() == ["ZONE", "gCO2e/kWh", "YEAR", "NAME", "SOURCE"]
    assert "gcp:europe-west9" in text and "2023" in text and "unknown" in text
    assert "cloud.google.com" in text
    assert lines[-1] == "2 zones"
    assert len(search(None)) == len(zones.all_zones()) == len(search(""))
    assert {r.key for r in search("us-")} >= {"US-CA", "US-TX"}
    assert search("aws") and all(r.key.startswith("aws:") for r in search("aws:"))
    assert search("no such place") == []
    assert "no matching zone" in format_zones([])


def test_zone_intensity_carries_year_and_source() -> None:
    fr = CarbonIntensity.zone("FR")
    rec = lookup("FR")
    assert (fr.zone, fr.g_per_kwh, fr.year, fr.source) == ("FR", rec.g_per_kwh, 2023, rec.source)


# ---------------------------------------------------------------------- custom tables
@pytest.fixture
def table_dir(tmp_path: Path) -> Path:
    for f in FILES:
        shutil.copy(DATA / f, tmp_path / f)
        (tmp_path / f).chmod(0o644)
    return tmp_path


def _append(path: Path, line: str) -> None:
    with open(path, "a", encoding="utf-8", newline="") as f:
        f.write(line + "\r\n")


def test_row_without_a_value_is_listed_but_not_usable(table_dir: Path) -> None:
    _append(table_dir / "grid_intensity_us_states.csv", "US-ZZ,Nowhere,2023,,Test source")
    tables = ZoneTables(table_dir)
    rec = tables.lookup("us-zz")
    assert rec.g_per_kwh is None
    assert any("without a published value" in n for n in rec.notes)
    assert "n/a" in format_zones([rec])
    with pytest.raises(CarbonDataError, match="without a published intensity") as info:
        CarbonIntensity.zone("US-ZZ", tables=tables)
    assert "constant" in str(info.value)


def test_cloud_table_year_column_is_used_when_present(table_dir: Path) -> None:
    path = table_dir / "grid_intensity_cloud_regions.csv"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[0] += ",year"
    lines[1:] = [line + ",2030" for line in lines[1:]]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert ZoneTables(table_dir).lookup("aws:eu-west-3").year == 2030


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("US-ZZ,Nowhere,2023,abc,Test", r"line 54: gco2e_per_kwh 'abc' is not a number"),
        ("US-ZZ,Nowhere,2023,-5,Test", r"line 54: gco2e_per_kwh '-5' must be a finite number"),
        ("US-ZZ,Nowhere,2023,nan,Test", r"line 54: gco2e_per_kwh 'nan' must be a finite"),
        ("US-ZZ,Nowhere,twenty,5,Test", r"line 54: year 'twenty' is not an integer"),
        ("US-ZZ,Nowhere,2023,5,", r"line 54: source is empty"),
        ("US-ZZ,Nowhere,2023,5", r"line 54: 4 fields, the header has 5"),
        ("US-CA,California again,2023,5,Test", r"'US-CA' appears twice in the us_states table"),
    ],
)
def test_malformed_table_names_file_and_line(table_dir: Path, line: str, message: str) -> None:
    _append(table_dir / "grid_intensity_us_states.csv", line)
    tables = ZoneTables(table_dir)
    with pytest.raises(CarbonDataError, match=message) as info:
        tables.lookup("FR")
    assert "grid_intensity_us_states.csv" in str(info.value)


def test_missing_column_and_missing_file(table_dir: Path) -> None:
    path = table_dir / "grid_intensity_subnational.csv"
    path.write_text("zone,name,year,source\nSE1,x,2025,y\n", encoding="utf-8")
    with pytest.raises(CarbonDataError, match=r"header lacks column.*gco2e_per_kwh"):
        ZoneTables(table_dir).lookup("FR")
    path.unlink()
    with pytest.raises(CarbonDataError, match="cannot read zone table") as info:
        ZoneTables(table_dir).lookup("FR")
    assert "grid_intensity_subnational.csv" in str(info.value)


def test_tables_are_read_lazily(tmp_path: Path) -> None:
    tables = ZoneTables(tmp_path / "missing")  # constructing reads nothing
    assert "missing" in repr(tables)
    with pytest.raises(CarbonDataError):
        tables.records()


def test_importing_carbon_reads_no_file_and_opens_no_socket() -> None:
    code = textwrap.dedent(
        """
        import sys
        events = []
        def hook(event, args):
            if event == "open" and isinstance(args[0], str) and args[0].endswith(".csv"):
                events.append(args[0])
            if event.startswith("socket."):
                events.append(event)
        sys.addaudithook(hook)
        import bertwatt.carbon
        import bertwatt.carbon.zones, bertwatt.carbon.intensity, bertwatt.carbon.providers
        from bertwatt.carbon import CarbonIntensity, UKCarbonIntensity
        CarbonIntensity.constant(100.0)
        UKCarbonIntensity()
        assert not events, events
        CarbonIntensity.zone("FR")
        assert any(e.endswith(".csv") for e in events), events
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ---------------------------------------------------------------------- hypothesis
KEYS = [r.key for r in zones.all_zones()] + [a for r in zones.all_zones() for a in r.aliases]


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=30))
def test_any_string_gives_a_record_or_a_bertwatt_error(text: str) -> None:
    try:
        rec = lookup(text)
    except ConfigError:
        assert not text.strip()
    except CarbonDataError as err:
        assert "unknown carbon-intensity zone" in str(err)
    else:
        assert normalize_zone(text) in {normalize_zone(k) for k in (rec.key, *rec.aliases)}


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(KEYS), st.lists(st.booleans(), min_size=30, max_size=30), st.booleans())
def test_any_casing_and_padding_of_a_key_resolves_to_the_same_record(
    key: str, upper: list[bool], pad: bool
) -> None:
    cased = "".join(c.upper() if u else c.lower() for c, u in zip(key, upper, strict=False))
    cased += key[len(upper) :]
    if pad:
        cased = f"  {cased}\t"
    assert lookup(cased) is lookup(key)


# ---------------------------------------------------------------------- BERTWATT_ZONE
def test_unknown_env_zone_is_a_configuration_warning_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from bertwatt.config import zone_from_env
    from bertwatt.errors import BertwattWarning

    monkeypatch.setattr(zones, "_warned_env", set())
    monkeypatch.setenv("BERTWATT_ZONE", "XX")
    with pytest.warns(BertwattWarning, match=r"configuration error: BERTWATT_ZONE='XX'") as rec:
        assert zone_from_env() == "XX"
    assert "bertwatt zones" in str(rec[0].message) and "Fix:" in str(rec[0].message)
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert zone_from_env() == "XX"  # once per value and process
        monkeypatch.setenv("BERTWATT_ZONE", "fr")
        assert zone_from_env() == "fr"  # a known zone never warns


def test_echoes_of_a_huge_zone_name_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    from bertwatt.errors import BertwattWarning

    monkeypatch.setattr(zones, "_warned_env", set())
    huge = "Z" * 1_000_000 + "\x1b[2J"
    with pytest.raises(CarbonDataError) as info:
        lookup(huge)
    assert len(str(info.value)) < 600 and "more characters" in str(info.value)
    with pytest.raises(ConfigError) as cfg:
        normalize_zone(["x" * 10_000])
    assert len(str(cfg.value)) < 300
    with pytest.warns(BertwattWarning) as rec:
        zones.check_env_zone("A" * 5000 + "\x1b[2J")
    text = str(rec[0].message)
    assert len(text) < 1200 and "\x1b" not in text
