"""The web UI's private toggle, in a real browser: an admin marks a person private on their page;
a read key without the private permission no longer sees them on the People page, nor at their URL.

The site, photos and fake analyzer are test_web_ui's (skipped, with its reason, where Playwright
or Chromium is missing).
"""

from __future__ import annotations

import re

import pytest
from test_web_ui import DESKTOP, TIMEOUT_MS, expect, grouped, no_problems, site  # noqa: F401

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


def reader_page(site, token: str):  # noqa: F811
    context = site.browser.new_context(viewport=DESKTOP, reduced_motion="reduce")
    context.set_default_timeout(TIMEOUT_MS)
    page = context.new_page()
    page.problems = []
    page.on("pageerror", lambda error: page.problems.append(f"page error: {error}"))
    page.add_init_script(f"sessionStorage.setItem('faceatlas.apiKey', {token!r})")
    return page


def test_a_person_marked_private_in_the_ui_is_hidden_from_a_read_key(site, grouped):  # noqa: F811
    from faceatlas.collection import CollectionStore

    clusters = site.clusters()
    cid = next(c for c, entry in clusters.items() if set(entry["people"]) == {2})
    _, reader = site.app.state.keys.create("viewer", "read")
    _, trusted = site.app.state.keys.create("family", "read", private=True)

    page = site.page()
    page.goto(site.url + f"#/people/{cid}")
    private = page.get_by_label("Private")
    expect(private).not_to_be_checked()
    private.check()
    expect(page.get_by_role("status").filter(has_text="is private")).to_be_visible()
    with CollectionStore.open(site.app.state.settings.collection_path) as store:
        assert store.cluster(cid).private
    page.goto(site.url + "#/people")
    expect(page.locator(f'a.tile[data-cluster="{cid}"]')).to_contain_text("private")
    no_problems(page)

    hidden = reader_page(site, reader)
    hidden.goto(site.url + "#/people")
    expect(hidden.locator("a.tile")).to_have_count(len(clusters) - 1)
    expect(hidden.locator(f'a.tile[data-cluster="{cid}"]')).to_have_count(0)
    hidden.goto(site.url + f"#/people/{cid}")
    expect(hidden.get_by_role("alert")).to_contain_text(re.compile("no cluster", re.IGNORECASE))
    no_problems(hidden)

    family = reader_page(site, trusted)
    family.goto(site.url + "#/people")
    expect(family.locator(f'a.tile[data-cluster="{cid}"]')).to_be_visible()
    no_problems(family)

    page = site.page()
    page.goto(site.url + f"#/people/{cid}")
    page.get_by_label("Private").uncheck()
    expect(page.get_by_role("status").filter(has_text="no longer private")).to_be_visible()
    no_problems(page)
    with CollectionStore.open(site.app.state.settings.collection_path) as store:
        assert not store.cluster(cid).private
