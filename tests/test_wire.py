"""The server's wire format (``trustkit.wire``): every body reads back what it wrote, and a
body that is not what the format says is refused, not half-read."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from securesystemslib.signer import Signature

from trustkit import wire
from trustkit.wire import (
    ErrorBody,
    Need,
    PendingChange,
    PendingList,
    UploadAnswer,
    WireError,
    WithdrawRequest,
)

NOW = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
ROLE = {"signed": {"_type": "targets", "version": 2}, "signatures": []}


def _need() -> Need:
    return Need("targets", "root", ["a" * 64], 2, ["a" * 64, "b" * 64])


def _change() -> PendingChange:
    return PendingChange(
        "0123456789abcdef",
        NOW,
        NOW + timedelta(days=7),
        [_need()],
        {"targets": json.dumps(ROLE).encode()},
    )


def test_paths_follow_notarys_layout():
    gun = "registry.example.com/team/app"
    assert wire.repository_path(gun) == f"/v2/{gun}/_trust/tuf/"
    assert wire.role_path(gun, "root") == f"/v2/{gun}/_trust/tuf/root.json"
    assert wire.role_path(gun, "root", 3) == f"/v2/{gun}/_trust/tuf/3.root.json"
    assert wire.role_path(gun, "targets/releases") == f"/v2/{gun}/_trust/tuf/targets/releases.json"
    assert wire.key_path(gun, "timestamp") == f"/v2/{gun}/_trust/tuf/timestamp.key"
    assert wire.pending_path(gun) == f"/v2/{gun}/_trust/tuf/pending"
    assert (
        wire.pending_path(gun, "0123456789abcdef")
        == f"/v2/{gun}/_trust/tuf/pending/0123456789abcdef"
    )


def test_error_body_round_trips():
    body = ErrorBody("too_large", "the upload is too large", "targets")
    assert body.to_dict() == {
        "error": "too_large",
        "role": "targets",
        "detail": "the upload is too large",
    }
    assert ErrorBody.from_dict(body.to_dict()) == body
    assert ErrorBody.from_dict({"error": "not_found", "role": None, "detail": "x"}).role is None


@pytest.mark.parametrize(
    "data",
    [{}, {"error": 5}, {"error": "x", "detail": 3}, {"error": "x", "role": ["r"]}, ["error"], "x"],
)
def test_a_malformed_error_body_is_refused(data: Any):
    with pytest.raises(WireError):
        ErrorBody.from_dict(data)


def test_a_pending_change_round_trips_through_json():
    change = _change()
    assert PendingChange.from_dict(json.loads(change.to_json())) == PendingChange.from_dict(
        change.to_dict()
    )
    read = PendingChange.from_dict(json.loads(change.to_json()))
    assert read.id == change.id and read.needs == [_need()]
    assert read.created == NOW and read.expires == NOW + timedelta(days=7)
    assert json.loads(read.roles["targets"]) == ROLE


def test_a_field_this_version_does_not_know_is_left_out():
    data = {**_change().to_dict(), "comment": "from a newer server"}
    assert "comment" not in PendingChange.from_dict(data).to_dict()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("id", "../../root"),
        ("id", 7),
        ("created", "yesterday"),
        ("expires", None),
        ("needs", {}),
        ("needs", [{"role": "targets"}]),
        ("roles", []),
        ("roles", {"targets": "not an object"}),
    ],
)
def test_a_pending_change_with_a_bad_field_is_refused(field: str, value: Any):
    with pytest.raises(WireError):
        PendingChange.from_dict({**_change().to_dict(), field: value})


@pytest.mark.parametrize("field", ["id", "created", "expires", "needs", "roles"])
def test_a_pending_change_missing_a_field_is_refused(field: str):
    data = _change().to_dict()
    del data[field]
    with pytest.raises(WireError):
        PendingChange.from_dict(data)


@pytest.mark.parametrize(
    ("field", "value"),
    [("threshold", "2"), ("threshold", True), ("signed", "a"), ("keyids", [1]), ("role", None)],
)
def test_a_need_with_a_wrong_type_is_refused(field: str, value: Any):
    with pytest.raises(WireError):
        Need.from_dict({**_need().to_dict(), field: value})


def test_upload_answers_round_trip():
    published = UploadAnswer("example.com/app", versions={"targets": 3})
    assert published.status == 200
    assert UploadAnswer.from_dict(json.loads(published.to_json())) == published
    pending = UploadAnswer("example.com/app", pending=_change())
    assert pending.status == 202
    read = UploadAnswer.from_dict(json.loads(pending.to_json()))
    assert read.pending is not None and read.pending.id == _change().id
    assert read.versions is None


@pytest.mark.parametrize(
    "data",
    [
        {"gun": "g"},  # neither versions nor pending
        {"versions": {"targets": 1}},  # no gun
        {"gun": "g", "versions": {"targets": "1"}},
        {"gun": "g", "versions": []},
        {"gun": "g", "versions": {"targets": 1}, "pending": {"id": "0123456789abcdef"}},
        {"gun": "g", "pending": "0123456789abcdef"},
        [],
    ],
)
def test_a_malformed_upload_answer_is_refused(data: Any):
    with pytest.raises(WireError):
        UploadAnswer.from_dict(data)


def test_a_pending_list_round_trips():
    listing = PendingList("example.com/app", [_change(), _change()])
    read = PendingList.from_dict(json.loads(listing.to_json()))
    assert [change.id for change in read.pending] == [_change().id] * 2
    assert PendingList.from_dict(read.to_dict()) == read
    assert PendingList.from_dict({"gun": "g", "pending": []}).pending == []
    with pytest.raises(WireError):
        PendingList.from_dict({"gun": "g", "pending": {}})
    with pytest.raises(WireError):
        PendingList.from_dict({"pending": []})


def test_a_key_twice_in_one_object_is_refused():
    assert wire.loads(b'{"a": {"b": 1}}') == {"a": {"b": 1}}
    with pytest.raises(WireError, match="twice"):
        wire.loads(b'{"gun": "a", "gun": "b"}')
    with pytest.raises(WireError, match="twice"):
        wire.loads(b'{"pending": [{"id": "x", "id": "y"}]}')


def test_json_nested_too_deeply_is_refused_as_a_wire_error():
    with pytest.raises(WireError):
        wire.loads(b"[" * 100_000)


def test_a_withdraw_request_round_trips():
    request = WithdrawRequest([Signature("k" * 64, "00" * 64)])
    read = WithdrawRequest.from_dict(json.loads(json.dumps(request.to_dict())))
    assert [(s.keyid, s.signature) for s in read.signatures] == [("k" * 64, "00" * 64)]
    assert WithdrawRequest.from_dict({"signatures": []}).signatures == []


@pytest.mark.parametrize(
    "data",
    [
        {},
        {"signatures": "x"},
        {"signatures": [{"keyid": "k", "sig": "s"}] * 65},
        {"signatures": [{"keyid": 1, "sig": "s"}]},
        {"signatures": [{"keyid": "k"}]},
        {"signatures": [5]},
        ["signatures"],
    ],
)
def test_a_malformed_withdraw_request_is_refused(data: Any):
    with pytest.raises((WireError, KeyError, TypeError, AttributeError, ValueError)):
        WithdrawRequest.from_dict(data)


def test_bodies_are_valid_once_constructed():
    with pytest.raises(WireError):
        PendingChange("short", NOW, NOW, [], {})
    with pytest.raises(WireError):
        PendingChange("0123456789abcdef", NOW, NOW, [{"role": "x"}], {})  # type: ignore[list-item]
    with pytest.raises(WireError):
        UploadAnswer("g")
    with pytest.raises(WireError):
        Need("targets", "root", [], 1.5, [])  # type: ignore[arg-type]
    with pytest.raises(WireError):
        ErrorBody(None)  # type: ignore[arg-type]
