"""streams/faust_compat.py check(): the worker refuses to start when the installed faust is not the
one the patches were written for (version or a patched method's source), with one line naming what
differs and the override; BLOGPULSE_FAUST_COMPAT=ignore starts anyway."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from streams import faust_compat

REPO = Path(__file__).resolve().parents[2]


def test_the_installed_faust_is_the_one_the_patches_were_written_for():
    assert faust_compat.mismatches() == []
    assert faust_compat.check("check") == []
    assert faust_compat.current() == faust_compat.FINGERPRINTS
    assert faust_compat.skipped == []


def test_pyproject_pins_the_checked_versions_exactly():
    deps = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for dist, version in faust_compat.PINNED.items():
        assert f"{dist}=={version}" in deps


def test_another_faust_version_refuses_in_one_line(monkeypatch):
    real = faust_compat.installed_version
    monkeypatch.setattr(
        faust_compat,
        "installed_version",
        lambda dist: "0.15.4" if dist == "faust-streaming" else real(dist),
    )
    with pytest.raises(faust_compat.FaustMismatch) as caught:
        faust_compat.check("check")
    message = str(caught.value)
    assert "\n" not in message
    assert "faust-streaming 0.15.4 installed, 0.15.3 expected" in message
    assert "BLOGPULSE_FAUST_COMPAT=ignore" in message


def test_a_changed_patched_method_refuses(monkeypatch):
    monkeypatch.setitem(faust_compat.FINGERPRINTS, "Consumer._new_offset", "0" * 16)
    with pytest.raises(
        faust_compat.FaustMismatch,
        match=r"changed since faust 0\.15\.3: "
        r"Consumer\._new_offset \(",
    ):
        faust_compat.check()


def test_the_override_starts_anyway(monkeypatch, caplog):
    monkeypatch.setitem(faust_compat.FINGERPRINTS, "Service.wait_first", "0" * 16)
    monkeypatch.setattr(faust_compat, "installed_version", lambda dist: "9.9")
    found = faust_compat.check("ignore")
    assert len(found) == 3  # two versions, one method
    assert "BLOGPULSE_FAUST_COMPAT=ignore" in caplog.text


def test_an_unknown_override_value_is_refused():
    with pytest.raises(
        faust_compat.FaustMismatch,
        match="BLOGPULSE_FAUST_COMPAT: expected one of check, ignore, got 'yes'",
    ):
        faust_compat.check("yes")


def test_a_patch_whose_methods_changed_is_not_installed(monkeypatch):
    monkeypatch.setitem(faust_compat.FINGERPRINTS, "Consumer._add_gap", "0" * 16)
    monkeypatch.setattr(faust_compat, "skipped", [])
    faust_compat._install(faust_compat.Patch("probe", lambda: [], relies_on=("Consumer._add_gap",)))
    assert faust_compat.skipped == ["probe"]


def test_the_worker_refuses_to_start(monkeypatch, capsys):
    from streams.cli import main

    monkeypatch.setattr(
        faust_compat, "mismatches", lambda: ["faust-streaming 0.16.0 installed, 0.15.3 expected"]
    )
    monkeypatch.setattr(
        "streams.publisher.ensure_topics",
        lambda *a, **k: pytest.fail("started although faust differs"),
    )
    monkeypatch.setenv("BLOGPULSE_DB", "sqlite://")
    assert main(["worker"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith("blogpulse: faust differs")
    assert "0.16.0" in err and "BLOGPULSE_FAUST_COMPAT=ignore" in err


def test_settings_carry_the_override(monkeypatch):
    from streams.settings import Settings

    assert Settings().faust_compat == "check"
    monkeypatch.setenv("BLOGPULSE_FAUST_COMPAT", "ignore")
    assert Settings().faust_compat == "ignore"
