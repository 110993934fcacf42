"""schemas.identity: deterministic event ids, HMAC author keys and the per-user secret file."""

from __future__ import annotations

import hashlib
import hmac
import stat

from schemas.identity import AuthorKeyer, event_id, load_secret
from streams.settings import Settings


def test_event_id_is_the_documented_derivation():
    text = "blog.example.org/42/101/comment/approved/2012-03-01T10:00:00Z"
    assert (
        event_id("blog.example.org", 42, 101, "comment", "approved", "2012-03-01T10:00:00Z")
        == hashlib.sha256(text.encode()).hexdigest()[:32]
    )


def test_author_key_is_hmac_of_normalised_email():
    keyer = AuthorKeyer(b"secret")
    key = keyer.key("  Maren.Holt@Example.NET ", "Maren", "http://x.example/")
    assert key == hmac.new(b"secret", b"e:maren.holt@example.net", hashlib.sha256).hexdigest()
    assert key == keyer.key("maren.holt@example.net", "Someone else", None)
    assert AuthorKeyer(b"other").key("maren.holt@example.net") != key


def test_without_email_name_and_url_decide():
    keyer = AuthorKeyer(b"secret")
    a = keyer.key("", "Field Notes", "http://fieldnotes.example.com/")
    assert a == keyer.key(None, "Field Notes", "https://FieldNotes.example.com")
    assert a != keyer.key(None, "Field Notes", "http://other.example.com/")
    assert a != keyer.key(None, "Other", "http://fieldnotes.example.com/")
    # nothing at all: every anonymous entry shares one key (one "anonymous" participant)
    assert keyer.key(None, None, None) == keyer.key("", " ", "")
    assert len(a) == 64 and int(a, 16) >= 0


def test_secret_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("BLOGPULSE_AUTHOR_SECRET", "from-env")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    settings = Settings()
    assert load_secret(settings.author_secret, settings.author_secret_file) == b"from-env"
    assert not (tmp_path / "blogpulse").exists()


def test_secret_file_created_once_private_and_stable(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("BLOGPULSE_AUTHOR_SECRET", raising=False)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    settings = Settings()
    path = tmp_path / "blogpulse" / "author-secret"
    assert settings.author_secret_file == path
    first = load_secret(None, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    err = capsys.readouterr().err
    assert "BLOGPULSE_AUTHOR_SECRET" in err and str(path) in err
    assert first.decode() not in err  # the secret itself is never printed
    assert load_secret(None, path) == first
    assert capsys.readouterr().err == ""  # said once, when created
    assert settings.author_keyer().key("a@b.example") == AuthorKeyer(first).key("a@b.example")
