"""Accounts through the REST API: sign-in sessions with CSRF, API tokens, roles enforced on every route, audit."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from defectlab.web import create_app

OPEN_ROUTES = {("GET", "/api/health"), ("POST", "/api/session")}
SELF_SERVICE = {("PATCH", "/api/users/{name}"), ("POST", "/api/users/{name}/tokens"),
                ("DELETE", "/api/users/{name}/tokens/{token_id}"), ("DELETE", "/api/session")}
"""Changes anyone may make to their own account; an owner may make them to anyone's."""

# Every route that changes something, with the lowest role allowed to call it.
LOWEST_ROLE = {
    ("POST", "/api/projects"): "owner",
    ("POST", "/api/users"): "owner",
    ("POST", "/api/projects/{project}/classes"): "reviewer",
    ("POST", "/api/projects/{project}/images/bulk"): "reviewer",
    ("POST", "/api/projects/{project}/tasks"): "reviewer",
    ("POST", "/api/projects/{project}/tasks/{task}/images/{image_id}/settle"): "reviewer",
    ("POST", "/api/projects/{project}/tasks/{task}/settle-agreed"): "reviewer",
    ("PATCH", "/api/projects/{project}/book/{class_name}"): "reviewer",
    ("POST", "/api/projects/{project}/book/{class_name}/examples"): "reviewer",
    ("DELETE", "/api/projects/{project}/book/{class_name}/examples/{image_id}"): "reviewer",
    ("POST", "/api/projects/{project}/checks"): "reviewer",
    ("POST", "/api/projects/{project}/training"): "reviewer",
    ("POST", "/api/projects/{project}/models/{model_id}/evaluations"): "reviewer",
    ("PUT", "/api/projects/{project}/images/{image_id}/class"): "labeler",
    ("PUT", "/api/projects/{project}/images/{image_id}/annotations"): "labeler",
    ("PUT", "/api/projects/{project}/tasks/{task}/images/{image_id}/annotations"): "labeler",
    ("POST", "/api/projects/{project}/proposals"): "labeler",
    ("POST", "/api/projects/{project}/proposals/{proposal_id}/review"): "labeler",
    ("POST", "/api/projects/{project}/uploads"): "labeler",
    ("POST", "/api/projects/{project}/uploads/{upload}/files"): "labeler",
    ("POST", "/api/projects/{project}/uploads/{upload}/import"): "labeler",
}
LOWEST_READER = {("GET", "/api/users"): "reviewer", ("GET", "/api/audit"): "owner"}
BELOW = {"owner": "reviewer", "reviewer": "labeler", "labeler": "viewer"}


def concrete(path: str, image_id: int) -> str:
    """Fill a route's parameters: project ``parts``, the image ``image_id``, and names or ids that exist or not."""
    values = {"project": "parts", "image_id": str(image_id), "task": "round-1", "class_name": "dent",
              "model_id": "1", "proposal_id": "1", "upload": "u1", "name": "ben", "token_id": "1", "job_id": "1",
              "level": "0", "column": "0", "row": "0"}
    return re.sub(r"\{(\w+)\}", lambda match: values[match.group(1)], path)


def operations(api) -> set[tuple[str, str]]:
    schema = api.get("/api/openapi.json").json()
    return {(method.upper(), path) for path, item in schema["paths"].items() for method in item}


def test_routes_need_account(api, workspace, parts) -> None:
    image_id = parts["ok/0.png"]
    anonymous = TestClient(create_app(workspace))
    for method, path in sorted(operations(api) - OPEN_ROUTES):
        answer = anonymous.request(method, concrete(path, image_id), json={})
        assert answer.status_code == 401, (method, path, answer.text)
        assert answer.json()["error"].startswith("sign in first"), (method, path)
    assert anonymous.get("/api/health").status_code == 200
    wrong = anonymous.get("/api/projects", headers={"Authorization": "Bearer dl_not-a-token"})
    assert (wrong.status_code, wrong.json()["error"][:30]) == (401, "the API token is wrong, revoke")


def test_table_covers_every_change(api) -> None:
    changes = {(method, path) for method, path in operations(api) if method != "GET"}
    assert changes - OPEN_ROUTES - SELF_SERVICE == set(LOWEST_ROLE)


@pytest.mark.parametrize(("method", "path"), sorted(LOWEST_ROLE) + sorted(LOWEST_READER))
def test_lower_role_rejected_nothing_changes(api, workspace, parts, person, method, path) -> None:
    lowest = {**LOWEST_ROLE, **LOWEST_READER}[(method, path)]
    before = api.get("/api/projects/parts/browse", params={"size": 100}).json()
    answer = api.request(method, concrete(path, parts["ok/0.png"]), json={"class": "dent", "version": 1},
                         headers=person("vic", BELOW[lowest]))
    assert answer.status_code == 403, answer.text
    assert answer.json()["error"].endswith(f"needs the role {lowest} or higher, and 'vic' is a {BELOW[lowest]}; "
                                           "ask an owner to change your role")
    assert api.get("/api/projects/parts/browse", params={"size": 100}).json() == before


def test_labeler_labels_viewer_reads(api, parts, person) -> None:
    url = f"/api/projects/parts/images/{parts['ok/0.png']}/class"
    assert api.get("/api/projects/parts", headers=person("val", "viewer")).status_code == 200
    labeled = api.put(url, json={"class": "dent"}, headers=person("lee", "labeler"))
    assert labeled.status_code == 200
    assert api.get("/api/projects/parts/labelers").json() == ["import", "lee"]


def test_other_name_in_body_rejected(api, parts) -> None:
    answer = api.put(f"/api/projects/parts/images/{parts['ok/0.png']}/class", json={"class": "dent", "labeler": "ben"})
    assert answer.status_code == 403
    assert answer.json()["error"] == ("labeler is 'ben' but you are signed in as 'ana'; a change is recorded under "
                                      "the name of whoever makes it, so leave labeler out or send 'ana'")
    assert api.get(f"/api/projects/parts/images/{parts['ok/0.png']}").json()["label"] == "ok"


def test_browser_session_needs_csrf_header_for_changes(api, workspace, parts, password) -> None:
    browser = TestClient(create_app(workspace))
    wrong = browser.post("/api/session", json={"name": "ana", "password": "not it"})
    assert (wrong.status_code, wrong.json()["error"][:21]) == (401, "wrong name or passwor")
    signed = browser.post("/api/session", json={"name": "ana", "password": password})
    assert signed.status_code == 200
    cookie = signed.headers["set-cookie"]
    assert "defectlab_session=dl_" in cookie
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie
    csrf = signed.json()["csrf"]
    assert (signed.json()["name"], signed.json()["role"], len(csrf)) == ("ana", "owner", 32)
    assert browser.get("/api/session").json()["csrf"] == csrf

    url = f"/api/projects/parts/images/{parts['ok/0.png']}/class"
    forged = browser.put(url, json={"class": "dent"})
    assert forged.status_code == 403
    assert forged.json()["error"].startswith("a change from the browser must send the X-CSRF-Token header")
    assert browser.put(url, json={"class": "dent"}, headers={"X-CSRF-Token": "0" * 32}).status_code == 403
    changed = browser.put(url, json={"class": "dent"}, headers={"X-CSRF-Token": csrf})
    assert changed.status_code == 200
    assert api.get(url.removesuffix("/class")).json()["label"] == "dent"

    assert browser.delete("/api/session", headers={"X-CSRF-Token": csrf}).json() == {"signed_out": "ana"}
    assert browser.get("/api/projects").status_code == 401


def test_accounts_passwords_and_tokens(api, workspace) -> None:
    made = api.post("/api/users", json={"name": "ben", "role": "labeler"})
    assert made.status_code == 201
    password = made.json()["password"]
    assert len(password) == 16
    assert api.post("/api/users", json={"name": "ben", "role": "viewer"}).status_code == 409
    bad_role = api.post("/api/users", json={"name": "cem", "role": "admin"})
    assert bad_role.json()["error"] == "role 'admin' does not exist; choose one of viewer, labeler, reviewer, owner"
    short = api.post("/api/users", json={"name": "cem", "role": "viewer", "password": "short"})
    assert short.json()["error"] == "the password has 5 characters; use at least 8"

    browser = TestClient(create_app(workspace))
    csrf = browser.post("/api/session", json={"name": "ben", "password": password}).json()["csrf"]
    own_role = browser.patch("/api/users/ben", json={"role": "owner"}, headers={"X-CSRF-Token": csrf})
    assert (own_role.status_code, own_role.json()["error"]) == (403, "only an owner may change a role; 'ben' is a "
                                                                     "labeler")
    issued = browser.post("/api/users/ben/tokens", json={"name": "nightly export"}, headers={"X-CSRF-Token": csrf})
    token = issued.json()["token"]
    listed = browser.get("/api/users/ben/tokens").json()
    assert [row["name"] for row in listed] == ["nightly export"]
    assert token not in str(listed)
    assert browser.get("/api/users/ana/tokens").status_code == 403
    script = TestClient(create_app(workspace), headers={"Authorization": f"Bearer {token}"})
    assert script.get("/api/session").json() == {"name": "ben", "role": "labeler", "csrf": None}

    changed = browser.patch("/api/users/ben", json={"password": "a new password"}, headers={"X-CSRF-Token": csrf})
    assert changed.json() == {"name": "ben", "role": "labeler"}
    assert browser.get("/api/projects").status_code == 401
    assert script.get("/api/projects").status_code == 200
    assert script.delete(f"/api/users/ben/tokens/{listed[0]['id']}").json() == {"revoked": listed[0]["id"]}
    assert script.get("/api/projects").status_code == 401

    assert api.patch("/api/users/ben", json={"role": "reviewer"}).json() == {"name": "ben", "role": "reviewer"}
    only_owner = api.patch("/api/users/ana", json={"role": "viewer"})
    assert (only_owner.status_code, only_owner.json()["error"]) == (409, "'ana' is the only owner; make another "
                                                                         "account owner first")
    assert {row["name"]: row["role"] for row in api.get("/api/users").json()} == {"ana": "owner", "ben": "reviewer"}


def test_audit_records_who_changed_what(api, parts, person) -> None:
    image_url = f"/api/projects/parts/images/{parts['ok/0.png']}/class"
    api.put(image_url, json={"class": "dent"})
    api.put(image_url, json={"class": "scratch"}, headers=person("val", "viewer"))
    api.get("/api/projects")

    entries = api.get("/api/audit").json()
    assert [(row["user"], row["method"], row["path"], row["status"]) for row in entries] == [
        ("val", "PUT", image_url, 403), ("ana", "PUT", image_url, 200)]
    assert entries[0]["at"] >= entries[1]["at"]
    assert [row["user"] for row in api.get("/api/audit", params={"user": "ana"}).json()] == ["ana"]


def test_openapi_declares_token_and_session(api) -> None:
    schemes = api.get("/api/openapi.json").json()["components"]["securitySchemes"]
    assert schemes["HTTPBearer"]["scheme"] == "bearer"
    assert (schemes["APIKeyCookie"]["in"], schemes["APIKeyCookie"]["name"]) == ("cookie", "defectlab_session")
