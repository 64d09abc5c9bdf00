"""The web UI's photo-library features in a real browser: a face drawn by hand on a photo, a false
detection removed ("Not a face"), every face searched (by a photo, and from a face with a filter),
and a person forgotten everywhere.

The site, photos and fake analyzer are test_web_ui's (skipped, with its reason, where Playwright
or Chromium is missing). Its analyzer reads faces from the photos' pixels; ``face_at`` (the face
inside a drawn box) is added here for this module: a drawn face is a new person, direction 5.
Screenshots (photo-draw, search-faces, search-faces-no-match, forget) go where test_web_ui's do.
"""

from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest
from test_web_ui import DIRECTIONS, PHONE, FakeAnalyzer, W, expect, grouped, no_problems, shot, site  # noqa: F401

from faceatlas.types import Box, Face, Landmarks, Pose, Quality

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

DRAWN = (176, 36, 256, 116)  # an empty corner of a.png, in its pixels (320 x 240)


def drawn_face_at(self, image, box) -> Face:
    x1, y1, x2, y2 = (float(v) for v in box)
    return Face(
        box=Box(x1, y1, x2, y2),
        score=0.0,
        landmarks=Landmarks(np.full((5, 2), (x1 + x2) / 2, dtype=np.float32)),
        pose=Pose(0.0, 0.0, 0.0),
        quality=Quality(0.8, 1, 1, 1, 1, 1),
        embedding=DIRECTIONS[5].copy(),
    )


@pytest.fixture(scope="module", autouse=True)
def analyzer_draws():
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(FakeAnalyzer, "face_at", drawn_face_at, raising=False)
        yield


def api(site, method: str, path: str, body: dict | None = None):  # noqa: F811
    request = urllib.request.Request(
        site.url.rstrip("/") + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {site.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def photo_faces(site, path: str) -> list[dict]:  # noqa: F811
    return api(site, "GET", f"/v1/collection/photos/{site.photo_id(path)}")["faces"]


def photo_page(site, path: str):  # noqa: F811
    page = site.page()
    page.goto(site.url + f"#/photos/{site.photo_id(path)}")
    expect(page.locator(".photo-frame img")).to_have_attribute("src", re.compile("^blob:"))
    expect(page.locator(".photo-frame .box").first).to_be_visible()
    return page


def drag(page, box) -> None:
    """Drag the mouse over the photo along a box given in the photo's pixels."""
    shown = page.locator(".photo-frame img").bounding_box()
    scale = shown["width"] / W
    x1, y1, x2, y2 = (
        shown["x"] + box[0] * scale,
        shown["y"] + box[1] * scale,
        shown["x"] + box[2] * scale,
        shown["y"] + box[3] * scale,
    )
    page.mouse.move(x1, y1)
    page.mouse.down()
    page.mouse.move((x1 + x2) / 2, (y1 + y2) / 2, steps=3)
    page.mouse.move(x2, y2, steps=3)
    page.mouse.up()


def test_a_face_drawn_by_hand_is_saved_with_its_box_and_name(site, grouped):  # noqa: F811
    page = photo_page(site, "a.png")
    before = photo_faces(site, "a.png")
    draw = page.get_by_role("button", name="Draw a face")

    # Escape while drawing stops drawing; Escape in the dialog cancels: nothing is saved, drawing stops
    draw.click()
    expect(page.locator(".draw-layer")).to_have_count(1)
    page.keyboard.press("Escape")
    expect(page.locator(".draw-layer")).to_have_count(0)
    draw.click()
    expect(page.get_by_role("button", name="Stop drawing")).to_have_attribute("aria-pressed", "true")
    drag(page, DRAWN)
    dialog = page.get_by_role("dialog", name="Save this face")
    expect(dialog).to_be_visible()
    page.keyboard.press("Escape")
    expect(dialog).to_be_hidden()
    expect(draw).to_have_attribute("aria-pressed", "false")
    expect(page.locator(".draw-layer")).to_have_count(0)
    assert photo_faces(site, "a.png") == before

    # a box over the face already there: the API's refusal is shown in the dialog
    draw.click()
    drag(page, tuple(before[0]["box"]))
    dialog.get_by_role("button", name="Save face").click()
    expect(dialog.get_by_role("alert")).to_contain_text("Could not save the face")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()

    # drag a face in an empty corner, name it, Enter saves it
    draw.click()
    drag(page, DRAWN)
    expect(dialog).to_contain_text("drawn by hand")
    dialog.get_by_label("Who is it? (optional)").fill("Charles Babbage")
    shot(page, "photo-draw")
    dialog.get_by_label("Who is it? (optional)").press("Enter")
    expect(page.get_by_role("status").filter(has_text="Saved the face of Charles Babbage")).to_be_visible()
    manual = page.locator(".photo-frame .box.manual")
    expect(manual).to_have_count(1)
    expect(manual).to_have_attribute("title", "Charles Babbage (drawn by hand)")
    expect(manual).to_contain_text("Charles Babbage")
    expect(page.locator(".photo-frame .box")).to_have_count(len(before) + 1)
    expect(page.get_by_role("list", name="Faces in this photo")).to_contain_text("drawn by hand")

    saved = [face for face in photo_faces(site, "a.png") if face["origin"] == "manual"]
    assert len(saved) == 1 and saved[0]["cluster_name"] == "Charles Babbage"
    assert np.abs(np.array(saved[0]["box"]) - np.array(DRAWN)).max() <= 3, saved[0]["box"]
    no_problems(page)


def test_not_a_face_removes_the_detection_and_its_box(site, grouped):  # noqa: F811
    page = photo_page(site, "d.png")
    faces = photo_faces(site, "d.png")
    assert len(faces) == 2
    boxes = page.locator(".photo-frame .box")
    expect(boxes).to_have_count(2)

    page.get_by_role("button", name=re.compile("^Not a face: face 2")).click()
    confirm = page.get_by_role("dialog", name="Face 2 is not a face?")
    expect(confirm).to_contain_text("not touched")
    confirm.get_by_role("button", name="Cancel").click()  # asked, and kept
    expect(boxes).to_have_count(2)

    page.get_by_role("button", name=re.compile("^Not a face: face 2")).click()
    confirm.get_by_role("button", name="Not a face").click()
    expect(page.get_by_role("status").filter(has_text="Removed face 2")).to_be_visible()
    expect(boxes).to_have_count(1)
    expect(page.get_by_role("list", name="Faces in this photo").locator("> li")).to_have_count(1)
    expect(page.locator("figcaption")).to_contain_text("1 face")
    assert [face["id"] for face in photo_faces(site, "d.png")] == [faces[0]["id"]]
    no_problems(page)


def test_search_every_face_by_a_photo_and_from_a_face_with_a_filter(site, grouped):  # noqa: F811
    page = site.page()
    page.goto(site.url + "#/search")
    page.get_by_role("link", name="Every face in your photos").click()
    expect(page.get_by_role("heading", name="Search every face", level=1)).to_be_visible()

    # by a photo of person 0: her three faces match (a, b, f), best first; the rest are below the threshold
    page.get_by_label("Choose a photo of the face").set_input_files(str(site.photos / "a.png"))
    hits = page.get_by_role("list", name="Similar faces").locator("> li")
    expect(page.locator(".hits-summary")).to_contain_text("3 matches (at FPIR 1%)")
    expect(hits.first).to_contain_text("similarity 1.00")
    expect(page.locator("li.hit:not(.below)")).to_have_count(3)
    expect(page.locator("li.hit.below").first).to_contain_text("below the threshold")
    expect(hits.first.locator("img.thumb")).to_have_attribute("src", re.compile("^blob:"))
    shot(page, "search-faces")
    photos = {site.photo_id(path) for path in ("a.png", "b.png", "f.png")}
    shown = {
        int(href.split("/")[-1])
        for href in page.locator("li.hit:not(.below) a.hit-photo").evaluate_all(
            "els => els.map(e => e.getAttribute('href'))"
        )
    }
    assert shown == photos

    # from a face (the link on the photo page), with a filter: only the trip folder, where she is not
    no_problems(page)
    page = site.page()
    hits = page.get_by_role("list", name="Similar faces").locator("> li")
    page.goto(site.url + f"#/photos/{site.photo_id('a.png')}")
    first = page.get_by_role("list", name="Faces in this photo").locator("> li").first
    face_id = photo_faces(site, "a.png")[0]["id"]
    first.get_by_role("link", name="Find this face elsewhere").click()
    expect(page).to_have_url(re.compile(rf"#/search/faces\?face={face_id}$"))
    expect(page.locator(".probe")).to_contain_text(f"face #{face_id}")
    expect(page.locator(".hits-summary")).to_contain_text("2 matches")  # b and f: the face itself is left out
    page.get_by_label("Folder").fill("trip")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".no-match")).to_have_text("No match (at FPIR 1%)")
    expect(hits).to_have_count(3)  # g and h's faces: nearest, greyed, below the threshold
    expect(page.locator("li.hit.below")).to_have_count(3)
    expect(page.locator(".hits-summary")).to_contain_text("3 of 12 faces searched")
    shot(page, "search-faces-no-match")

    # a person's faces only (the one drawn by hand), then only faces nobody named
    page.get_by_label("Folder").fill("")
    page.get_by_label("Person").fill("Charles Babbage")
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".hits-summary")).to_contain_text("1 of 12 faces searched")
    expect(hits).to_have_count(1)
    expect(hits.first).to_contain_text("Charles Babbage")
    page.get_by_label("Person").fill("")
    page.get_by_label("Unnamed faces only").check()
    page.get_by_role("button", name="Search").click()
    expect(page.locator(".hits-summary")).to_contain_text("2 matches")
    expect(hits.filter(has_text="Charles Babbage")).to_have_count(0)
    expect(hits).to_have_count(10)  # 12 faces, less the one searched by and Charles Babbage's
    page.get_by_label("Unnamed faces only").uncheck()

    # a filter that leaves nothing, and one the server refuses
    page.get_by_label("Taken from").fill("2001-01-01")  # the drawn photos have no capture time
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_text("No face passed the filters")).to_be_visible()
    page.get_by_label("Taken from").fill("")
    page.get_by_label("Person").fill("Nobody Known")
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("alert")).to_contain_text("Search failed")
    no_problems(page)


def test_forget_a_person_everywhere_from_their_page(site, grouped):  # noqa: F811
    cid = photo_faces(site, "c.png")[0]["cluster_id"]  # person 1's (c.png holds only them)
    page = site.page()
    page.goto(site.url + f"#/people/{cid}")
    forget = page.get_by_role("button", name="Forget everywhere…")
    expect(forget).to_be_hidden()  # an unnamed person has no name to forget
    page.get_by_label("Name", exact=True).fill("Bob Forgotten")
    page.get_by_role("button", name="Save name").click()
    expect(page.get_by_role("status").filter(has_text="Named Bob Forgotten")).to_be_visible()

    forget.click()
    confirm = page.get_by_role("dialog", name="Forget Bob Forgotten everywhere?")
    expect(confirm).to_contain_text("sidecar")
    expect(confirm).to_contain_text("Your photos are not touched")
    shot(page, "forget")
    confirm.get_by_role("button", name="Forget everywhere").click()
    report = page.get_by_role("dialog", name="Forgot Bob Forgotten")
    expect(report).to_contain_text("Removed 3 faces with their embeddings")
    expect(report).to_contain_text("Kept: your photos")
    report.get_by_role("button", name="OK").click()
    expect(page).to_have_url(re.compile("#/people$"))
    expect(page.locator(f'a.tile[data-cluster="{cid}"]')).to_have_count(0)
    assert all(face["cluster_id"] != cid for path in ("b.png", "c.png", "d.png") for face in photo_faces(site, path))
    assert all(c["name"] != "Bob Forgotten" for c in api(site, "GET", "/v1/collection/clusters?limit=1000")["clusters"])
    no_problems(page)


def test_a_face_is_drawn_by_touch_on_a_phone(site, grouped):  # noqa: F811
    page = site.page(viewport=PHONE)
    page.goto(site.url + f"#/photos/{site.photo_id('c.png')}")
    expect(page.locator(".photo-frame img")).to_have_attribute("src", re.compile("^blob:"))
    page.get_by_role("button", name="Draw a face").click()
    layer = page.locator(".draw-layer")
    shown = page.locator(".photo-frame img").bounding_box()
    scale = shown["width"] / W  # smaller than on the desktop: the conversion is the page's, not a constant
    assert scale < 1.5
    points = [
        (shown["x"] + x * scale, shown["y"] + y * scale)
        for x, y in ((DRAWN[0], DRAWN[1]), (216, 80), (DRAWN[2], DRAWN[3]))
    ]
    touch = {"pointerType": "touch", "pointerId": 7, "isPrimary": True, "button": 0, "buttons": 1, "bubbles": True}
    for kind, (x, y) in zip(("pointerdown", "pointermove", "pointermove"), points, strict=True):
        layer.dispatch_event(kind, {**touch, "clientX": x, "clientY": y})
    layer.dispatch_event("pointerup", {**touch, "buttons": 0, "clientX": points[-1][0], "clientY": points[-1][1]})
    dialog = page.get_by_role("dialog", name="Save this face")
    dialog.get_by_role("button", name="Save face").click()  # nobody named: an unnamed face
    expect(page.locator(".photo-frame .box.manual")).to_have_count(1)
    saved = [face for face in photo_faces(site, "c.png") if face["origin"] == "manual"]
    assert len(saved) == 1 and saved[0]["cluster_name"] is None
    assert np.abs(np.array(saved[0]["box"]) - np.array(DRAWN)).max() <= 3, saved[0]["box"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    saved_id = saved[0]["id"]
    page.goto(site.url + f"#/search/faces?face={saved_id}")  # the face search fits a phone too
    expect(page.locator(".hits-summary")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    no_problems(page)
