"""Admin sign-in: argon2 and plain passwords, throttling of failures, the audit trail, OIDC checks."""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from core import audit, auth
from core.config import load_settings
from core.db import session_scope
from core.models import AuditEntry, LoginAttempt

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone.utc)


@pytest.fixture(scope="module")
def hashed():
    return load_settings(admin_password_hash=PasswordHasher().hash("correct horse battery"), admin_password=None)


def test_verify_password_argon2_and_plain(hashed):
    assert auth.verify_password(hashed, "correct horse battery")
    assert not auth.verify_password(hashed, "Correct horse battery")
    plain = load_settings(admin_password="dev-password", admin_password_hash=None)
    assert auth.verify_password(plain, "dev-password")
    assert not auth.verify_password(plain, "dev-passwor")
    # The hash wins over the plain password when both are set.
    both = load_settings(admin_password_hash=hashed.admin_password_hash, admin_password="dev-password")
    assert not auth.verify_password(both, "dev-password")
    broken = load_settings(admin_password_hash="not-a-hash", admin_password=None)
    assert not auth.verify_password(broken, "anything")


def test_sign_in_records_attempt_and_audit(db, hashed):
    with session_scope() as s:
        ok = auth.sign_in(s, hashed, " Admin ", "correct horse battery", now=T0)
    assert ok.ok and ok.user == "admin"
    with session_scope() as s:
        attempt = s.scalars(select(LoginAttempt)).one()
        assert (attempt.username, attempt.success) == ("admin", True)
        rows = audit.list_entries(s)
        assert [(r.actor, r.action) for r in rows] == [("admin", "auth.sign_in")]


def test_five_failures_make_the_user_wait_then_expire(db, hashed):
    for i in range(5):
        with session_scope() as s:
            result = auth.sign_in(s, hashed, "admin", "wrong", now=T0 + timedelta(seconds=i))
        assert not result.ok
    assert "Too many failed attempts" in result.message and result.wait_s > 800
    # Even the right password is refused while throttled, and the refusal is not recorded again.
    with session_scope() as s:
        blocked = auth.sign_in(s, hashed, "admin", "correct horse battery", now=T0 + timedelta(minutes=5))
        assert not blocked.ok and "Try again in" in blocked.message
        assert 595 <= blocked.wait_s <= 605  # the first failure leaves the 15-minute window at T0 + 15 min
        assert "min" in blocked.message
        assert s.scalar(select(func.count()).select_from(LoginAttempt)) == 5
    with session_scope() as s:
        later = auth.sign_in(s, hashed, "admin", "correct horse battery", now=T0 + timedelta(minutes=16))
    assert later.ok
    # A success clears the slate: one new failure is no lock-out.
    with session_scope() as s:
        again = auth.sign_in(s, hashed, "admin", "wrong", now=T0 + timedelta(minutes=17))
        assert not again.ok and again.wait_s == 0
        assert auth.throttle_wait_s(s, hashed, "admin", now=T0 + timedelta(minutes=17)) == 0


def test_wrong_user_name_fails_and_counts(db, hashed):
    with session_scope() as s:
        result = auth.sign_in(s, hashed, "root", "correct horse battery", now=T0)
        assert not result.ok and result.message.startswith("Wrong user name or password")
        assert s.scalar(select(LoginAttempt.username)) == "root"
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == 0


def test_last_attempts_are_announced(db, hashed):
    messages = []
    for i in range(4):
        with session_scope() as s:
            messages.append(auth.sign_in(s, hashed, "admin", "nope", now=T0 + timedelta(seconds=i)).message)
    assert "left before a wait" not in messages[0]
    assert messages[3].endswith("1 attempt left before a wait.")


def test_no_password_configured(db):
    bare = load_settings(admin_password=None, admin_password_hash=None)
    with session_scope() as s:
        result = auth.sign_in(s, bare, "admin", "x")
    assert not result.ok and "ADMIN_PASSWORD_HASH" in result.message


def test_oidc_configuration_checks():
    settings = load_settings(admin_emails="Boss@Example.org, ops@example.org")
    full = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "s", "client_id": "i",
            "client_secret": "c", "server_metadata_url": "https://accounts.example/.well-known/openid-configuration"}
    assert auth.oidc_configured(settings, full)
    assert auth.oidc_providers(full) == [None]
    named = {"redirect_uri": "x", "cookie_secret": "s", "google": {k: full[k] for k in ("client_id", "client_secret", "server_metadata_url")}}
    assert auth.oidc_configured(settings, named) and auth.oidc_providers(named) == ["google"]
    assert not auth.oidc_configured(settings, {"redirect_uri": "x", "cookie_secret": "s"})
    assert not auth.oidc_configured(settings, None)
    assert not auth.oidc_configured(load_settings(admin_oidc=False), full)
    assert auth.oidc_admin(settings, "boss@example.org") == "boss@example.org"
    assert auth.oidc_admin(settings, "stranger@example.org") is None
    assert auth.oidc_admin(settings, None) is None


def test_format_wait():
    assert auth.format_wait(0.2) == "1 s"
    assert auth.format_wait(59) == "59 s"
    assert auth.format_wait(600) == "10 min"
    assert auth.format_wait(615) == "10 min 15 s"
