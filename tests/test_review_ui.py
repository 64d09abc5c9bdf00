"""The web UI's Review page in a real browser: the question the API's queue asks first, with both
faces' crops; answers by key (y / n / s) and by button, stored as the collection's constraints;
the next question after each; "no more questions" once every one is answered or skipped; and the
API's refusal of a stale question shown, with the current question loaded in its place; and a
group question, its candidates ticked by digit and saved by Enter.

The site, photos and fake analyzer are test_web_ui's (skipped, with its reason, where Playwright
or Chromium is missing). Person 3 is person 0 "in another look", not grouped with her, so the
queue has a merge to ask about; which questions come, and in which order, is the API's to say:
the test reads them from it.
"""

from __future__ import annotations

import json
import re
import urllib.request

import pytest
from test_web_ui import expect, grouped, no_problems, shot, site  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

MAX_STEPS = 60  # answers the walk through the queue may take; the queue is far shorter


def api(site, method: str, path: str, body: dict | None = None):  # noqa: F811
    request = urllib.request.Request(
        site.url.rstrip("/") + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {site.token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request) as response:
        return json.loads(response.read() or b"null")


def queue(site) -> list[dict]:  # noqa: F811
    return api(site, "GET", "/v1/collection/review?limit=50")["questions"]


def key(question: dict) -> str:
    return f"{question['kind']}:{question['faces'][0]}:{question['faces'][1]}"


def constraints(site) -> tuple[int, int]:  # noqa: F811
    from faceatlas.collection import CollectionStore

    with CollectionStore.open(site.app.state.settings.collection_path) as store:
        must, cannot = store.constraints()
    return len(must), len(cannot)


def cluster_of(site, face_id: int) -> int | None:  # noqa: F811
    from faceatlas.collection import CollectionStore

    with CollectionStore.open(site.app.state.settings.collection_path) as store:
        return store.face(face_id).cluster


def shown_key(page) -> str | None:
    """The key of the question on the page once it has one, or None once it says there are no more."""
    question, done = page.locator("section.review-question"), page.locator(".review-done")
    expect(question.or_(done)).to_be_visible()
    return question.get_attribute("data-key") if question.count() else None


def answered(page, before: str) -> str | None:
    """Waits for the page to leave question ``before``; the key of the next one (None: no more)."""
    expect(page.locator(f'section.review-question[data-key="{before}"]')).to_have_count(0)
    return shown_key(page)


def test_a_stale_question_shows_the_apis_refusal_and_the_current_question(site, grouped):  # noqa: F811
    first = queue(site)[0]
    page = site.page()
    page.goto(site.url + "#/review")
    assert shown_key(page) == key(first)
    api(site, "POST", "/v1/collection/review/answer", {"kind": first["kind"], "faces": first["faces"], "reply": "no"})
    clusters = [cluster_of(site, f) for f in first["faces"]]
    page.get_by_role("button", name=re.compile("^Yes")).click()  # the page still shows it: stale now
    expect(page.get_by_role("alert")).to_contain_text("Not saved: the review queue no longer asks")
    assert [cluster_of(site, f) for f in first["faces"]] == clusters  # the refused yes merged nothing
    now = queue(site)
    assert answered(page, key(first)) == (key(now[0]) if now else None)
    no_problems(page)


def test_answering_by_key_and_button_until_no_question_is_left(site, grouped):  # noqa: F811
    first = queue(site)[0]
    page = site.page()
    page.goto(site.url + "#/review")
    expect(page.get_by_role("heading", name=re.compile("^Review"), level=1)).to_be_visible()
    expect(page.get_by_role("link", name="Review")).to_have_attribute("aria-current", "page")
    card = page.locator("section.review-question")
    expect(card.get_by_role("heading", level=2)).to_have_text(first["text"])
    assert shown_key(page) == key(first)
    crops = card.locator("img.thumb")
    expect(crops).to_have_count(2)
    for i in range(2):
        expect(crops.nth(i)).to_have_attribute("src", re.compile("^blob:"))  # the face-crop route, with the key
    assert page.evaluate("[...document.querySelectorAll('img.thumb')].every(i => i.naturalWidth > 0)")
    for name, hint in (("Yes", "y"), ("No", "n"), ("Skip", "s")):
        button = card.get_by_role("button", name=re.compile(f"^{name}"))
        expect(button).to_have_attribute("aria-keyshortcuts", hint)
        expect(button.locator("kbd")).to_have_text(hint)
    shot(page, "review")

    must, cannot = constraints(site)
    page.keyboard.press("n")
    current = answered(page, key(first))
    assert constraints(site)[1] > cannot  # the no: cannot-links
    assert key(first) not in {key(q) for q in queue(site)}

    if current is not None:  # a yes, by the button
        asked = next(q for q in queue(site) if key(q) == current)
        must, _ = constraints(site)
        card.get_by_role("button", name=re.compile("^Yes")).click()
        after = answered(page, current)
        if asked["kind"] == "merge":
            assert len({cluster_of(site, f) for f in asked["faces"]}) == 1
        else:
            assert constraints(site)[0] > must
        current = after

    skipped = []
    while current is not None:  # the rest skipped, by key: nothing stored, never shown again
        assert current not in skipped and len(skipped) < MAX_STEPS
        skipped.append(current)
        before = constraints(site)
        page.keyboard.press("s")
        current = answered(page, current)
        assert constraints(site) == before
    expect(page.locator(".review-done")).to_have_text(re.compile("No more questions"))
    if skipped:
        page.get_by_role("button", name=re.compile("skipped question")).click()  # they come back
        expect(page.locator(".review-done")).to_have_count(0)
        assert shown_key(page) in skipped
    no_problems(page)


def test_a_group_question_ticked_by_digit_and_saved_by_enter(site, grouped):  # noqa: F811
    from faceatlas.collection import CollectionStore

    with CollectionStore.open(site.app.state.settings.collection_path) as store:  # one face taken out of its
        biggest = max(store.clusters(), key=lambda c: c.n_faces)  # person: the grouping is unsure where it goes
        store.set_clusters([store.cluster_faces(biggest.id)[-1].id], [-1])
    asked = api(site, "GET", "/v1/collection/review/group")["question"]
    assert asked is not None
    page = site.page()
    page.goto(site.url + "#/review")
    page.get_by_role("link", name="Group questions").click()
    card = page.locator("section.review-group")
    expect(card).to_have_attribute("data-anchor", str(asked["anchor"]))
    expect(card.locator("img.thumb")).to_have_count(1 + len(asked["members"]))  # the anchor, then each candidate
    boxes = card.get_by_role("checkbox")
    expect(boxes).to_have_count(len(asked["members"]))
    ticked = [m["p_same"] >= 0.5 for m in asked["members"]]
    assert [boxes.nth(i).is_checked() for i in range(len(ticked))] == ticked
    page.keyboard.press("1")
    ticked[0] = not ticked[0]
    expect(boxes.nth(0)).to_be_checked(checked=ticked[0])
    candidates = asked["candidates"]  # a merge's other face, or a member's own
    _, cannot = constraints(site)
    handle = card.element_handle()
    page.keyboard.press("Enter")
    handle.wait_for_element_state("hidden")  # the next question (or none) in its place
    anchor = cluster_of(site, asked["anchor"])
    assert all(cluster_of(site, f) == anchor for f, t in zip(candidates, ticked, strict=True) if t)
    apart = [f for f, t in zip(candidates, ticked, strict=True) if not t]
    assert all(cluster_of(site, f) != anchor for f in apart)
    assert not apart or constraints(site)[1] > cannot  # the unticked ones: cannot-linked
    expect(card.or_(page.locator(".review-done"))).to_be_visible()
    no_problems(page)
