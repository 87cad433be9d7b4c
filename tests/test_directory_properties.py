"""Property-based bad input over the directory's inbound paths: always a short reply or a clear error,
and the database unchanged whenever the input is invalid."""

from __future__ import annotations

import datetime as dt
import unicodedata
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.telegram_html import decode_action, encode_action
from zjcare_guide.clock import fixed_clock
from zjcare_guide.content import DEFAULT_CONTENT_DIR
from zjcare_guide.conversation import Conversation
from zjcare_guide.guide import Guide
from zjcare_guide.identity import Actor
from zjcare_guide.institutions import Directory
from zjcare_guide.registry_import import HEADERS, ImportFileError, import_file, load_demo
from zjcare_guide.replies import Action, Command, Location, Press, Session, Text
from zjcare_guide.store import Store
from zjcare_guide.towns import in_zhuji

from .institution_rows import row, write_csv
from .test_institutions import dump

TODAY = dt.date(2026, 12, 1)
GUIDE = Guide.from_dir(DEFAULT_CONTENT_DIR, TODAY)
STORE = Store.open(":memory:")
DIRECTORY = Directory(STORE.db)
load_demo(DIRECTORY, DEFAULT_CONTENT_DIR, TODAY)
CONV = Conversation(GUIDE, clock=fixed_clock(TODAY), store=STORE)
OPERATOR = Actor("test", "77", "77")
DIRECTORY.add_operator(OPERATOR.user_key, "DEMO-010", TODAY)
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
coordinates = st.floats(allow_nan=True, allow_infinity=True) | st.floats(min_value=29.0, max_value=30.3)


@SETTINGS
@given(coordinates, coordinates)
def test_any_location_gets_one_reply_and_writes_nothing(lat: float, lon: float) -> None:
    before = dump(DIRECTORY)
    replies = CONV.handle(Location(lat, lon, actor=OPERATOR), Session())
    assert len(replies) == 1 and replies[0].text.strip()
    inside = Location(lat, lon).valid and in_zhuji(lat, lon)
    assert (replies[0].kind == "results") == inside
    if not Location(lat, lon).valid:
        assert "位置" in replies[0].text
    assert dump(DIRECTORY) == before


@SETTINGS
@given(st.text(max_size=30))
def test_places_arguments_either_update_within_capacity_or_change_nothing(args: str) -> None:
    before = dump(DIRECTORY)
    [reply] = CONV.handle(Command("places", args, actor=OPERATOR), Session())
    inst = DIRECTORY.by_filing_no("DEMO-010")
    assert inst is not None and reply.text.strip()
    stripped = unicodedata.normalize("NFKC", args).strip()
    valid = stripped.isascii() and stripped.isdigit() and len(stripped) <= 6 and int(stripped) <= inst.capacity
    if valid:
        assert inst.places == int(stripped) and "已更新" in reply.text
    else:
        assert dump(DIRECTORY) == before


@SETTINGS
@given(st.text(max_size=70))
def test_forged_callback_data_is_refused_or_is_a_real_action(data: str) -> None:
    action = decode_action(data, CONV.router)
    if action is None:
        return
    assert CONV.router.accepts(action) and encode_action(action, CONV.router) == data
    replies = CONV.safe_handle(Press(action, actor=OPERATOR), Session())
    assert replies and all(r.text.strip() for r in replies)


@SETTINGS
@given(st.text(max_size=1200))
def test_any_text_while_a_report_waits_files_it_only_when_it_fits(text: str) -> None:
    session = Session()
    [start] = CONV.handle(Command("report"), session)
    CONV.handle(Press(next(a for a in start.actions() if a.kind == "report_unfiled")), session)
    CONV.handle(Press(Action("report_town", "104")), session)
    count = STORE.db.table("reports").count
    replies = CONV.safe_handle(Text(text), session)
    assert replies and all(r.text.strip() for r in replies)
    filed = STORE.db.table("reports").count - count
    assert filed in (0, 1)
    if filed:
        assert any("JB" in r.text for r in replies)
    elif replies[0].kind != "urgent":  # a danger sign is escalated instead, and the report waits no more
        assert session.awaiting == "reports" or not 5 <= len(text.strip()) <= 1000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(HEADERS), st.text(max_size=20))
def test_any_cell_value_is_imported_or_reported_with_the_database_unchanged(tmp_path: Path, column: str,
                                                                          value: str) -> None:
    store = Store.open(":memory:")
    directory = Directory(store.db)
    import_file(directory, write_csv(tmp_path / "base.csv", [row(1)]), TODAY)
    before = dump(directory)
    path = write_csv(tmp_path / "cell.csv", [row(1, **{column: value}), row(2)], "utf-8")
    try:
        result = import_file(directory, path, TODAY)
    except ImportFileError as exc:
        assert str(exc) and dump(directory) == before
        return
    if result.problems:
        assert all(str(p).startswith("line ") for p in result.problems)
        assert dump(directory) == before
    else:
        filing_no = row(1, **{column: value})["备案编号"].strip()
        assert {filing_no, "ZJ-TEST-0002"} <= {i.filing_no for i in directory.all()}
