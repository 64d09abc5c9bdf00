"""The web UI's birth date and life stages, in a real browser: on a person's page the birth date is
saved (Save date) and cleared (Clear date) through PUT .../born, a date the API refuses shows the
API's own message and keeps the saved one; a cluster is linked as a life stage of a person chosen
from a list of the people (PUT .../person), then shows "Life stage of <name>" and the person's
birth date, and Unlink makes it its own person again. A link the API refuses (a photo shared with the person)
shows its message.

The site, photos and fake analyzer are test_web_ui's (skipped, with its reason, where Playwright
or Chromium is missing): person 3 is person 0 "in another look", in no photo of hers, and shares
photo trip/h.png with person 2.
"""

from __future__ import annotations

import json
import re
import urllib.error

import pytest
from test_review_ui import api
from test_web_ui import expect, grouped, no_problems, site  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def cluster_of_person(site, who: int) -> int:  # noqa: F811
    """The cluster holding drawn person ``who``'s faces (and only theirs)."""
    (cid,) = (c for c, entry in site.clusters().items() if set(entry["people"]) == {who})
    return cid


def cluster(site, cid: int) -> dict:  # noqa: F811
    return api(site, "GET", f"/v1/collection/clusters/{cid}")


def refusal(site, path: str, body: dict) -> tuple[int, str]:  # noqa: F811
    """The status and message of the API's refusal of ``PUT path`` (the call must be refused)."""
    with pytest.raises(urllib.error.HTTPError) as refused:
        api(site, "PUT", path, body)
    error = json.loads(refused.value.read())["error"]
    return refused.value.code, error["message"]


def test_birth_date_saved_refused_and_cleared_from_the_persons_page(site, grouped):  # noqa: F811
    ada = cluster_of_person(site, 0)
    api(site, "PATCH", f"/v1/collection/clusters/{ada}", {"name": "Ada"})
    page = site.page()
    page.goto(site.url + f"#/people/{ada}")
    expect(page.locator(".born-text")).to_have_text("Birth date not recorded")
    expect(page.get_by_role("button", name="Clear date")).to_be_disabled()

    page.get_by_label("Born").fill("2010-01-01")
    page.get_by_role("button", name="Save date").click()
    expect(page.locator(".born-text")).to_have_text("Born 2010-01-01")
    assert cluster(site, ada)["born"] == "2010-01-01"

    status, message = refusal(site, f"/v1/collection/clusters/{ada}/born", {"born": "3000-01-01"})
    assert status == 422 and message
    page.get_by_label("Born").fill("3000-01-01")
    page.get_by_role("button", name="Save date").click()
    alert = page.get_by_role("alert").filter(has_text="Could not save the birth date")
    expect(alert).to_contain_text(message)  # the API's own words
    expect(page.locator(".born-text")).to_have_text("Born 2010-01-01")
    assert cluster(site, ada)["born"] == "2010-01-01"  # the refused date lost nothing

    page.get_by_role("button", name="Clear date").click()
    expect(page.locator(".born-text")).to_have_text("Birth date not recorded")
    expect(alert).to_have_count(0)  # a later success clears the old message
    assert cluster(site, ada)["born"] is None

    page.reload()  # what the page shows after a reload is what the API stored
    expect(page.locator(".born-text")).to_have_text("Birth date not recorded")
    page.get_by_label("Born").fill("2012-03-04")
    page.get_by_role("button", name="Save date").click()
    expect(page.locator(".born-text")).to_have_text("Born 2012-03-04")
    page.reload()
    expect(page.get_by_label("Born")).to_have_value("2012-03-04")
    assert cluster(site, ada)["born"] == "2012-03-04"
    no_problems(page)


def test_a_life_stage_linked_refused_and_unlinked_from_its_page(site, grouped):  # noqa: F811
    ada, other, stage = (cluster_of_person(site, who) for who in (0, 2, 3))
    api(site, "PATCH", f"/v1/collection/clusters/{ada}", {"name": "Ada"})
    api(site, "PUT", f"/v1/collection/clusters/{ada}/born", {"born": "2012-03-04"})
    page = site.page()
    page.goto(site.url + f"#/people/{stage}")
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Unnamed person #{stage}")
    expect(page.get_by_role("button", name="Unlink")).to_have_count(0)

    status, message = refusal(site, f"/v1/collection/clusters/{stage}/person", {"person": other})
    assert status == 409 and message  # trip/h.png has both
    expect(page.get_by_label("Life stage of").locator(f'option[value="{ada}"]')).to_have_text(re.compile(r"^Ada \("))
    page.get_by_label("Life stage of").select_option(str(other))  # the people, named ones first
    page.get_by_role("button", name="Link").click()
    expect(page.get_by_role("alert").filter(has_text="Could not link")).to_contain_text(message)
    assert cluster(site, stage)["person"] is None

    page.get_by_label("Life stage of").select_option(str(ada))
    page.get_by_role("button", name="Link").click()
    expect(page.locator(".stage-of")).to_have_text("Life stage of Ada")
    expect(page.get_by_role("link", name="Ada", exact=True)).to_have_attribute("href", f"#/people/{ada}")
    expect(page.locator(".born-text")).to_have_text("Born 2012-03-04")  # the person's date
    expect(page.get_by_role("heading", level=1)).to_contain_text("Ada")
    linked = cluster(site, stage)
    assert (linked["person"], linked["name"], linked["born"]) == (ada, "Ada", "2012-03-04")

    page.get_by_role("button", name="Unlink").click()
    expect(page.get_by_label("Life stage of")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text(f"Unnamed person #{stage}")
    unlinked = cluster(site, stage)
    assert (unlinked["person"], unlinked["name"]) == (None, None)
    assert cluster(site, ada)["person"] is None and cluster(site, ada)["born"] == "2012-03-04"
    no_problems(page)
