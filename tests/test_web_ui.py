"""The web UI in a real browser (Playwright + Debian's Chromium), against the real app on loopback.

A fake analyzer reads its faces from the pixels (as in test_collection.py), so no model loads:
the photos are drawn here, their top-left pixels saying who is in them. The tests sign in, index
and group a folder from the Jobs page, name, merge, split and correct people, search by photo,
enrol a face from the search result, open a photo, and write screenshots to docs/screenshots/.

Needs ``pip install playwright`` and ``/usr/bin/chromium`` (``apt-get install chromium``); never
``playwright install``. Skipped with the reason when either is missing.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image, ImageDraw

from faceatlas.models.cards import DLIB_RESNET_CARD
from faceatlas.types import Box, Face, Landmarks, Pose, Quality

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
# screenshots go to a temporary folder; FACEATLAS_SCREENSHOTS=docs/screenshots refreshes the committed ones
SCREENSHOTS = Path(os.environ.get("FACEATLAS_SCREENSHOTS") or tempfile.mkdtemp(prefix="faceatlas-shots-"))
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
TIMEOUT_MS = 10_000


def _install_chromium_in_ci() -> None:
    """CI runs as root on a fresh machine: install Debian's Chromium there, so the UI is really
    tested; anywhere else a missing browser only skips these tests, with the reason."""
    if CHROMIUM.exists() or os.environ.get("CI") != "true" or os.geteuid() != 0 or not shutil.which("apt-get"):
        return
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "timeout": 900}
    subprocess.run(["apt-get", "update"], check=False, **quiet)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "install", "-y", "--no-install-recommends", "chromium"], check=False, env=env, **quiet)


sync_api = pytest.importorskip("playwright.sync_api", reason="needs the playwright package: pip install playwright")
_install_chromium_in_ci()
if not CHROMIUM.exists():
    pytest.skip(f"needs Chromium at {CHROMIUM} (apt-get install chromium)", allow_module_level=True)
expect = sync_api.expect


# --- photos whose pixels say who is in them, and an analyzer that reads them ---------------------------

W, H = 320, 240
DIM = 128
DIRECTIONS = np.linalg.qr(np.random.default_rng(7).normal(size=(DIM, DIM)))[0].astype(np.float32)
SKIN = [(241, 194, 160), (198, 134, 96), (224, 172, 105), (141, 85, 54), (255, 214, 180)]
HAIR = [(60, 40, 30), (20, 20, 20), (200, 160, 60), (120, 50, 20), (150, 150, 150)]
BACKGROUNDS = [(170, 205, 230), (200, 225, 190), (235, 215, 180), (215, 200, 235), (190, 190, 200)]
# photo -> the people in it, largest face first; person 3 is person 0 "in another look" (merged by hand)
PHOTOS = {
    "a.png": [0],
    "b.png": [0, 1],
    "c.png": [1],
    "d.png": [1, 2],
    "e.png": [2],
    "f.png": [2, 0],
    "trip/g.png": [3],
    "trip/h.png": [3, 2],
}


def face_box(k: int) -> tuple[int, int, int, int]:
    size = 84 - 10 * k
    x, y = 24 + 100 * k, 56 + 14 * k
    return x, y, x + size, y + size


def draw_photo(path: Path, people: list[int], tag: int) -> Path:
    """A drawn photo; pixel (0, 0) holds the number of faces and a tag, pixel (1 + k, 0) face k's person."""
    image = Image.new("RGB", (W, H), BACKGROUNDS[tag % len(BACKGROUNDS)])
    pen = ImageDraw.Draw(image)
    pen.rectangle((0, H - 50, W, H), fill=tuple(int(c * 0.8) for c in BACKGROUNDS[tag % len(BACKGROUNDS)]))
    for k, who in enumerate(people):
        x1, y1, x2, y2 = face_box(k)
        s = x2 - x1
        pen.rounded_rectangle(
            (x1 + s * 0.1, y2 - s * 0.05, x2 - s * 0.1, H), radius=int(s * 0.3), fill=HAIR[(who + 2) % 5]
        )
        pen.ellipse((x1 - s * 0.04, y1 - s * 0.12, x2 + s * 0.04, y1 + s * 0.55), fill=HAIR[who % len(HAIR)])
        pen.ellipse((x1 + s * 0.08, y1 + s * 0.05, x2 - s * 0.08, y2), fill=SKIN[who % len(SKIN)])
        for ex in (0.35, 0.65):
            cx, cy = x1 + s * ex, y1 + s * 0.45
            pen.ellipse((cx - s * 0.05, cy - s * 0.05, cx + s * 0.05, cy + s * 0.05), fill=(40, 30, 30))
        pen.arc((x1 + s * 0.33, y1 + s * 0.55, x2 - s * 0.33, y1 + s * 0.8), 20, 160, fill=(150, 60, 60), width=3)
    pixels = np.asarray(image).copy()
    pixels[0, 0] = (40 * len(people), tag, 0)
    for k, who in enumerate(people):
        pixels[0, 1 + k] = (30 * who, 0, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def person_direction(who: int) -> np.ndarray:
    if who == 3:  # person 0 in another look: alike (0.75), not enough to be grouped with her
        return 0.75 * DIRECTIONS[0] + np.sqrt(1 - 0.75**2) * DIRECTIONS[3]
    return DIRECTIONS[who]


class FakeEmbedder:
    card = DLIB_RESNET_CARD
    dim = DIM


GATED_TAG = 99  # a photo drawn with this tag is analysed only once GATE is set (a job to cancel)
GATE = threading.Event()
GATE.set()


class FakeAnalyzer:
    """Faces as the photo's top-left pixels say (see ``draw_photo``); person p's embedding is
    direction p, nudged per face position so no two faces are identical."""

    embedder = FakeEmbedder()

    def analyze(self, image: np.ndarray) -> list[Face]:
        if int(image[0, 0, 1]) == GATED_TAG:
            GATE.wait(20)
        n = round(int(image[0, 0, 0]) / 40)
        faces = []
        for k in range(n):
            who = round(int(image[0, 1 + k, 0]) / 30)
            x1, y1, x2, y2 = face_box(k)
            vector = person_direction(who) + 0.05 * DIRECTIONS[32 + k]
            faces.append(
                Face(
                    box=Box(x1, y1, x2, y2),
                    score=0.99,
                    landmarks=Landmarks(np.full((5, 2), (x1 + x2) / 2)),
                    pose=Pose(0.0, 0.0, 0.0),
                    quality=Quality(0.9, 1, 1, 1, 1, 1),
                    embedding=(vector / np.linalg.norm(vector)).astype(np.float32),
                )
            )
        return faces[::-1]


# --- the server and the browser -------------------------------------------------------------------------


class Site:
    def __init__(self, url: str, app, token: str, photos: Path, browser) -> None:
        self.url, self.app, self.token, self.photos, self.browser = url, app, token, photos, browser

    def page(self, viewport=DESKTOP, signed_in: bool = True, color_scheme: str = "light"):
        context = self.browser.new_context(viewport=viewport, color_scheme=color_scheme, reduced_motion="reduce")
        context.set_default_timeout(TIMEOUT_MS)
        page = context.new_page()
        page.problems = []  # uncaught errors and CSP violations
        page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
        page.on(
            "console",
            lambda msg: page.problems.append(msg.text) if "Content Security Policy" in msg.text else None,
        )
        if signed_in:
            page.add_init_script(f"sessionStorage.setItem('faceatlas.apiKey', {self.token!r})")
        return page

    def clusters(self) -> dict[int, dict[str, Any]]:
        """cluster id -> {"name", "people": sorted drawn person numbers} (read from the store)."""
        from faceatlas.collection import CollectionStore

        by_path = {path: people for path, people in PHOTOS.items()}
        out: dict[int, dict[str, Any]] = {}
        with CollectionStore.open(self.app.state.settings.collection_path) as store:
            names = {c.id: c.name for c in store.clusters()}
            for photo in store.photos():
                for face in store.faces_of_photo(photo.id):
                    if face.cluster is not None and face.cluster >= 0:
                        entry = out.setdefault(face.cluster, {"name": names.get(face.cluster), "people": []})
                        entry["people"].append(by_path[photo.path][face.idx])
        for entry in out.values():
            entry["people"].sort()
        return out

    def photo_id(self, path: str) -> int:
        from faceatlas.collection import CollectionStore

        with CollectionStore.open(self.app.state.settings.collection_path) as store:
            return next(p.id for p in store.photos() if p.path == path)


def shot(page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.wait_for_function("() => [...document.querySelectorAll('img')].every(i => i.complete)")
    page.evaluate("document.getElementById('toasts').replaceChildren()")  # messages of earlier steps
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"))


def no_problems(page) -> None:
    assert page.problems == []
    page.context.close()


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    import uvicorn

    from faceatlas.server.app import create_app
    from faceatlas.server.settings import Settings
    from faceatlas.server.web import mount_web

    tmp = tmp_path_factory.mktemp("web-ui")
    photos = tmp / "photos"
    for tag, (path, people) in enumerate(PHOTOS.items()):
        draw_photo(photos / path, people, tag)
    settings = Settings(data_dir=tmp / "data", photo_roots=[photos], rate_limit_per_minute=0)
    app = create_app(settings, analyzer_factory=FakeAnalyzer)
    mount_web(app)
    mount_web(app)  # idempotent
    _, token = app.state.keys.create("web ui test", "admin")

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.02)
    assert server.started, "uvicorn did not start"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        site = Site(f"http://127.0.0.1:{port}/", app, token, photos, browser)
        try:
            yield site
        finally:
            browser.close()
            server.should_exit = True
            thread.join(10)
            sock.close()


@pytest.fixture(scope="module")
def grouped(site):
    """Index the photo folder and group its faces, from the Jobs page (asserting as it goes)."""
    page = site.page()
    page.goto(site.url + "#/jobs")
    expect(page.get_by_role("heading", name="Jobs", level=1)).to_be_visible()
    expect(page.get_by_text("No jobs yet.")).to_be_visible()

    page.get_by_label("Folder on the server").fill("/etc")
    page.get_by_role("button", name="Start indexing").click()
    expect(page.get_by_role("alert").filter(has_text="not inside")).to_be_visible()  # the API's own message

    page.get_by_label("Folder on the server").fill(str(site.photos))
    page.get_by_role("button", name="Start indexing").click()
    index_job = page.locator("li.job").filter(has_text="Index")
    expect(index_job.locator(".badge")).to_have_text("done")
    expect(index_job.locator(".job-count")).to_have_text("8 / 8")
    expect(index_job.locator(".job-params")).to_have_text(str(site.photos))

    page.get_by_role("button", name="Start grouping").click()
    cluster_job = page.locator("li.job").filter(has_text="Group faces")
    expect(cluster_job.locator(".badge")).to_have_text("done")
    expect(page.locator("li.job")).to_have_count(2)
    expect(cluster_job.get_by_role("button", name=re.compile("Cancel"))).to_be_hidden()
    shot(page, "jobs")
    no_problems(page)
    clusters = site.clusters()
    assert (
        sorted(c["people"] for c in clusters.values()) == [[0, 0, 0], [1, 1, 1], [2, 2, 2, 2], [3]]
        or len(clusters) >= 4
    )
    return clusters


# --- tests ------------------------------------------------------------------------------------------


def test_page_is_served_with_a_strict_content_security_policy(site):
    import urllib.request

    with urllib.request.urlopen(site.url) as response:
        policy = response.headers["Content-Security-Policy"]
        assert response.headers["Content-Type"].startswith("text/html")
        body = response.read().decode()
    assert "default-src 'self'" in policy and "img-src 'self' blob: data:" in policy and "script-src 'self'" in policy
    assert "http://" not in body.replace(site.url, "") and "https://" not in body  # nothing from the internet
    with urllib.request.urlopen(site.url + "ui/app.js") as response:
        assert response.headers["Content-Security-Policy"] == policy
        assert "javascript" in response.headers["Content-Type"]
    openapi = site.app.openapi()
    assert "/" not in openapi["paths"] and not any(p.startswith("/ui") for p in openapi["paths"])


def test_sign_in_rejects_a_bad_key_then_signs_in_and_out(site):
    page = site.page(signed_in=False)
    page.goto(site.url)
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    page.get_by_label("API key").fill("fa_not_a_real_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("That key was not accepted: the API key is not valid")
    shot(page, "sign-in")

    page.get_by_label("API key").fill(site.token)
    page.get_by_label("API key").press("Enter")
    expect(page.get_by_role("heading", name=re.compile("^People"), level=1)).to_be_visible()
    expect(page.get_by_role("link", name="People")).to_have_attribute("aria-current", "page")
    assert page.evaluate("sessionStorage.getItem('faceatlas.apiKey')") == site.token
    assert site.token not in page.url

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("status").filter(has_text="Signed out")).to_be_visible()
    assert page.evaluate("sessionStorage.getItem('faceatlas.apiKey')") is None
    no_problems(page)


def test_people_name_merge_split_and_not_this_person(site, grouped):
    clusters = site.clusters()
    by_person = {tuple(sorted(set(c["people"]))): cid for cid, c in clusters.items()}
    ada, other_look, bob = by_person[(0,)], by_person[(3,)], by_person[(1,)]
    page = site.page()
    page.goto(site.url + "#/people")
    tiles = page.locator("a.tile")
    expect(tiles).to_have_count(len(clusters))
    expect(page.locator("h1")).to_contain_text(f"{len(clusters)} people, 0 named")
    expect(tiles.filter(has_text="Unnamed").first).to_be_visible()
    expect(page.get_by_text("Nobody is enrolled yet.")).to_be_visible()

    # name a cluster: it is enrolled for search too
    page.locator(f'a.tile[data-cluster="{ada}"]').click()
    expect(page).to_have_url(re.compile(f"#/people/{ada}$"))
    expect(page.locator("h1")).to_contain_text("Unnamed person")
    expect(page.locator("li.face-card")).to_have_count(3)
    page.get_by_label("Name", exact=True).fill("Ada Lovelace")
    page.get_by_role("button", name="Save name").click()
    expect(page.locator("h1")).to_contain_text("Ada Lovelace")
    expect(page.get_by_role("status").filter(has_text="Named Ada Lovelace")).to_be_visible()

    # merge the other look of her into her, choosing from the list
    page.goto(site.url + f"#/people/{other_look}")
    expect(page.locator("li.face-card")).to_have_count(2)
    page.get_by_role("button", name="Merge into…").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading")).to_contain_text("Merge Unnamed person")
    dialog.get_by_label("Person to merge into").select_option(label="Ada Lovelace (3 faces)")
    dialog.get_by_role("button", name="Merge").click()
    expect(page).to_have_url(re.compile(f"#/people/{ada}$"))
    expect(page.locator("h1")).to_contain_text("Ada Lovelace · 5 faces")
    expect(page.locator("li.face-card")).to_have_count(5)
    expect(page.locator("li.face-card img.thumb").first).to_have_attribute("src", re.compile("^blob:"))
    shot(page, "person")

    # split two faces off Bob; then say one face of Bob is not him
    page.goto(site.url + f"#/people/{bob}")
    cards = page.locator("li.face-card")
    expect(cards).to_have_count(3)
    split = page.get_by_role("button", name="Split off selected")
    expect(split).to_be_disabled()
    cards.nth(0).get_by_role("checkbox").check()
    cards.nth(1).get_by_role("checkbox").check()
    expect(page.get_by_text("2 faces selected")).to_be_visible()
    split.click()
    expect(page.get_by_role("status").filter(has_text="Split off 2 faces as a new person")).to_be_visible()
    expect(cards).to_have_count(1)
    cards.nth(0).get_by_role("button", name="Not this person").click()
    expect(cards).to_have_count(0)
    expect(page.locator("h1")).to_contain_text("0 faces")

    page.get_by_role("link", name="People", exact=True).first.click()
    expect(page.locator("h1")).to_contain_text("1 named")
    expect(tiles.filter(has_text="Ada Lovelace")).to_contain_text("5 faces")
    gallery = page.get_by_role("list", name="Enrolled people")
    expect(gallery).to_contain_text("Ada Lovelace")
    expect(gallery).to_contain_text("5 faces")
    shot(page, "people")
    after = site.clusters()
    assert after[ada] == {"name": "Ada Lovelace", "people": [0, 0, 0, 3, 3]}
    assert sorted(c["people"] for c in after.values()) == [[0, 0, 0, 3, 3], [1, 1], [2, 2, 2, 2]]  # Bob's third: out
    no_problems(page)

    # the named person is found by Search
    page = site.page()
    page.goto(site.url + "#/search")
    page.get_by_label("Choose a photo to search").set_input_files(str(site.photos / "f.png"))
    results = page.get_by_role("list", name="Faces found")
    expect(results.locator("> li")).to_have_count(2)
    expect(results.locator("> li").nth(1)).to_contain_text("Face 2:Ada Lovelace")
    expect(page.locator(".photo-frame .box")).to_have_count(2)
    expect(page.locator(".photo-frame .box").nth(1)).to_contain_text("2 · Ada Lovelace")
    no_problems(page)


def test_search_boxes_every_face_and_enrols_an_unknown_one(site, grouped):
    page = site.page()
    page.goto(site.url)
    page.keyboard.press("g")
    page.keyboard.press("s")
    expect(page.get_by_role("heading", name="Search by photo")).to_be_visible()
    page.get_by_label("Choose a photo to search").set_input_files(str(site.photos / "d.png"))
    results = page.get_by_role("list", name="Faces found")
    expect(results.locator("> li")).to_have_count(2)
    expect(page.locator(".photo-frame .box")).to_have_count(2)
    expect(page.locator(".photo-frame img")).to_have_attribute("src", re.compile("^blob:"))
    second = results.locator("> li").nth(1)
    expect(second.locator(".who")).to_have_text("Unknown")

    first_photo = page.locator(".photo-frame img").get_attribute("src")
    second.get_by_label("Face 2 is").fill("Grace Hopper")
    second.get_by_role("button", name="Enrol").click()
    expect(page.get_by_role("status").filter(has_text="Enrolled face 2 as Grace Hopper")).to_be_visible()
    expect(second.locator(".who")).to_have_text("Grace Hopper")
    expect(page.locator(".photo-frame .box").nth(1)).to_contain_text("Grace Hopper")
    expect(second.locator("table.candidates")).to_contain_text("Grace Hopper")
    expect(page.locator(".photo-frame img")).not_to_have_attribute("src", first_photo)  # searched again
    load = "url => new Promise(done => { const i = new Image(); i.onload = () => done('alive'); i.onerror = () => done('revoked'); i.src = url; })"
    assert page.evaluate(load, page.locator(".photo-frame img").get_attribute("src")) == "alive"
    assert page.evaluate(load, first_photo) == "revoked"
    shot(page, "search")

    # a file that is not a photo: the API's message is shown
    page.get_by_label("Choose a photo to search").set_input_files(
        files=[{"name": "notes.png", "mimeType": "image/png", "buffer": b"not a png at all"}]
    )
    expect(page.get_by_role("alert")).to_contain_text("Search failed:")
    no_problems(page)


def test_photo_view_boxes_and_names_faces_and_links_to_people(site, grouped):
    photo_id = site.photo_id("b.png")
    page = site.page()
    page.goto(site.url + f"#/photos/{photo_id}")
    expect(page.get_by_role("heading", name="b.png")).to_be_visible()
    boxes = page.locator(".photo-frame .box")
    expect(boxes).to_have_count(2)
    expect(page.locator(".photo-frame img")).to_have_attribute("src", re.compile("^blob:"))
    clusters = site.clusters()
    first_cluster = next(cid for cid, c in clusters.items() if 0 in c["people"])
    label = clusters[first_cluster]["name"] or f"Unnamed #{first_cluster}"
    expect(boxes.nth(0)).to_contain_text(label)
    expect(page.get_by_role("list", name="Faces in this photo").locator("li")).to_have_count(2)
    width = boxes.nth(0).bounding_box()["width"]
    assert width > 100  # 84 px of 320, drawn at the photo's displayed size
    shot(page, "photo")
    boxes.nth(0).click()
    expect(page).to_have_url(re.compile(f"#/people/{first_cluster}$"))
    expect(page.locator("li.face-card")).not_to_have_count(0)
    no_problems(page)


def test_phone_layout_keyboard_and_help(site, grouped):
    page = site.page(viewport=PHONE)
    page.goto(site.url + "#/people")
    tiles = page.locator("a.tile")
    expect(tiles.first).to_be_visible()
    expect(tiles.first.locator("img")).to_have_attribute("src", re.compile("^blob:"))
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]  # no sideways scrolling
    shot(page, "people-phone")

    tiles.first.focus()
    page.keyboard.press("Space")
    expect(page).to_have_url(re.compile(r"#/people/\d+$"))
    page.keyboard.press("g")
    page.keyboard.press("j")
    expect(page.get_by_role("heading", name="Jobs", level=1)).to_be_visible()
    page.keyboard.press("?")
    help_dialog = page.get_by_role("dialog", name="Keyboard shortcuts")
    expect(help_dialog).to_be_visible()
    expect(help_dialog).to_contain_text("Search by photo")
    page.keyboard.press("Escape")
    expect(help_dialog).to_be_hidden()
    no_problems(page)

    dark = site.page(color_scheme="dark")
    dark.goto(site.url + "#/people")
    expect(dark.locator("a.tile").first.locator("img")).to_have_attribute("src", re.compile("^blob:"))
    background = dark.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == "rgb(18, 20, 23)"
    shot(dark, "people-dark")
    no_problems(dark)


def test_a_running_job_shows_progress_and_can_be_cancelled(site, grouped):
    draw_photo(site.photos / "later" / "i.png", [1], GATED_TAG)
    GATE.clear()  # the job waits on this photo
    page = site.page()
    try:
        page.goto(site.url + "#/jobs")
        page.get_by_label("Folder on the server").fill("later")  # relative: inside the photo roots
        page.get_by_role("button", name="Start indexing").click()
        job = page.locator("li.job").first
        expect(job.locator(".badge")).to_have_text("running")
        expect(job.locator(".job-message")).to_contain_text("indexing")
        assert job.locator("progress").get_attribute("value") is None  # indeterminate: no total yet
        job.get_by_role("button", name=re.compile("^Cancel")).click()
        expect(job.locator(".badge")).to_have_text("cancelling")
        expect(job.get_by_role("button", name=re.compile("^Cancel"))).to_be_hidden()
    finally:
        GATE.set()
    expect(job.locator(".badge")).to_have_text("cancelled")
    expect(job.locator(".job-message")).to_contain_text("cancelled after 1 of 1 files")
    no_problems(page)
