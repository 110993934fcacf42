"""Fuzz the WXR reader: a mutated export -> events, or ReadError (WxrError), never another exception.

Seeds are the shared WordPress export test files and the sample export; mutations flip, insert and
delete bytes and splice in XML-significant fragments (entities, CDATA, tags, DOCTYPE)."""

from __future__ import annotations

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from schemas.identity import AuthorKeyer
from schemas.wxr import ReadError, read_wxr

REPO = Path(__file__).resolve().parents[2]
SEEDS = sorted((REPO.parent / "shared" / "wxr").glob("*.xml")) + [
    REPO / "schemas/sample/sample-export.xml"
]
SEED_BYTES = [p.read_bytes() for p in SEEDS if p.stat().st_size < 30_000]
KEYER = AuthorKeyer(b"fuzz-secret")
FRAGMENTS = [
    b"<",
    b">",
    b"&",
    b"&amp;",
    b"&#0;",
    b"&#x110000;",
    b"]]>",
    b"<![CDATA[",
    b"</item>",
    b"<item>",
    b"<wp:comment>",
    b"</wp:comment>",
    b"<!DOCTYPE x [<!ENTITY a 'aaaa'>]>",
    b"&a;",
    b"\xff\xfe",
    b"\x00",
    b"<wp:comment_parent>-1</wp:comment_parent>",
    b"<wp:comment_date_gmt>9999-99-99 99:99:99</wp:comment_date_gmt>",
    b"<wp:comment_id>0</wp:comment_id>",
    b"<wp:wxr_version>x</wp:wxr_version>",
]

FUZZ = settings(
    max_examples=120,
    deadline=2000,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _mutate(data, raw: bytes) -> bytes:
    buf = bytearray(raw)
    for _ in range(data.draw(st.integers(1, 6), label="mutations")):
        pos = data.draw(st.integers(0, len(buf)), label="position")
        op = data.draw(st.sampled_from(["flip", "insert", "delete", "fragment"]), label="op")
        if op == "flip" and pos < len(buf):
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "insert":
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
        elif op == "delete":
            del buf[pos : pos + data.draw(st.integers(1, 64))]
        else:
            buf[pos:pos] = data.draw(st.sampled_from(FRAGMENTS))
    return bytes(buf)


def _read_all(path: Path) -> list[dict]:
    skipped: list[str] = []
    try:
        events = list(read_wxr(path, keyer=KEYER, on_skip=skipped.append))
    except ReadError as exc:
        assert str(exc), "a ReadError must say where and why"
        return []
    for event in events:
        assert isinstance(event, dict) and event["site"]
    return events


@FUZZ
@given(st.data())
def test_mutated_exports(tmp_path_factory, data):
    seed = data.draw(st.sampled_from(SEED_BYTES), label="seed")
    path = tmp_path_factory.mktemp("wxr") / "mutated.xml"
    path.write_bytes(_mutate(data, seed))
    _read_all(path)


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("wxr") / "random.xml"
    path.write_bytes(raw)
    _read_all(path)


def test_seeds_are_read():
    # At least one seed yields events, so the mutators start from real exports.
    assert len(SEED_BYTES) >= 5
    sample = REPO / "schemas/sample/sample-export.xml"
    assert len(_read_all(sample)) > 0
