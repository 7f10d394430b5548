"""Labeling tasks: who labels what, blind, kept apart from the project's labels until settled."""

from __future__ import annotations

import pytest

from defectlab.consensus import annotate, create_task, labeler_view, list_tasks, next_image
from defectlab.data.labels import list_images
from defectlab.errors import ConflictError, InvalidInputError, NotFoundError


def labels_of(workspace) -> dict[str, str | None]:
    return {row["path"]: row["label"] for row in list_images(workspace, "parts")}


@pytest.mark.parametrize(("labelers", "message"), [
    (["ana"], "needs 2 to 5 labelers; 1 given"),
    (["a", "b", "c", "d", "e", "f"], "needs 2 to 5 labelers; 6 given"),
    (["ana", "ana"], "'ana' is named more than once"),
    (["ana", " "], "a labeler name is empty"),
    (["ana", "import"], "names the labels that came with an import"),
])
def test_labelers_are_checked(workspace, project, labelers, message) -> None:
    with pytest.raises(InvalidInputError, match=message):
        create_task(workspace, "parts", "round-1", labelers, created_by="lead")
    assert list_tasks(workspace, "parts") == []


def test_task_names_images_and_draws(workspace, project) -> None:
    task = create_task(workspace, "parts", "round-1", ["ana", "ben"], created_by="lead", count=4, seed=3)
    assert task["images"] == 4
    assert task["progress"] == {"ana": {"done": 0, "left": 4}, "ben": {"done": 0, "left": 4}}
    with pytest.raises(ConflictError, match="has a labeling task 'round-1' already"):
        create_task(workspace, "parts", "round-1", ["ana", "ben"], created_by="lead")
    with pytest.raises(InvalidInputError, match="image 999 is not in project"):
        create_task(workspace, "parts", "round-2", ["ana", "ben"], created_by="lead", image_ids=[999])
    with pytest.raises(InvalidInputError, match="no unlabeled images"):
        create_task(workspace, "parts", "round-2", ["ana", "ben"], created_by="lead", unlabeled=True)
    with pytest.raises(NotFoundError, match="no labeling task 'round-9'; its tasks: round-1"):
        next_image(workspace, "parts", "round-9", "ana")


def test_labeling_is_blind_and_apart(workspace, project) -> None:
    before = labels_of(workspace)
    create_task(workspace, "parts", "round-1", ["ana", "ben"], created_by="lead")
    first = next_image(workspace, "parts", "round-1", "ana")
    assert next_image(workspace, "parts", "round-1", "ben") == first
    assert set(first) == {"image_id", "path", "width", "height", "position", "images", "left"}
    assert first["left"] == 6

    annotate(workspace, "parts", "round-1", first["image_id"], "ana", class_name="scratch")
    annotate(workspace, "parts", "round-1", first["image_id"], "ana", class_name="good")
    annotate(workspace, "parts", "round-1", first["image_id"], "ben", class_name="dent")

    assert labeler_view(workspace, "parts", "round-1", first["image_id"], "ana") == [{"kind": "class", "class": "ok"}]
    assert labeler_view(workspace, "parts", "round-1", first["image_id"], "ben") == [{"kind": "class", "class": "dent"}]
    assert next_image(workspace, "parts", "round-1", "ana")["left"] == 5
    assert labels_of(workspace) == before
    task = list_tasks(workspace, "parts")[0]
    assert task["progress"]["ana"] == {"done": 1, "left": 5}
    with pytest.raises(NotFoundError, match="'cem' is not a labeler of task 'round-1'; its labelers: ana, ben"):
        annotate(workspace, "parts", "round-1", first["image_id"], "cem", class_name="ok")


@pytest.mark.parametrize(("regions", "message"), [
    ([{"box": [1, 1, 4, 4]}], "region 1 has no 'class'"),
    ([{"class": "dent", "box": [1, 1, 4, 4]}, {"class": "ok", "box": [1, 1, 4, 4]}], "region 2 has class ok"),
    ([{"class": "dent"}], "region 1 needs one 'box'"),
    ([{"class": "dent", "box": [1, 1, 4]}], "box must have 4 numbers, not 3"),
    ([{"class": "dent", "polygon": [1, 1, 4, 4]}], "polygon must have an even count of at least 6 numbers"),
    ([{"class": "dent", "box": [40, 40, 50, 50]}], "has no area inside the 16x16 image"),
    ([{"class": "rust", "box": [1, 1, 4, 4]}], "class 'rust' is not in the project"),
])
def test_bad_regions_name_the_region_and_save_nothing(workspace, project, regions, message) -> None:
    create_task(workspace, "parts", "round-1", ["ana", "ben"], created_by="lead")
    image_id = project["dent/0.png"]
    annotate(workspace, "parts", "round-1", image_id, "ana", class_name="dent")
    with pytest.raises(InvalidInputError, match=message):
        annotate(workspace, "parts", "round-1", image_id, "ana", regions=regions)
    assert labeler_view(workspace, "parts", "round-1", image_id, "ana") == [{"kind": "class", "class": "dent"}]


def test_class_and_regions_are_not_given_together(workspace, project) -> None:
    create_task(workspace, "parts", "round-1", ["ana", "ben"], created_by="lead")
    with pytest.raises(InvalidInputError, match="either one class for the whole image"):
        annotate(workspace, "parts", "round-1", project["dent/0.png"], "ana")
    with pytest.raises(InvalidInputError, match="either one class for the whole image"):
        annotate(workspace, "parts", "round-1", project["dent/0.png"], "ana", class_name="dent",
                 regions=[{"class": "dent", "box": [1, 1, 4, 4]}])
