"""Projects, images and the shared parts of the API: the error shape, statuses and OpenAPI."""

from __future__ import annotations

from pathlib import Path

import pytest


def test_create_list_and_add_classes(api) -> None:
    created = api.post("/api/projects", json={"name": "plates", "task": "classification", "classes": ["pit"]})
    assert created.status_code == 201
    assert created.json() == {"name": "plates", "task": "classification", "images": 0, "labeled": 0, "models": 0,
                              "classes": ["ok", "pit"]}
    added = api.post("/api/projects/plates/classes", json={"names": ["pit", "crack"]})
    assert added.json() == {"added": ["crack"], "classes": ["ok", "pit", "crack"]}
    assert [row["name"] for row in api.get("/api/projects").json()] == ["plates"]
    assert api.get("/api/projects/plates").json()["classes"] == ["ok", "pit", "crack"]

    again = api.post("/api/projects", json={"name": "plates", "task": "anomaly"})
    assert again.status_code == 409
    assert again.json() == {"error": "project 'plates' already exists; choose another name or delete it first"}


@pytest.mark.parametrize(("method", "url", "body", "words"), [
    ("POST", "/api/projects", {"name": "p", "task": "regression"}, "task 'regression' is not known"),
    ("POST", "/api/projects", {"task": "anomaly"}, "body.name: Field required"),
    ("POST", "/api/projects", {"name": "p", "task": "anomaly", "clases": []}, "body.clases: Extra inputs"),
    ("POST", "/api/projects", {"name": " p", "task": "anomaly"}, "starts or ends with a space"),
    ("POST", "/api/projects/parts/classes", {"names": []}, "body.names: List should have at least 1 item"),
    ("PUT", "/api/projects/parts/images/{id}/class", {"class": "dent", "labeler": " "},
     "body.labeler: String should have at least 1 character"),
    ("PUT", "/api/projects/parts/images/{id}/class", {"class": "crack", "labeler": "ana"},
     "class 'crack' is not in project 'parts'"),
    ("PUT", "/api/projects/parts/images/{id}/class", {"class": "dent", "labeler": "ana", "version": "new"},
     "body.version: Input should be a valid integer"),
    ("POST", "/api/projects/parts/tasks", {"name": "t", "labelers": ["ana"]},
     "needs 2 to 5 labelers; 1 given"),
    ("POST", "/api/projects/parts/tasks", {"name": "t"}, "body.labelers: Field required"),
    ("POST", "/api/projects/parts/checks", {"labels": "maybe"}, "body.labels: Input should be a valid boolean"),
])
def test_bad_request_is_400_naming_field(api, parts, method, url, body, words) -> None:
    answer = api.request(method, url.format(id=parts["dent/0.png"]), json=body)
    assert answer.status_code == 400
    assert words in answer.json()["error"]


def test_body_that_is_not_json_is_400(api, parts) -> None:
    answer = api.post("/api/projects", content=b"{name", headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["error"].startswith("invalid request: body")


@pytest.mark.parametrize(("method", "url"), [
    ("GET", "/api/projects/nope"),
    ("GET", "/api/projects/nope/images"),
    ("GET", "/api/projects/nope/images/1/file"),
    ("GET", "/api/projects/nope/tasks"),
    ("GET", "/api/projects/nope/book"),
    ("GET", "/api/projects/nope/agreement"),
    ("POST", "/api/projects/nope/checks"),
])
def test_unknown_project_is_404(api, parts, method, url) -> None:
    answer = api.request(method, url)
    assert answer.status_code == 404
    assert answer.json()["error"].startswith("project 'nope' does not exist (projects: parts)")


def test_unknown_image_task_and_route_are_404(api, parts) -> None:
    image = api.get("/api/projects/parts/images/9999")
    assert image.status_code == 404
    assert image.json()["error"].startswith("image 9999 is not in project 'parts'")
    task = api.get("/api/projects/parts/tasks/round-9")
    assert task.json() == {"error": "project 'parts' has no labeling task 'round-9'; its tasks: none yet"}
    route = api.get("/api/nothing")
    assert route.status_code == 404
    assert route.json() == {"error": "GET /api/nothing: Not Found"}


def test_list_images_and_download_original(api, parts, tmp_path: Path) -> None:
    rows = api.get("/api/projects/parts/images").json()
    assert len(rows) == 12
    assert {row["path"]: row["label"] for row in rows}["scratch/3.png"] == "scratch"
    assert api.get("/api/projects/parts/images", params={"unlabeled": True}).json() == []

    answer = api.get(f"/api/projects/parts/images/{parts['dent/2.png']}/file")
    assert answer.status_code == 200
    assert answer.headers["content-type"] == "image/png"
    assert answer.content == (tmp_path / "source" / "dent" / "2.png").read_bytes()


def test_image_class_change_and_stale_version(api, parts, person) -> None:
    url = f"/api/projects/parts/images/{parts['ok/1.png']}"
    version = api.get(url).json()["version"]
    changed = api.put(f"{url}/class", json={"class": "scratch", "labeler": "ana", "version": version})
    assert changed.status_code == 200
    assert (changed.json()["label"], changed.json()["version"]) == ("scratch", version + 1)

    stale = api.put(f"{url}/class", json={"class": "dent", "version": version}, headers=person("ben"))
    assert stale.status_code == 409
    assert stale.json()["error"] == (f"image {parts['ok/1.png']} is at version {version + 1}, not {version}: someone "
                                     "changed it since; look at it again and repeat the change")
    assert api.get(url).json()["label"] == "scratch"


def test_project_agreement_matches_hand_count(api, parts, person) -> None:
    classes_by_labeler = {"ana": {"dent/0.png": "dent", "ok/0.png": "ok"},
                          "ben": {"dent/0.png": "dent", "ok/0.png": "dent"}}
    for labeler, classes in classes_by_labeler.items():
        for path, class_name in classes.items():
            api.put(f"/api/projects/parts/images/{parts[path]}/class", json={"class": class_name},
                    headers=person(labeler, "labeler"))

    result = api.get("/api/projects/parts/agreement", params=[("labeler", "ana"), ("labeler", "ben")]).json()
    assert result["images"] == 2
    # Values dent 3, ok 1 in pairs (dent, dent) and (ok, dent): D_o = 2/4, D_e = 2*3*1/(4*3) = 1/2, alpha = 0.
    assert result["alpha"] == pytest.approx(0.0, abs=1e-6)
    # Kappa: observed 1/2, by chance (1*2 + 1*0)/4 = 1/2, so 0.
    assert result["kappa_by_pair"][0]["kappa"] == pytest.approx(0.0, abs=1e-6)
    too_few = api.get("/api/projects/parts/agreement", params={"labeler": "ana"})
    assert too_few.status_code == 400
    assert "agreement needs at least two labelers" in too_few.json()["error"]


def test_openapi_lists_routes_and_serves_no_docs_page(api) -> None:
    schema = api.get("/api/openapi.json").json()
    operations = {(method.upper(), path) for path, item in schema["paths"].items() for method in item}
    expected = {
        ("GET", "/api/health"), ("GET", "/api/projects"), ("POST", "/api/projects"),
        ("GET", "/api/projects/{project}"), ("POST", "/api/projects/{project}/classes"),
        ("GET", "/api/projects/{project}/agreement"),
        ("GET", "/api/projects/{project}/images"), ("GET", "/api/projects/{project}/images/{image_id}"),
        ("PUT", "/api/projects/{project}/images/{image_id}/class"),
        ("GET", "/api/projects/{project}/images/{image_id}/file"),
        ("GET", "/api/projects/{project}/browse"), ("GET", "/api/projects/{project}/metadata"),
        ("GET", "/api/projects/{project}/labelers"), ("GET", "/api/projects/{project}/tags"),
        ("POST", "/api/projects/{project}/images/bulk"),
        ("GET", "/api/projects/{project}/images/{image_id}/annotations"),
        ("PUT", "/api/projects/{project}/images/{image_id}/annotations"),
        ("GET", "/api/projects/{project}/images/{image_id}/neighbours"),
        ("GET", "/api/projects/{project}/images/{image_id}/thumbnail"),
        ("GET", "/api/projects/{project}/images/{image_id}/tiles"),
        ("GET", "/api/projects/{project}/images/{image_id}/tiles/{level}/{column}/{row}.png"),
        ("GET", "/api/projects/{project}/tasks"), ("POST", "/api/projects/{project}/tasks"),
        ("GET", "/api/projects/{project}/tasks/{task}"), ("GET", "/api/projects/{project}/tasks/{task}/next"),
        ("GET", "/api/projects/{project}/tasks/{task}/images/{image_id}/annotations"),
        ("PUT", "/api/projects/{project}/tasks/{task}/images/{image_id}/annotations"),
        ("GET", "/api/projects/{project}/tasks/{task}/agreement"),
        ("GET", "/api/projects/{project}/tasks/{task}/review"),
        ("POST", "/api/projects/{project}/tasks/{task}/images/{image_id}/settle"),
        ("POST", "/api/projects/{project}/tasks/{task}/settle-agreed"),
        ("GET", "/api/projects/{project}/book"), ("GET", "/api/projects/{project}/book/{class_name}"),
        ("PATCH", "/api/projects/{project}/book/{class_name}"),
        ("GET", "/api/projects/{project}/book/{class_name}/history"),
        ("POST", "/api/projects/{project}/book/{class_name}/examples"),
        ("DELETE", "/api/projects/{project}/book/{class_name}/examples/{image_id}"),
        ("POST", "/api/projects/{project}/checks"), ("GET", "/api/jobs"), ("GET", "/api/jobs/{job_id}"),
        ("POST", "/api/projects/{project}/training"), ("GET", "/api/projects/{project}/models"),
        ("POST", "/api/projects/{project}/models/{model_id}/evaluations"),
        ("GET", "/api/projects/{project}/proposals"), ("POST", "/api/projects/{project}/proposals"),
        ("GET", "/api/projects/{project}/proposals/next"), ("GET", "/api/projects/{project}/proposals/report"),
        ("POST", "/api/projects/{project}/proposals/{proposal_id}/review"),
        ("POST", "/api/projects/{project}/uploads"), ("POST", "/api/projects/{project}/uploads/{upload}/files"),
        ("POST", "/api/projects/{project}/uploads/{upload}/import"), ("GET", "/api/training/settings"),
        ("POST", "/api/session"), ("GET", "/api/session"), ("DELETE", "/api/session"),
        ("GET", "/api/users"), ("POST", "/api/users"), ("PATCH", "/api/users/{name}"),
        ("GET", "/api/users/{name}/tokens"), ("POST", "/api/users/{name}/tokens"),
        ("DELETE", "/api/users/{name}/tokens/{token_id}"), ("GET", "/api/audit"),
    }
    assert operations == expected
    assert "ImageClass" in schema["components"]["schemas"]
    assert schema["paths"]["/api/projects"]["post"]["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/NewProject"}
    responses = [operation["responses"] for path_item in schema["paths"].values() for operation in path_item.values()]
    assert not [codes for codes in responses if "422" in codes]
    assert api.get("/docs").status_code == 404
    assert api.get("/redoc").status_code == 404
