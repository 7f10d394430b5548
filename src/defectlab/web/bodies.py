"""Request and error bodies of the REST API, as Pydantic models so that OpenAPI documents them.

The models check only the JSON types and that the names of the people
acting are not empty. The library functions behind the routes check
everything else and name the field that is wrong in their messages.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from defectlab.accounts import ROLES
from defectlab.book import EXAMPLE_ROLES
from defectlab.data.browse import BULK_ACTIONS
from defectlab.workspace.schema import TASKS

__all__ = [
    "BookChange",
    "BookExample",
    "BookRule",
    "BulkChange",
    "CheckRequest",
    "EvaluationRequest",
    "ErrorBody",
    "ImageAnnotations",
    "ImageClass",
    "ImageRegion",
    "NewClasses",
    "NewProject",
    "NewTask",
    "NewToken",
    "NewUser",
    "SignIn",
    "Region",
    "SettleAgreed",
    "Settlement",
    "TaskAnnotation",
    "TrainRequest",
    "UserChange",
]

Person = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
"""The name of the person acting. The signed-in account is what the server records, so the field may be left
out; when it is sent it must be that account's name."""

ACTING = "Leave out: the signed-in account is recorded. When sent, it must be that account's name."


class Body(BaseModel):
    """Base of the request bodies: a field the API does not know is an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class ErrorBody(BaseModel):
    """The body of every error response."""

    error: str = Field(description="What was wrong, the offending value, and what to do instead.")


class NewProject(Body):
    name: str = Field(description="1 to 200 letters, digits, spaces, '.', '_' or '-', starting with a letter or digit.")
    task: str = Field(description="The project's task type.", json_schema_extra={"enum": list(TASKS)})
    classes: list[str] = Field(default_factory=list, description="Defect classes; `ok` is always added.")


class NewClasses(Body):
    names: list[str] = Field(min_length=1, description="Defect classes to add; ones the project has are left alone.")


class ImageClass(Body):
    class_name: str = Field(alias="class", description="One of the project's classes; `ok` for no defect.")
    labeler: Person | None = Field(None, description=ACTING)
    version: int | None = Field(None, description="The image version the change is based on; a newer current "
                                                  "version rejects the change with status 409.")


class NewTask(Body):
    name: str = Field(description="The task's name, unique in the project.")
    labelers: list[str] = Field(description="2 to 5 labeler names.")
    created_by: Person | None = Field(None, description=ACTING)
    image_ids: list[int] | None = Field(None, description="The images to label (default: all the project's images).")
    unlabeled: bool = Field(False, description="Only images without a label, when `image_ids` is not given.")
    count: int | None = Field(None, description="Draw this many of the images at random with `seed`.")
    seed: int = Field(0, description="Seed of the random draw and of the order labelers get the images in.")


class Region(Body):
    class_name: str = Field(alias="class", description="The region's defect class (not `ok`).")
    box: list[float] | None = Field(None, description="`[x_min, y_min, x_max, y_max]` in displayed pixels.")
    polygon: list[float] | None = Field(None, description="`[x1, y1, x2, y2, ...]` in displayed pixels.")


class TaskAnnotation(Body):
    """One labeler's annotation of one task image: a class for the whole image, or regions."""

    labeler: Person | None = Field(None, description=ACTING)
    class_name: str | None = Field(None, alias="class", description="The whole image's class; `ok` for no defect.")
    regions: list[Region] | None = Field(None, description="Regions with a box or a polygon each.")

    def region_dicts(self) -> list[dict[str, Any]] | None:
        """Return the regions as the library takes them, with only the keys that were sent."""
        if self.regions is None:
            return None
        return [region.model_dump(by_alias=True, exclude_none=True) for region in self.regions]


class Settlement(Body):
    """A reviewer's decision on one task image."""

    reviewer: Person | None = Field(None, description=ACTING)
    class_name: str | None = Field(None, alias="class", description="The final class (default: `labeler`'s class).")
    labeler: str | None = Field(None, description="The labeler whose annotation, with its regions, becomes the label.")
    ambiguous: bool = Field(False, description="Make the image a borderline example of the class in the defect book "
                                               "instead; its label stays as it is.")
    note: str | None = Field(None, description="Why; kept with the decision and in the defect book.")


class SettleAgreed(Body):
    reviewer: Person | None = Field(None, description=ACTING)


class BookRule(Body):
    """A decision rule: when a region of the class makes an item defective. A field sent as null is removed."""

    min_length: float | None = Field(None, description="Minimum length of the longest side of the region's box, in `unit`.")
    min_area: float | None = Field(None, description="Minimum region area, in `unit` squared.")
    unit: str | None = Field(None, description="Unit of the sizes.", json_schema_extra={"enum": ["px", "mm"]})
    pixel_size_mm: float | None = Field(None, description="Millimetres per pixel; needed when `unit` is `mm`.")


class BookChange(Body):
    """A change to a class's entry in the defect book; fields not sent stay as they are."""

    author: Person | None = Field(None, description=ACTING)
    definition: str | None = Field(None, description="What the defect is, in words.")
    rule: BookRule | None = None
    based_on: int | None = Field(None, description="The entry version the change is based on; a newer current "
                                                   "version rejects the change with status 409.")

    def rule_dict(self) -> dict[str, Any] | None:
        """Return the rule fields that were sent, nulls included, because a null removes a field."""
        return None if self.rule is None else self.rule.model_dump(exclude_unset=True)


class BookExample(Body):
    image_id: int
    role: str = Field("example", json_schema_extra={"enum": list(EXAMPLE_ROLES)},
                      description="A clear case, a look-alike that is not the defect, or a case near the rule.")
    author: Person | None = Field(None, description=ACTING)
    note: str | None = Field(None, description="What to look at in the image.")


class CheckRequest(Body):
    labels: bool = Field(True, description="Also search for suspicious labels, the slowest part of the check.")


class MaskCrop(Body):
    x: int = Field(description="Column of the crop's left edge in the image, in displayed pixels.")
    y: int = Field(description="Row of the crop's top edge in the image, in displayed pixels.")
    png: str = Field(max_length=12 << 20, description="Base64 PNG (a `data:` URL prefix is allowed) whose "
                                                     "non-zero or opaque pixels are inside the mask.")


class ImageRegion(Body):
    class_name: str = Field(alias="class", description="The region's defect class (not `ok`).")
    box: list[float] | None = Field(None, description="`[x_min, y_min, x_max, y_max]` in displayed pixels.")
    polygon: list[float] | None = Field(None, description="`[x1, y1, x2, y2, ...]` in displayed pixels.")
    mask: MaskCrop | None = Field(None, description="The mask as the crop of its bounding box.")


class ImageAnnotations(Body):
    """An image's whole label, replacing the one it has; neither `class` nor `regions` makes it not labeled."""

    labeler: Person | None = Field(None, description=ACTING)
    version: int = Field(description="The image version the label was based on; a newer current version rejects "
                                     "the save with status 409.")
    class_name: str | None = Field(None, alias="class", description="The image-level class; `ok` for no defect.")
    regions: list[ImageRegion] = Field(default_factory=list, max_length=5000)

    def region_dicts(self) -> list[dict[str, Any]]:
        """Return the regions as the library takes them, with only the keys that were sent."""
        return [region.model_dump(by_alias=True, exclude_none=True) for region in self.regions]


class BulkChange(Body):
    image_ids: list[int] = Field(min_length=1, description="The selected images.")
    action: str = Field(json_schema_extra={"enum": list(BULK_ACTIONS)},
                        description="Set the split, set the image-level class, exclude from or include in training, "
                                    "add or remove a tag.")
    value: str | None = Field(None, description="The split (`train`, `dev`, `test`, or null for none), the class, "
                                                "or the tag (at most 100 characters, one line).")
    labeler: Person | None = Field(None, description=ACTING)


class TrainRequest(Body):
    settings: dict[str, bool | int | float | str] | None = Field(
        None, description="Settings to use in place of the auto-tuner's, such as `{\"epochs\": 20}`; each is "
                          "checked against its safe range (GET /api/training/settings), and one outside it is "
                          "rejected with status 400.")


class EvaluationRequest(Body):
    split: str = Field("test", json_schema_extra={"enum": ["train", "dev", "test"]},
                       description="The split of the model's snapshot to evaluate on; `test` images were used "
                                   "neither for training nor for choosing the threshold.")


class SignIn(Body):
    name: str = Field(max_length=100, description="The account's name.")
    password: str = Field(max_length=1000)


class NewUser(Body):
    name: str = Field(description="1 to 100 letters, digits, spaces, '.', '_', '@' or '-', starting with a letter "
                                  "or digit.")
    role: str = Field(json_schema_extra={"enum": list(ROLES)})
    password: str | None = Field(None, max_length=1000, description="At least 8 characters (default: a random "
                                                                    "password, returned once).")


class UserChange(Body):
    role: str | None = Field(None, json_schema_extra={"enum": list(ROLES)}, description="Only an owner may "
                                                                                         "change roles.")
    password: str | None = Field(None, max_length=1000, description="At least 8 characters; ends the account's "
                                                                    "sign-in sessions.")


class NewToken(Body):
    name: str = Field("api", min_length=1, max_length=100, description="What the token is for, such as the "
                                                                       "script's name.")
