// faceatlas web UI: hash routes (#/people, #/people/12, #/search, #/search/faces?face=7, #/photos/5,
// #/jobs, #/review) over the REST
// API through the generated client (api.js). Plain ES module, no build step.
//
// Safety: the DOM is built with createElement/textContent only (never innerHTML), and images
// are fetched with the API key in a header, shown through blob: URLs that are revoked when
// replaced or when the page changes. The key lives in sessionStorage (this tab only).

import * as api from "./api.js";

const KEY_STORAGE = "faceatlas.apiKey";
const THUMB_SIZE = 160;
const CLUSTER_PAGE = 200; // clusters asked for at once; "Show more" asks for the next page
const FACE_PAGE = 240; // faces of one cluster shown at once
const POLL_MS = 1000;

const main = document.getElementById("main");
const toasts = document.getElementById("toasts");
const nav = document.getElementById("mainnav");
const signOutButton = document.getElementById("sign-out");
const helpDialog = document.getElementById("help");

const session = { key: null, authOff: false, ready: false };

// --- DOM helpers ----------------------------------------------------------------------------------

/** An element: h("a", {href: "#/x", class: "y", onclick: fn}, "text", child, [more]). Text is text. */
function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "class") el.className = value;
    else if (key === "dataset") Object.assign(el.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") el.addEventListener(key.slice(2), value);
    else if (key === "value") el.value = value;
    else if (key === "checked") el.checked = Boolean(value);
    else el.setAttribute(key, value === true ? "" : String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

let uid = 0;
const newId = (prefix) => `${prefix}-${++uid}`;

const plural = (n, one, many = `${one}s`) => `${n} ${n === 1 ? one : many}`;
const fmtScore = (score) => (typeof score === "number" ? (Math.abs(score) < 0.005 ? 0 : score).toFixed(2) : "–");
const clusterLabel = (c) => c.name || "Unnamed";
const listOf = (response, key) => (Array.isArray(response) ? response : (response && response[key]) || []);

function errorText(error) {
  if (error instanceof api.ApiError) {
    if (error.status === 0) return error.message;
    return error.message || `${error.status} ${error.code}`;
  }
  return error && error.message ? error.message : String(error);
}

function isAbort(error) {
  return error && (error.name === "AbortError" || (error instanceof DOMException && error.code === 20));
}

/** A paragraph showing an API error's message (role=alert: read out when it appears). */
function errorBox(error, prefix = "") {
  return h("p", { class: "error", role: "alert" }, prefix ? `${prefix}: ${errorText(error)}` : errorText(error));
}

/** A short message in the corner (read out politely); at most three at once, newest last. */
function toast(content, kind = "info", ms = 4000) {
  const el = h("div", { class: `toast ${kind}` }, content);
  toasts.append(el);
  while (toasts.children.length > 3) toasts.firstElementChild.remove();
  setTimeout(() => el.remove(), ms);
}

function setBusy(button, busy, label) {
  if (busy) {
    button.dataset.label = button.textContent;
    button.textContent = label || "Working…";
    button.disabled = true;
  } else {
    if (button.dataset.label) button.textContent = button.dataset.label;
    button.disabled = false;
  }
}

// --- calling the API ----------------------------------------------------------------------------

/**
 * Call an endpoint by method and path, e.g. call("GET /v1/collection/clusters/{}", 12, {query}):
 * the generated client's function for it (api.routes), so the UI names endpoints as the API does
 * and a renamed route function on the server changes nothing here.
 */
function call(key, ...args) {
  const fn = api.routes[key];
  if (!fn) return Promise.reject(new api.ApiError(0, "not_available", `this client has no ${key}`));
  return fn(...args);
}

/** Runs at most `limit` jobs at once (thumbnail fetches: the page stays responsive). */
class Limiter {
  constructor(limit) {
    this.limit = limit;
    this.active = 0;
    this.waiting = [];
  }
  run(task) {
    return new Promise((resolve, reject) => {
      const start = () => {
        this.active += 1;
        Promise.resolve()
          .then(task)
          .then(resolve, reject)
          .finally(() => {
            this.active -= 1;
            const next = this.waiting.shift();
            if (next) next();
          });
      };
      if (this.active < this.limit) start();
      else this.waiting.push(start);
    });
  }
}
const imageLimiter = new Limiter(6);

// --- a page's lifetime: requests, object URLs and timers end with it --------------------------------

class View {
  constructor() {
    this.controller = new AbortController();
    this.urls = new Set();
    this.timers = new Set();
    this.cleanups = [];
    this.observer = null;
  }
  get signal() {
    return this.controller.signal;
  }
  get active() {
    return !this.controller.signal.aborted;
  }
  /** Show `blob` in `img`, revoking the URL it showed before. */
  setImage(img, blob) {
    this.release(img);
    const url = URL.createObjectURL(blob);
    this.urls.add(url);
    img.dataset.objectUrl = url;
    img.src = url;
  }
  /** Revoke the blob: URL an image shows (it is being replaced or dropped). */
  release(img) {
    const old = img.dataset.objectUrl;
    if (old) {
      URL.revokeObjectURL(old);
      this.urls.delete(old);
      delete img.dataset.objectUrl;
    }
  }
  later(fn, ms) {
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (this.active) fn();
    }, ms);
    this.timers.add(timer);
    return timer;
  }
  cancel(timer) {
    clearTimeout(timer);
    this.timers.delete(timer);
  }
  onClose(fn) {
    this.cleanups.push(fn);
  }
  /** Run `load` once `el` comes near the viewport (thumbnails load as you scroll). */
  lazy(el, load) {
    if (!("IntersectionObserver" in window)) {
      load();
      return;
    }
    if (!this.observer) {
      this.observer = new IntersectionObserver(
        (entries) => {
          for (const entry of entries) {
            if (!entry.isIntersecting) continue;
            this.observer.unobserve(entry.target);
            const fn = entry.target._load;
            delete entry.target._load;
            if (fn) fn();
          }
        },
        { rootMargin: "300px" },
      );
    }
    el._load = load;
    this.observer.observe(el);
  }
  close() {
    this.controller.abort();
    for (const timer of this.timers) clearTimeout(timer);
    this.timers.clear();
    for (const url of this.urls) URL.revokeObjectURL(url);
    this.urls.clear();
    if (this.observer) this.observer.disconnect();
    for (const fn of this.cleanups) fn();
  }
}

/** An <img> of a face crop, fetched with the key when it scrolls into view. */
function faceThumb(view, faceId, alt) {
  const img = h("img", { class: "thumb", alt, width: THUMB_SIZE, height: THUMB_SIZE, decoding: "async" });
  if (faceId === undefined || faceId === null) {
    img.classList.add("failed");
    return img;
  }
  view.lazy(img, async () => {
    try {
      const blob = await imageLimiter.run(() =>
        view.active
          ? call("GET /v1/collection/faces/{}/thumbnail", faceId, { query: { size: THUMB_SIZE }, signal: view.signal })
          : null,
      );
      if (blob && view.active) view.setImage(img, blob);
    } catch (error) {
      if (isAbort(error)) return;
      img.classList.add("failed");
      img.title = `Could not load this face: ${errorText(error)}`;
    }
  });
  return img;
}

// --- routing --------------------------------------------------------------------------------------

const ROUTES = [
  [/^#?\/?$/, () => (location.hash = "#/people")],
  [/^#\/people\/?$/, pagePeople, "people"],
  [/^#\/people\/(-?\d+)$/, pageCluster, "people"],
  [/^#\/search\/?$/, pageSearch, "search"],
  [/^#\/search\/faces\/?(?:\?face=(\d+))?$/, pageFaceSearch, "search"], // ?face=: start from a collection face
  [/^#\/photos\/(\d+)(?:\?t=(\d+(?:\.\d+)?))?$/, pagePhoto, "people"], // ?t=: a video, from that second
  [/^#\/jobs\/?$/, pageJobs, "jobs"],
  [/^#\/review\/?$/, pageReview, "review"],
  [/^#\/review\/group\/?$/, pageReviewGroup, "review"],
];

let current = null;

async function route() {
  if (current) current.close();
  current = null;
  if (!session.ready) return;
  if (!session.key && !session.authOff) {
    pageSignIn();
    return;
  }
  const hash = location.hash || "#/";
  for (const [pattern, page, section] of ROUTES) {
    const match = hash.match(pattern);
    if (!match) continue;
    if (!section) {
      page();
      return;
    }
    markNav(section);
    const view = (current = new View());
    try {
      await page(view, ...match.slice(1));
    } catch (error) {
      if (isAbort(error) || !view.active) return;
      if (error instanceof api.ApiError && error.status === 401) {
        signOut(`Your API key was not accepted (${errorText(error)}). Sign in again.`);
        return;
      }
      main.replaceChildren(
        h("h1", { tabindex: -1 }, "Something went wrong"),
        errorBox(error),
        h("p", {}, h("button", { type: "button", onclick: () => route() }, "Try again")),
      );
    }
    return;
  }
  markNav(null);
  setPage("Not found", h("h1", { tabindex: -1 }, "Page not found"), h("p", {}, h("a", { href: "#/people" }, "Go to People")));
}

function markNav(section) {
  for (const link of nav.querySelectorAll("a[data-nav]")) {
    if (link.dataset.nav === section) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

let firstPage = true;
/** Replace the page's content; focus its heading (screen readers announce the new page). */
function setPage(title, ...children) {
  document.title = `${title} · faceatlas`;
  main.replaceChildren(...children.flat());
  const heading = main.querySelector("h1");
  if (heading && !firstPage) heading.focus({ preventScroll: false });
  firstPage = false;
  window.scrollTo(0, 0);
}

// --- signing in -----------------------------------------------------------------------------------

function useKey(key) {
  session.key = key;
  api.configure({ apiKey: key });
  nav.hidden = !(key || session.authOff);
  signOutButton.hidden = !key;
}

function signOut(message, isError = true) {
  sessionStorage.removeItem(KEY_STORAGE);
  useKey(null);
  if (current) current.close();
  current = null;
  pageSignIn(message, isError);
}

function pageSignIn(message, isError = true) {
  markNav(null);
  const inputId = newId("key");
  const error = h("p", { class: isError ? "error" : "notice", role: isError ? "alert" : "status" }, message || "");
  const input = h("input", {
    id: inputId,
    type: "password",
    name: "api-key",
    autocomplete: "off",
    spellcheck: "false",
    required: true,
    "aria-describedby": `${inputId}-help`,
  });
  const button = h("button", { type: "submit", class: "primary" }, "Sign in");
  const form = h(
    "form",
    { class: "card signin", "aria-labelledby": `${inputId}-title` },
    h("h1", { id: `${inputId}-title`, tabindex: -1 }, "Sign in"),
    h(
      "p",
      { id: `${inputId}-help`, class: "muted" },
      "Paste an API key. Make one on the server with ",
      h("code", {}, "faceatlas keys create NAME --scope write"),
      ". It is kept in this browser tab only, and sent with each request.",
    ),
    h("div", { class: "field" }, h("label", { for: inputId }, "API key"), input),
    error,
    h("div", { class: "dialog-actions" }, button),
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const key = input.value.trim();
    if (!key) return;
    error.textContent = "";
    error.className = "error";
    error.setAttribute("role", "alert");
    setBusy(button, true, "Checking…");
    api.configure({ apiKey: key });
    try {
      await call("GET /v1/people");
    } catch (failure) {
      api.configure({ apiKey: null });
      setBusy(button, false);
      error.textContent =
        failure instanceof api.ApiError && failure.status === 401
          ? `That key was not accepted: ${errorText(failure)}`
          : errorText(failure);
      input.focus();
      input.select();
      return;
    }
    sessionStorage.setItem(KEY_STORAGE, key);
    useKey(key);
    if (!location.hash || location.hash === "#/") location.hash = "#/people";
    else route();
  });
  setPage("Sign in", form);
  input.focus();
}

// --- People: clusters found in the photos, and the people enrolled for search ------------------------

async function pagePeople(view) {
  const filterId = newId("filter");
  const filter = h("input", {
    id: filterId,
    type: "search",
    placeholder: "Name…",
    autocomplete: "off",
    "aria-keyshortcuts": "/",
  });
  const summary = h("span", { class: "count" });
  const clusterArea = h("div", {}, h("p", { class: "loading" }, "Loading people…"));
  const galleryArea = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  setPage(
    "People",
    h(
      "div",
      { class: "page-head" },
      h("h1", { tabindex: -1 }, "People ", summary),
      h("div", { class: "filter", role: "search" }, h("label", { for: filterId }, "Filter"), filter),
    ),
    h(
      "section",
      { "aria-labelledby": "clusters-title" },
      h("h2", { id: "clusters-title", class: "visually-hidden" }, "People found in your photos"),
      clusterArea,
    ),
    h(
      "section",
      { "aria-labelledby": "gallery-title" },
      h("h2", { id: "gallery-title" }, "Enrolled for search"),
      h(
        "p",
        { class: "muted" },
        "Search recognises these people. Naming a person above enrols them; you can also enrol photos here.",
      ),
      galleryArea,
    ),
  );

  const loadPage = (offset) =>
    call("GET /v1/collection/clusters", { query: { limit: CLUSTER_PAGE, offset }, signal: view.signal });
  const [clusters, people] = await Promise.allSettled([loadPage(0), call("GET /v1/people", { signal: view.signal })]);
  if (!view.active) return;
  for (const result of [clusters, people]) {
    if (result.status === "rejected" && result.reason instanceof api.ApiError && result.reason.status === 401) {
      throw result.reason;
    }
  }

  if (clusters.status === "fulfilled") {
    renderClusterGrid(view, clusterArea, clusters.value, filter, summary, loadPage);
  } else {
    clusterArea.replaceChildren(errorBox(clusters.reason, "Could not load the people found in your photos"));
  }

  if (people.status === "fulfilled") renderGallery(view, galleryArea, listOf(people.value, "people"));
  else galleryArea.replaceChildren(errorBox(people.reason, "Could not load the enrolled people"));
}

/** The clusters as tiles, a page at a time from the server ("Show more"); the filter looks at those loaded. */
function renderClusterGrid(view, area, first, filter, summary, loadPage) {
  const all = listOf(first, "clusters");
  let total = typeof first.total === "number" ? first.total : all.length;
  if (!all.length) {
    area.replaceChildren(
      h(
        "p",
        { class: "empty" },
        "No people yet. Index a folder of photos and group the faces on the ",
        h("a", { href: "#/jobs" }, "Jobs"),
        " page.",
      ),
    );
    filter.disabled = true;
    summary.textContent = "";
    return;
  }
  const grid = h("ul", { class: "grid", "aria-label": "People found in your photos" });
  const tiles = new Map(); // cluster id -> its tile, kept while filtering (no refetching of thumbnails)
  const tileOf = (c) => {
    if (!tiles.has(c.id)) tiles.set(c.id, clusterTile(view, c));
    return tiles.get(c.id);
  };
  const more = h("div", { class: "more" });
  const status = h("p", { class: "muted", role: "status" });
  const error = h("div");
  const draw = () => {
    const named = all.filter((c) => c.name).length;
    summary.textContent =
      all.length >= total
        ? `· ${plural(total, "person", "people")}, ${named} named`
        : `· ${plural(total, "person", "people")}, ${all.length} shown`;
    const needle = filter.value.trim().toLowerCase();
    const matching = needle ? all.filter((c) => clusterLabel(c).toLowerCase().includes(needle)) : all;
    grid.replaceChildren(...matching.map(tileOf));
    status.textContent = needle
      ? `${plural(matching.length, "match", "matches")} for “${filter.value.trim()}”` +
        (all.length < total ? ` among the ${all.length} people loaded` : "")
      : "";
    more.replaceChildren();
    if (all.length < total) {
      const button = h("button", { type: "button" }, `Show more (${total - all.length} more)`);
      button.addEventListener("click", async () => {
        setBusy(button, true, "Loading…");
        error.replaceChildren();
        try {
          const next = await loadPage(all.length);
          const seen = new Set(all.map((c) => c.id));
          all.push(...listOf(next, "clusters").filter((c) => !seen.has(c.id)));
          if (typeof next.total === "number") total = next.total;
          if (!listOf(next, "clusters").length) total = all.length;
          draw();
          grid.children[Math.min(grid.children.length - 1, all.length - CLUSTER_PAGE)]?.querySelector("a")?.focus();
        } catch (failure) {
          if (isAbort(failure)) return;
          setBusy(button, false);
          error.replaceChildren(errorBox(failure, "Could not load more"));
        }
      });
      more.append(button);
    }
  };
  filter.addEventListener("input", draw);
  draw();
  area.replaceChildren(status, grid, more, error);
}

function clusterTile(view, cluster) {
  const label = clusterLabel(cluster);
  const faces = cluster.faces ?? cluster.n_faces ?? 0;
  return h(
    "li",
    {},
    h(
      "a",
      { class: "tile", href: `#/people/${cluster.id}`, dataset: { cluster: cluster.id } },
      faceThumb(view, cluster.cover_face_id, ""),
      h(
        "span",
        { class: "tile-body" },
        h("span", { class: cluster.name ? "tile-name" : "tile-name unnamed" }, label),
        h("span", { class: "tile-count" }, plural(faces, "face"), cluster.private ? " · private" : ""),
      ),
    ),
  );
}

function renderGallery(view, area, people) {
  const list = people.length
    ? h(
        "ul",
        { class: "people-list", "aria-label": "Enrolled people" },
        people.map((person) =>
          h(
            "li",
            { dataset: { person: person.name } },
            h("span", {}, h("span", { class: "name" }, person.name), " ", h("span", { class: "muted" }, `· ${plural(person.faces, "face")}${person.private ? " · private" : ""}`)),
            h(
              "button",
              {
                type: "button",
                class: "small danger",
                "aria-label": `Remove ${person.name} from search`,
                onclick: async (event) => {
                  const ok = await confirmDialog(
                    `Remove ${person.name} from search?`,
                    `Their ${plural(person.faces, "enrolled face")} are deleted from the gallery. Photos and clusters are not touched.`,
                    "Remove",
                  );
                  if (!ok) return;
                  const button = event.target;
                  setBusy(button, true, "Removing…");
                  try {
                    await call("DELETE /v1/people/{}", person.name, { signal: view.signal });
                    toast(`Removed ${person.name} from search`);
                    route();
                  } catch (error) {
                    if (isAbort(error)) return;
                    setBusy(button, false);
                    toast(errorText(error), "error");
                  }
                },
              },
              "Remove",
            ),
          ),
        ),
      )
    : h("p", { class: "empty" }, "Nobody is enrolled yet.");
  area.replaceChildren(list, enrolForm(view));
}

function enrolForm(view) {
  const nameId = newId("enrol-name");
  const filesId = newId("enrol-files");
  const name = h("input", { id: nameId, type: "text", required: true, maxlength: 200, autocomplete: "off" });
  const files = h("input", { id: filesId, type: "file", accept: "image/*", multiple: true, required: true });
  const result = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "submit", class: "primary" }, "Enrol");
  const form = h(
    "form",
    { class: "card", "aria-labelledby": `${nameId}-title` },
    h("h3", { id: `${nameId}-title` }, "Enrol a person from photos"),
    h("p", { class: "muted" }, "One face per photo (up to 32 photos). A new name creates the person."),
    h(
      "div",
      { class: "row" },
      h("div", { class: "field" }, h("label", { for: nameId }, "Name"), name),
      h("div", { class: "field" }, h("label", { for: filesId }, "Photos"), files),
      button,
    ),
    result,
  );
  form.style.marginTop = "1rem";
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const person = name.value.trim();
    if (!person || !files.files.length) return;
    setBusy(button, true, "Enrolling…");
    result.replaceChildren();
    try {
      const report = await call("POST /v1/people/{}/faces", person, {
        body: { images: [...files.files] },
        signal: view.signal,
      });
      const skipped = report.skipped || [];
      toast(`Enrolled ${plural(report.added.length, "face")} for ${report.person}`);
      if (skipped.length) {
        result.replaceChildren(
          h("p", { class: "error", role: "alert" }, `Skipped ${plural(skipped.length, "photo")}:`),
          h("ul", {}, skipped.map((s) => h("li", {}, `${s.source}: ${s.reason}`))),
        );
      } else {
        route();
      }
    } catch (error) {
      if (isAbort(error)) return;
      result.replaceChildren(errorBox(error, "Could not enrol"));
    } finally {
      if (view.active) setBusy(button, false);
    }
  });
  return form;
}

// --- one cluster: name it, merge it, split it, correct it ------------------------------------------------

async function pageCluster(view, idText) {
  const id = Number(idText);
  setPage("Person", h("p", { class: "loading" }, "Loading…"));
  const cluster = await call("GET /v1/collection/clusters/{}", id, { signal: view.signal });
  if (!view.active) return;
  const faces = listOf(cluster.faces, "faces");
  const label = cluster.name || `Unnamed person #${cluster.id}`;
  const count = h("span", { class: "count" }, `· ${plural(faces.length, "face")}`);
  const heading = h("h1", { tabindex: -1 }, h("span", { class: "cluster-title" }, label), " ", count);

  // name
  const nameId = newId("cluster-name");
  const nameInput = h("input", {
    id: nameId,
    type: "text",
    value: cluster.name || "",
    required: true,
    maxlength: 200,
    autocomplete: "off",
    placeholder: "Who is this?",
  });
  const nameButton = h("button", { type: "submit", class: "primary" }, cluster.name ? "Rename" : "Save name");
  const nameError = h("div");
  const nameForm = h(
    "form",
    { class: "inline-form", "aria-label": "Name this person" },
    h("div", { class: "field" }, h("label", { for: nameId }, "Name"), nameInput),
    nameButton,
  );
  nameForm.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = nameInput.value.trim();
    if (!name) return;
    nameError.replaceChildren();
    setBusy(nameButton, true, "Saving…");
    try {
      await call("PATCH /v1/collection/clusters/{}", id, { body: { name }, signal: view.signal });
      heading.querySelector(".cluster-title").textContent = name;
      document.title = `${name} · faceatlas`;
      nameButton.dataset.label = "Rename";
      unnameButton.hidden = false;
      currentName = name;
      forgetButton.hidden = false;
      toast(`Named ${name}; Search now recognises ${name}`);
    } catch (error) {
      if (isAbort(error)) return;
      nameError.replaceChildren(errorBox(error, "Could not save the name"));
    } finally {
      if (view.active) setBusy(nameButton, false);
    }
  });

  const unnameButton = h("button", { type: "button", class: "quiet", hidden: !cluster.name }, "Remove name");
  // forgetting is by name (the person everywhere: their clusters, the gallery, sidecars): named people only
  let currentName = cluster.name;
  const forgetButton = h(
    "button",
    { type: "button", class: "danger", hidden: !cluster.name, "aria-haspopup": "dialog" },
    "Forget everywhere…",
  );
  forgetButton.addEventListener("click", () => forgetEverywhere(view, currentName, forgetButton));
  unnameButton.addEventListener("click", async () => {
    nameError.replaceChildren();
    setBusy(unnameButton, true, "Removing…");
    try {
      await call("PATCH /v1/collection/clusters/{}", id, { body: { name: null }, signal: view.signal });
      toast("Name removed (the person stays enrolled for search until removed there)");
      route();
    } catch (error) {
      if (isAbort(error)) return;
      setBusy(unnameButton, false);
      nameError.replaceChildren(errorBox(error, "Could not remove the name"));
    }
  });

  const mergeButton = h(
    "button",
    { type: "button", "aria-haspopup": "dialog", onclick: () => openMerge(view, cluster) },
    "Merge into…",
  );

  // private: shown only to keys allowed to see private people (the server hides them from others)
  const privateBox = h("input", { type: "checkbox", checked: Boolean(cluster.private) });
  const privateToggle = h(
    "label",
    { class: "private-toggle", title: "Shown only to keys allowed to see private people" },
    privateBox,
    " Private",
  );
  privateBox.addEventListener("change", async () => {
    const wanted = privateBox.checked;
    privateBox.disabled = true;
    try {
      await call("PUT /v1/collection/clusters/{}/private", id, { body: { private: wanted }, signal: view.signal });
      toast(wanted ? `${label} is private: hidden from keys without the private permission` : `${label} is no longer private`);
    } catch (error) {
      if (isAbort(error)) return;
      privateBox.checked = !wanted;
      toast(errorText(error), "error");
    } finally {
      if (view.active) privateBox.disabled = false;
    }
  });

  // birth date and life stage (a stage shows its person's name and date: PUT .../born, PUT .../person)
  const lifeError = h("div");
  const bornId = newId("cluster-born");
  const bornText = h("span", { class: "born-text" });
  const showBorn = (born) => {
    bornText.textContent = born ? `Born ${born}` : "Birth date not recorded";
    bornClear.disabled = !born;
  };
  const bornInput = h("input", { id: bornId, type: "date", value: cluster.born || "" });
  const bornSave = h("button", { type: "button" }, "Save date");
  const bornClear = h("button", { type: "button", class: "quiet" }, "Clear date");
  const saveBorn = async (button, born) => {
    lifeError.replaceChildren();
    setBusy(button, true, "Saving…");
    try {
      const changed = await call("PUT /v1/collection/clusters/{}/born", id, { body: { born }, signal: view.signal });
      const saved = changed && changed.born !== undefined ? changed.born : born;
      bornInput.value = saved || "";
      toast(saved ? `${label}: born ${saved}` : `${label}: birth date cleared`);
      if (view.active) setBusy(button, false);
      showBorn(saved);
    } catch (error) {
      if (isAbort(error)) return;
      setBusy(button, false);
      lifeError.replaceChildren(errorBox(error, "Could not save the birth date"));
    }
  };
  bornSave.addEventListener("click", () => {
    if (!bornInput.value) {
      lifeError.replaceChildren(errorBox(new Error("choose a date first (Clear date forgets it)"), "Could not save the birth date"));
      return;
    }
    saveBorn(bornSave, bornInput.value);
  });
  bornClear.addEventListener("click", () => saveBorn(bornClear, null));
  showBorn(cluster.born);
  const bornField = h(
    "div",
    { class: "inline-form", role: "group", "aria-label": "Birth date" },
    bornText,
    h("div", { class: "field" }, h("label", { for: bornId }, "Born"), bornInput),
    bornSave,
    bornClear,
  );
  // one life-stage request: busy while it runs, the page again when done, the error under the row if not
  const stageRequest = async (button, busyText, person, done, failure) => {
    lifeError.replaceChildren();
    setBusy(button, true, busyText);
    try {
      const changed = await call("PUT /v1/collection/clusters/{}/person", id, { body: { person }, signal: view.signal });
      toast(done(changed));
      route();
    } catch (error) {
      if (isAbort(error)) return;
      setBusy(button, false);
      lifeError.replaceChildren(errorBox(error, failure));
    }
  };
  let stageField;
  if (cluster.person !== null && cluster.person !== undefined) {
    const unlinkButton = h("button", { type: "button", class: "quiet" }, "Unlink");
    unlinkButton.addEventListener("click", () =>
      stageRequest(
        unlinkButton,
        "Unlinking…",
        null,
        () => `Unlinked: no longer a life stage of ${cluster.name || `person #${cluster.person}`}`,
        "Could not unlink",
      ),
    );
    stageField = h(
      "div",
      { class: "inline-form life-stage", role: "group", "aria-label": "Life stage" },
      h(
        "span",
        { class: "stage-of" },
        "Life stage of ",
        h("a", { href: `#/people/${cluster.person}` }, cluster.name || `person #${cluster.person}`),
      ),
      unlinkButton,
    );
  } else {
    const stageId = newId("cluster-stage");
    const stageSelect = h("select", { id: stageId }, h("option", { value: "" }, "Loading people…"));
    // the people it may be a stage of: every other cluster that is not a stage itself, named ones first
    call("GET /v1/collection/clusters", { query: { limit: 1000 }, signal: view.signal })
      .then((page) => {
        const people = listOf(page, "clusters").filter((c) => c.id !== cluster.id && (c.person === null || c.person === undefined));
        fillPeopleSelect(stageSelect, people);
      })
      .catch((error) => {
        if (isAbort(error) || !view.active) return;
        stageSelect.replaceChildren(h("option", { value: "" }, "People not loaded"));
        lifeError.replaceChildren(errorBox(error, "Could not load the people to link to"));
      });
    const linkButton = h("button", { type: "button" }, "Link");
    linkButton.addEventListener("click", () => {
      lifeError.replaceChildren();
      const person = Number(stageSelect.value);
      if (!stageSelect.value || !Number.isInteger(person)) {
        lifeError.replaceChildren(errorBox(new Error("choose the person this is a life stage of"), "Could not link"));
        return;
      }
      stageRequest(
        linkButton,
        "Linking…",
        person,
        (changed) => `Now a life stage of ${(changed && changed.name) || `person #${person}`}`,
        "Could not link",
      );
    });
    stageField = h(
      "div",
      { class: "inline-form life-stage", role: "group", "aria-label": "Life stage" },
      h("div", { class: "field" }, h("label", { for: stageId }, "Life stage of"), stageSelect),
      linkButton,
    );
  }

  // faces: select to split off; "not this person" one by one
  const selected = new Set();
  const selectionText = h("span", { role: "status" }, "No faces selected");
  const splitButton = h("button", { type: "button", disabled: true }, "Split off selected");
  const clearButton = h("button", { type: "button", class: "quiet", disabled: true }, "Clear selection");
  const grid = h("ul", { class: "grid faces", "aria-label": `Faces of ${label}` });
  let remaining = faces.length;
  const updateSelection = () => {
    selectionText.textContent = selected.size ? `${plural(selected.size, "face")} selected` : "No faces selected";
    splitButton.disabled = selected.size === 0 || selected.size >= remaining;
    splitButton.title = selected.size && selected.size >= remaining ? "Leave at least one face (to rename, use Name)" : "";
    clearButton.disabled = selected.size === 0;
  };
  const faceCard = (face, index) => {
    const checkbox = h("input", { type: "checkbox", value: face.id, "aria-label": `Select face ${index + 1}` });
    const card = h(
      "li",
      { class: "face-card", dataset: { face: face.id } },
      h("label", { class: "face-pick" }, checkbox, faceThumb(view, face.id, `Face ${index + 1} of ${label}`)),
      h(
        "div",
        { class: "face-actions" },
        typeof face.time === "number"
          ? h("a", { href: momentHref(face), title: "Play the video where this face appears" }, `Video ${clock(face.time)}`)
          : h("a", { href: `#/photos/${face.photo_id}` }, "Photo"),
        findElsewhere(face.id, true),
        h(
          "button",
          {
            type: "button",
            class: "small quiet",
            title: "This face is someone else: take it out of this person",
            onclick: async (event) => {
              const button = event.currentTarget;
              setBusy(button, true, "…");
              try {
                await call("POST /v1/collection/faces/{}/not-this-person", face.id, { signal: view.signal });
                selected.delete(face.id);
                card.remove();
                remaining -= 1;
                count.textContent = `· ${plural(remaining, "face")}`;
                updateSelection();
                toast(`Took face ${index + 1} out of ${label}`);
              } catch (error) {
                if (isAbort(error)) return;
                setBusy(button, false);
                toast(errorText(error), "error");
              }
            },
          },
          "Not this person",
        ),
      ),
    );
    checkbox.addEventListener("change", () => {
      if (checkbox.checked) selected.add(face.id);
      else selected.delete(face.id);
      card.classList.toggle("selected", checkbox.checked);
      updateSelection();
    });
    return card;
  };
  const moreFaces = h("div", { class: "more" });
  let shown = 0;
  const showMore = () => {
    grid.append(...faces.slice(shown, shown + FACE_PAGE).map((face, i) => faceCard(face, shown + i)));
    shown = Math.min(faces.length, shown + FACE_PAGE);
    moreFaces.replaceChildren();
    if (shown < faces.length) {
      moreFaces.append(h("button", { type: "button", onclick: showMore }, `Show more faces (${faces.length - shown} more)`));
    }
  };
  showMore();
  clearButton.addEventListener("click", () => {
    for (const box of grid.querySelectorAll("input[type=checkbox]")) {
      box.checked = false;
      box.closest(".face-card").classList.remove("selected");
    }
    selected.clear();
    updateSelection();
  });
  splitButton.addEventListener("click", async () => {
    const ids = [...selected];
    setBusy(splitButton, true, "Splitting…");
    try {
      const made = await call("POST /v1/collection/clusters/{}/split", id, { body: { faces: ids }, signal: view.signal });
      const newId = made && (made.id ?? made.cluster_id ?? (made.cluster && made.cluster.id));
      toast(
        newId !== undefined && newId !== null
          ? h("span", {}, `Split off ${plural(ids.length, "face")} as a new person. `, h("a", { href: `#/people/${newId}` }, "Open it"))
          : `Split off ${plural(ids.length, "face")} as a new person`,
        "info",
        8000,
      );
      route();
    } catch (error) {
      if (isAbort(error)) return;
      setBusy(splitButton, false);
      toast(errorText(error), "error");
    }
  });

  setPage(
    label,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/people" }, "People"), " › ", label),
    heading,
    h("div", { class: "toolbar" }, nameForm, unnameButton, mergeButton, privateToggle, forgetButton),
    nameError,
    h("div", { class: "toolbar life" }, bornField, stageField),
    lifeError,
    h(
      "section",
      { "aria-labelledby": "faces-title" },
      h("h2", { id: "faces-title" }, "Faces"),
      faces.length
        ? [
            h(
              "div",
              { class: "selection-bar" },
              selectionText,
              splitButton,
              clearButton,
              h("span", { class: "muted" }, "Select faces of someone else, then split them off as a new person."),
            ),
            grid,
            moreFaces,
          ]
        : h("p", { class: "empty" }, "No faces left in this person."),
    ),
  );
}

/** Forget a person everywhere faceatlas keeps them (POST .../forget), after asking; the report, then People. */
async function forgetEverywhere(view, name, button) {
  const ok = await confirmDialog(
    `Forget ${name} everywhere?`,
    `faceatlas deletes ${name}'s faces in your photos with their embeddings, the name, the corrections made on them, ` +
      `${name} in the people enrolled for search, and the face regions faceatlas wrote into sidecar files. ` +
      "Your photos are not touched. This cannot be undone.",
    "Forget everywhere",
    true,
  );
  if (!ok || !view.active) return;
  setBusy(button, true, "Forgetting…");
  let report;
  try {
    report = await call("POST /v1/people/{}/forget", name, { signal: view.signal });
  } catch (error) {
    if (isAbort(error)) return;
    setBusy(button, false);
    toast(errorText(error), "error", 8000);
    return;
  }
  await reportDialog(`Forgot ${name}`, forgetLines(name, report));
  location.hash = "#/people";
}

/** A forget report (ForgetResponse) in words, one line per fact: what was removed, erased and kept. */
function forgetLines(name, report) {
  const r = report || {};
  const out = [];
  if (typeof r.gallery_faces === "number") out.push(`Removed ${name} from search: ${plural(r.gallery_faces, "enrolled face")}`);
  const clusters = r.clusters || [];
  if (clusters.length) {
    const faces = typeof r.collection_faces === "number" ? `${plural(r.collection_faces, "face")} with their embeddings` : "its faces";
    out.push(`Removed ${faces} from your photos' index (${plural(clusters.length, "person group")}), ${plural(r.constraints || 0, "correction")}`);
  }
  for (const stored of r.matched || []) out.push(`Also matched “${stored}” (stored in another case or form)`);
  for (const sidecar of r.sidecars || []) out.push(`Took the face regions out of sidecar ${sidecar}`);
  for (const problem of r.sidecar_problems || []) out.push(`Could not change sidecar ${problem.sidecar}: ${problem.reason}`);
  for (const line of r.erased || []) out.push(`Erased: ${line}`);
  for (const line of r.kept || []) out.push(`Kept: ${line}`);
  return out.length ? out : [`${name} was forgotten.`];
}

/** A modal that only informs: a title and lines; resolves when closed (OK or Escape). */
function reportDialog(title, lines) {
  return new Promise((resolve) => {
    const titleId = newId("report");
    const dialog = h(
      "dialog",
      { "aria-labelledby": titleId, class: "report" },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: titleId }, title),
        h("ul", { class: "report-lines" }, lines.map((line) => h("li", {}, line))),
        h("div", { class: "dialog-actions" }, h("button", { type: "submit", class: "primary", autofocus: true }, "OK")),
      ),
    );
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

async function openMerge(view, cluster) {
  const selectId = newId("merge-into");
  const select = h("select", { id: selectId, required: true }, h("option", { value: "" }, "Loading…"));
  const error = h("div");
  const submit = h("button", { type: "submit", class: "primary", disabled: true }, "Merge");
  const label = cluster.name || `Unnamed person #${cluster.id}`;
  const dialog = h(
    "dialog",
    { "aria-labelledby": `${selectId}-title` },
    h(
      "form",
      { method: "dialog" },
      h("h2", { id: `${selectId}-title` }, `Merge ${label} into…`),
      h("p", { class: "muted" }, `Every face of ${label} moves to the person you choose.`),
      h("div", { class: "field" }, h("label", { for: selectId }, "Person to merge into"), select),
      error,
      h(
        "div",
        { class: "dialog-actions" },
        h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
        submit,
      ),
    ),
  );
  dialog.addEventListener("close", () => dialog.remove());
  view.onClose(() => dialog.isConnected && dialog.close());
  document.body.append(dialog);
  dialog.showModal();
  select.focus();
  try {
    const page = await call("GET /v1/collection/clusters", { query: { limit: 1000 }, signal: view.signal });
    const others = listOf(page, "clusters").filter((c) => c.id !== cluster.id);
    fillPeopleSelect(select, others);
    submit.disabled = others.length === 0;
    if (typeof page.total === "number" && page.total > listOf(page, "clusters").length) {
      select.after(h("span", { class: "muted" }, `The ${listOf(page, "clusters").length} largest of ${page.total} people.`));
    }
  } catch (failure) {
    if (isAbort(failure)) return;
    error.replaceChildren(errorBox(failure));
  }
  dialog.querySelector("form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const into = Number(select.value);
    if (!select.value) {
      select.focus();
      return;
    }
    const target = select.selectedOptions[0].textContent;
    setBusy(submit, true, "Merging…");
    try {
      await call("POST /v1/collection/clusters/{}/merge", cluster.id, { body: { into }, signal: view.signal });
      dialog.close();
      toast(`Merged ${label} into ${target.replace(/ \(\d+ faces?\)$/, "")}`);
      location.hash = `#/people/${into}`;
    } catch (failure) {
      if (isAbort(failure)) return;
      setBusy(submit, false);
      error.replaceChildren(errorBox(failure, "Could not merge"));
    }
  });
}

/** A modal yes/no question; resolves true for yes. Escape or Cancel: false. `danger`: yes destroys something. */
function confirmDialog(title, text, yes, danger = false) {
  return new Promise((resolve) => {
    const titleId = newId("confirm");
    const dialog = h(
      "dialog",
      { "aria-labelledby": titleId },
      h(
        "form",
        { method: "dialog" },
        h("h2", { id: titleId }, title),
        h("p", {}, text),
        h(
          "div",
          { class: "dialog-actions" },
          h("button", { type: "submit", value: "no", autofocus: true }, "Cancel"),
          h("button", { type: "submit", value: "yes", class: danger ? "primary danger" : "primary" }, yes),
        ),
      ),
    );
    dialog.addEventListener("close", () => {
      resolve(dialog.returnValue === "yes");
      dialog.remove();
    });
    document.body.append(dialog);
    dialog.showModal();
  });
}

// --- Search by photo ------------------------------------------------------------------------------

// An image comes from the file input, a drop on the zone, or a paste anywhere on the page
// (until the view closes): each hands the file to onFile.
function acceptImages(view, zone, input, onFile) {
  input.addEventListener("change", () => onFile(input.files[0]));
  zone.addEventListener("dragover", (event) => {
    event.preventDefault();
    zone.classList.add("dragging");
  });
  zone.addEventListener("dragleave", () => zone.classList.remove("dragging"));
  zone.addEventListener("drop", (event) => {
    event.preventDefault();
    zone.classList.remove("dragging");
    onFile(event.dataTransfer.files[0]);
  });
  const onPaste = (event) => {
    const file = [...(event.clipboardData?.files || [])].find((f) => f.type.startsWith("image/"));
    if (file) {
      event.preventDefault();
      onFile(file);
    }
  };
  document.addEventListener("paste", onPaste);
  view.onClose(() => document.removeEventListener("paste", onPaste));
}

async function pageSearch(view) {
  const inputId = newId("search-file");
  const input = h("input", { id: inputId, type: "file", accept: "image/*", "aria-keyshortcuts": "/" });
  const zone = h(
    "div",
    { class: "dropzone" },
    h("span", { class: "big", "aria-hidden": "true" }, "Drop a photo here"),
    h("label", { for: inputId }, "Choose a photo to search"),
    input,
    h("span", { class: "muted hint" }, "or paste one. It is sent to the server, compared, and not stored."),
  );
  const results = h("div", { "aria-live": "polite" });
  setPage(
    "Search",
    h("h1", { tabindex: -1 }, "Search by photo"),
    searchModes("people"),
    h("p", { class: "muted" }, "Every face in the photo is compared with the people enrolled for search."),
    zone,
    results,
  );

  let lastFile = null;
  const search = async (file) => {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) {
      results.replaceChildren(errorBox(new Error(`${file.name} is not an image`)));
      return;
    }
    lastFile = file;
    zone.classList.add("compact");
    for (const old of results.querySelectorAll("img")) view.release(old); // the previous photo
    results.replaceChildren(h("p", { class: "loading" }, `Searching ${file.name || "the photo"}…`));
    try {
      const [found, people] = await Promise.all([
        call("POST /v1/identify", { query: { k: 5 }, body: { image: file }, signal: view.signal }),
        call("GET /v1/people", { signal: view.signal }).catch(() => ({ people: [] })),
      ]);
      if (!view.active || lastFile !== file) return;
      renderSearch(view, results, file, listOf(found, "results"), listOf(people, "people"), () => search(file));
    } catch (error) {
      if (isAbort(error)) return;
      if (error instanceof api.ApiError && error.status === 401) throw error;
      results.replaceChildren(errorBox(error, "Search failed"));
    }
  };

  acceptImages(view, zone, input, search);
}

function renderSearch(view, area, file, results, people, again) {
  const img = h("img", { alt: `The photo searched: ${file.name || "pasted image"}` });
  const frame = h("div", { class: "photo-frame" }, img);
  view.setImage(img, file);
  const placeBoxes = () => {
    const w = img.naturalWidth;
    const hgt = img.naturalHeight;
    fitFrame(frame, w, hgt);
    frame.querySelectorAll(".box").forEach((b) => b.remove());
    results.forEach((result, i) => {
      if (!result.face) return;
      const known = Boolean(result.person);
      const text = known ? `${i + 1} · ${result.person} ${fmtScore(result.score)}` : `${i + 1} · Unknown`;
      frame.append(boxEl("div", result.face.box, w, hgt, text, known ? "" : "unknown"));
    });
  };
  if (img.complete && img.naturalWidth) placeBoxes();
  else img.addEventListener("load", placeBoxes, { once: true });

  const names = h("datalist", { id: newId("people") }, people.map((p) => h("option", { value: p.name })));
  const list = results.length
    ? h(
        "ol",
        { class: "face-results", "aria-label": "Faces found" },
        results.map((result, i) => faceResult(view, result, i, file, names.id, again)),
      )
    : h("p", { class: "empty" }, "No face found in this photo.");
  const summary = results.length
    ? `${plural(results.length, "face")}: ${results.filter((r) => r.person).length} recognised`
    : "No face found";
  area.replaceChildren(
    h(
      "div",
      { class: "photo-layout" },
      h("figure", { class: "photo" }, frame, h("figcaption", {}, `${file.name || "Pasted image"} · ${summary}`)),
      h("div", {}, h("h2", { class: "visually-hidden" }, "Faces found"), list, names),
    ),
  );
}

function faceResult(view, result, i, file, datalistId, again) {
  const known = Boolean(result.person);
  const candidates = result.candidates || [];
  const inputId = newId("enrol-face");
  const nameInput = h("input", {
    id: inputId,
    type: "text",
    list: datalistId,
    required: true,
    maxlength: 200,
    autocomplete: "off",
    value: result.person || "",
  });
  const button = h("button", { type: "submit" }, "Enrol");
  const feedback = h("div");
  const form = h(
    "form",
    { class: "inline-form", "aria-label": `Enrol face ${i + 1}` },
    h("div", { class: "field" }, h("label", { for: inputId }, `Face ${i + 1} is`), nameInput),
    button,
  );
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const name = nameInput.value.trim();
    if (!name) return;
    setBusy(button, true, "Enrolling…");
    feedback.replaceChildren();
    try {
      const report = await call("POST /v1/people/{}/faces", name, {
        query: { face: i },
        body: { images: [file] },
        signal: view.signal,
      });
      if (report.added && report.added.length) {
        toast(`Enrolled face ${i + 1} as ${report.person}`);
        again();
      } else {
        const why = (report.skipped || []).map((s) => s.reason).join("; ") || "no face was added";
        feedback.replaceChildren(errorBox(new Error(`Not enrolled: ${why}`)));
        setBusy(button, false);
      }
    } catch (error) {
      if (isAbort(error)) return;
      feedback.replaceChildren(errorBox(error, "Could not enrol"));
      setBusy(button, false);
    }
  });
  return h(
    "li",
    { class: "card", dataset: { face: i } },
    h(
      "h3",
      {},
      h("span", {}, `Face ${i + 1}:`),
      h("span", { class: known ? "who" : "who unknown" }, known ? result.person : "Unknown"),
      known ? h("span", { class: "score" }, `score ${fmtScore(result.score)}`) : null,
    ),
    candidates.length
      ? h(
          "table",
          { class: "candidates" },
          h("caption", { class: "visually-hidden" }, `Closest enrolled people for face ${i + 1}`),
          h(
            "thead",
            {},
            h("tr", {}, h("th", { scope: "col" }, "Candidate"), h("th", { scope: "col", class: "num" }, "Score")),
          ),
          h(
            "tbody",
            {},
            candidates.map((c) =>
              h(
                "tr",
                {},
                h("td", {}, c.person),
                h(
                  "td",
                  { class: "num" },
                  fmtScore(c.score),
                  barEl(c.score),
                ),
              ),
            ),
          ),
        )
      : h("p", { class: "muted" }, "Nobody is enrolled to compare with."),
    known
      ? null
      : h("p", { class: "muted" }, `No one scored above the threshold (${fmtScore(result.threshold)}).`),
    form,
    feedback,
  );
}

function barEl(fraction) {
  const bar = h("span", { class: "bar", "aria-hidden": "true" });
  bar.style.width = `${Math.round(Math.min(1, Math.max(0, fraction)) * 3.5 * 10) / 10}rem`;
  return bar;
}

// --- Search every face in the photos (named or not), by a photo or from a face --------------------------

/** The two kinds of search, as links: who is this (enrolled people), or where else is this face. */
function searchModes(active) {
  return h(
    "nav",
    { class: "modes", "aria-label": "Kinds of search" },
    h("a", { href: "#/search", "aria-current": active === "people" ? "page" : null }, "Who is this? (people enrolled for search)"),
    h("a", { href: "#/search/faces", "aria-current": active === "faces" ? "page" : null }, "Every face in your photos"),
  );
}

/** The link that searches every face like this collection face (`short`: where space is tight, a face card). */
const findElsewhere = (faceId, short = false) =>
  h(
    "a",
    { class: "find-elsewhere", href: `#/search/faces?face=${faceId}`, title: "Find this face elsewhere in your photos" },
    short ? "Find elsewhere" : "Find this face elsewhere",
  );

const FACE_HITS = 48; // faces listed by a face search
const FPIRS = [0.1, 0.01, 0.001];
/** A rate as a percentage in words: 0.01 -> "1%", 0.001 -> "0.1%". */
const fmtRate = (rate) => `${Number((rate * 100).toPrecision(3))}%`;
/** The face search's filters, kept while the session moves between searches (from a hit to its face, say). */
const faceFilters = { taken_from: "", taken_to: "", folder: "", person: "", unnamed: false, fpir: 0.01 };

async function pageFaceSearch(view, faceText) {
  const probeFace = faceText === undefined ? null : Number(faceText);
  const inputId = newId("faces-file");
  const input = h("input", { id: inputId, type: "file", accept: "image/*", "aria-keyshortcuts": "/" });
  const zone = h(
    "div",
    { class: probeFace === null ? "dropzone" : "dropzone compact" },
    h("span", { class: "big", "aria-hidden": "true" }, "Drop a photo of the face here"),
    h("label", { for: inputId }, "Choose a photo of the face"),
    input,
    h("span", { class: "muted hint" }, "or paste one. Its largest face is looked for; the photo is not stored."),
  );
  const probeArea = h("div", { class: "probe" });

  const field = (label, control) => h("div", { class: "field" }, h("label", { for: control.id }, label), control);
  const from = h("input", { id: newId("from"), type: "date", value: faceFilters.taken_from });
  const to = h("input", { id: newId("to"), type: "date", value: faceFilters.taken_to });
  const folder = h("input", {
    id: newId("folder"),
    type: "text",
    value: faceFilters.folder,
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "2019/summer",
  });
  const names = h("datalist", { id: newId("names") });
  const person = h("input", { id: newId("person"), type: "text", list: names.id, value: faceFilters.person, autocomplete: "off", placeholder: "Anyone" });
  const unnamedId = newId("unnamed");
  const unnamed = h("input", { id: unnamedId, type: "checkbox", checked: faceFilters.unnamed });
  const fpir = h(
    "select",
    { id: newId("fpir") },
    FPIRS.map((rate) => h("option", { value: rate }, `${fmtRate(rate)} false matches`)),
  );
  fpir.value = String(faceFilters.fpir);
  const searchButton = h("button", { type: "submit", class: "primary" }, "Search");
  const filters = h(
    "form",
    { class: "card filters", "aria-label": "Filters" },
    h(
      "div",
      { class: "row" },
      field("Taken from", from),
      field("Taken to", to),
      field("Folder", folder),
      field("Person", person),
      names,
      h("label", { class: "check", for: unnamedId }, unnamed, "Unnamed faces only"),
      field("Strictness (FPIR)", fpir),
      searchButton,
    ),
  );
  const results = h("div", { "aria-live": "polite" });
  setPage(
    "Search every face",
    h("h1", { tabindex: -1 }, "Search every face"),
    searchModes("faces"),
    h(
      "p",
      { class: "muted" },
      "Finds the faces in your photos that look like this one, named or not. A face counts as a match only above a threshold calibrated for the false-match rate you choose.",
    ),
    zone,
    probeArea,
    filters,
    results,
  );

  call("GET /v1/collection/clusters", { query: { limit: 1000 }, signal: view.signal })
    .then((page) => {
      const named = [...new Set(listOf(page, "clusters").map((c) => c.name).filter(Boolean))].sort();
      names.replaceChildren(...named.map((name) => h("option", { value: name })));
    })
    .catch(() => {}); // the names only help typing

  let probe = probeFace === null ? null : { faceId: probeFace };
  let asked = 0; // the latest search: an older answer arriving late is dropped
  const search = async () => {
    if (!probe) {
      results.replaceChildren(h("p", { class: "notice", role: "status" }, "Choose a photo of the face first."));
      input.focus();
      return;
    }
    const wanted = {
      taken_from: from.value,
      taken_to: to.value,
      folder: folder.value.trim(),
      person: person.value.trim(),
      unnamed: unnamed.checked,
      fpir: Number(fpir.value),
    };
    const body = { k: FACE_HITS, fpir: wanted.fpir };
    if (probe.file) body.image = probe.file;
    else body.face_id = probe.faceId;
    for (const key of ["taken_from", "taken_to", "folder", "person"]) if (wanted[key]) body[key] = wanted[key];
    if (wanted.unnamed) body.unnamed = true;
    const mine = ++asked;
    for (const old of results.querySelectorAll("img")) view.release(old);
    results.replaceChildren(h("p", { class: "loading" }, "Searching every face…"));
    setBusy(searchButton, true, "Searching…");
    try {
      const found = await call("POST /v1/search/faces", { body, signal: view.signal });
      if (!view.active || mine !== asked) return;
      Object.assign(faceFilters, wanted); // kept for the next search (a refused filter is not)
      renderFaceHits(view, results, found);
    } catch (error) {
      if (isAbort(error) || mine !== asked) return;
      if (error instanceof api.ApiError && error.status === 401) throw error;
      results.replaceChildren(errorBox(error, "Search failed"));
    } finally {
      if (view.active && mine === asked) setBusy(searchButton, false);
    }
  };

  const showProbe = () => {
    if (!probe) return probeArea.replaceChildren();
    if (probe.file) {
      const img = h("img", { class: "thumb", alt: `The photo searched: ${probe.file.name || "pasted image"}` });
      view.setImage(img, probe.file);
      probeArea.replaceChildren(img, h("span", {}, `Looking for the largest face of ${probe.file.name || "the pasted image"}`));
    } else {
      probeArea.replaceChildren(
        faceThumb(view, probe.faceId, `Face ${probe.faceId}, searched for`),
        h("span", {}, `Looking for face #${probe.faceId} elsewhere in your photos`),
      );
    }
  };
  const useFile = (file) => {
    if (!file) return;
    if (file.type && !file.type.startsWith("image/")) {
      results.replaceChildren(errorBox(new Error(`${file.name} is not an image`)));
      return;
    }
    for (const old of probeArea.querySelectorAll("img")) view.release(old);
    probe = { file };
    zone.classList.add("compact");
    showProbe();
    search();
  };
  acceptImages(view, zone, input, useFile);
  filters.addEventListener("submit", (event) => {
    event.preventDefault();
    search();
  });
  showProbe();
  if (probe) await search();
}

/** A face search's answer: the matches, or "no match" and the nearest faces, greyed, below the threshold. */
function renderFaceHits(view, area, found) {
  const hits = listOf(found, "hits");
  const rate = fmtRate(found.fpir);
  const threshold = typeof found.threshold === "number" ? found.threshold.toFixed(2) : "–";
  const searched = `${found.searched} of ${plural(found.total, "face")} searched`;
  const matches = hits.filter((hit) => hit.match).length;
  const summary = !hits.length
    ? h("p", { class: "empty" }, `No face passed the filters (${searched}).`)
    : found.matched
      ? h(
          "p",
          { class: "hits-summary" },
          h("strong", {}, `${plural(matches, "match", "matches")} (at FPIR ${rate})`),
          h("span", { class: "muted" }, ` · similarity ${threshold} or more · ${searched}`),
        )
      : h(
          "div",
          { class: "hits-summary" },
          h("p", { class: "no-match" }, h("strong", {}, `No match (at FPIR ${rate})`)),
          h("p", { class: "muted" }, `Nothing reaches similarity ${threshold}. The nearest faces, all below the threshold (${searched}):`),
        );
  const grid = h(
    "ul",
    { class: "grid faces hits", "aria-label": "Similar faces" },
    hits.map((hit) => {
      const who = hit.person || "Unnamed";
      const photoHref = typeof hit.time === "number" ? momentHref(hit) : `#/photos/${hit.photo_id}`;
      return h(
        "li",
        { class: hit.match ? "face-card hit" : "face-card hit below", dataset: { face: hit.face_id } },
        h(
          "a",
          { class: "hit-photo", href: photoHref, title: `Open ${hit.path}` },
          faceThumb(view, hit.face_id, `${who} in ${hit.path}`),
          h(
            "span",
            { class: "tile-body" },
            h("span", { class: hit.person ? "tile-name" : "tile-name unnamed" }, who),
            h("span", { class: "score" }, `similarity ${fmtScore(hit.similarity)}`),
            hit.match ? null : h("span", { class: "below-note" }, "below the threshold"),
            h("span", { class: "tile-count" }, hit.path.split("/").pop()),
          ),
        ),
        h("div", { class: "face-actions" }, findElsewhere(hit.face_id, true)),
      );
    }),
  );
  const notes = listOf(found, "notes");
  area.replaceChildren(
    summary,
    hits.length ? grid : null,
    notes.length ? h("ul", { class: "notes muted" }, notes.map((note) => h("li", {}, note))) : null,
  );
}

/** Size a photo's frame to fill the column, at most 72% of the window's height, keeping its shape. */
function fitFrame(frame, width, height) {
  if (!width || !height) return;
  frame.style.width = `min(100%, ${((72 * width) / height).toFixed(3)}vh)`;
}

/** A face box over a photo (position in % of the image, so it follows the image's size). */
function boxEl(tag, box, width, height, text, kind, attrs = {}) {
  const [x1, y1, x2, y2] = box;
  const el = h(tag, { class: `box ${kind}`.trim(), ...attrs }, h("span", { class: "box-label" }, text));
  el.style.left = `${(100 * x1) / width}%`;
  el.style.top = `${(100 * y1) / height}%`;
  el.style.width = `${(100 * (x2 - x1)) / width}%`;
  el.style.height = `${(100 * (y2 - y1)) / height}%`;
  if (y1 / height < 0.08) el.classList.add("label-below");
  return el;
}

// --- a photo, its faces boxed and named ----------------------------------------------------------------

/** A select's options: the people (clusters) given, named ones first, then the biggest, each with its face count. */
function fillPeopleSelect(select, people) {
  const sorted = [...people].sort((a, b) => Boolean(b.name) - Boolean(a.name) || (b.faces ?? 0) - (a.faces ?? 0));
  select.replaceChildren(
    h("option", { value: "" }, sorted.length ? "Choose a person" : "No other person"),
    ...sorted.map((c) => h("option", { value: c.id }, `${c.name || `Unnamed #${c.id}`} (${plural(c.faces ?? 0, "face")})`)),
  );
}

/** What a face of a photo or video is called: its cluster's name, or how far grouping got. */
const nameOf = (face) =>
  face.cluster_name ||
  (face.cluster_id === null || face.cluster_id === undefined
    ? "Not grouped yet"
    : face.cluster_id < 0
      ? "Unassigned"
      : `Unnamed #${face.cluster_id}`);
const inCluster = (face) => face.cluster_id !== null && face.cluster_id !== undefined && face.cluster_id >= 0;

/** What a face's box says of where it came from (a detection says nothing). */
const ORIGINS = { manual: "drawn by hand", region: "from the photo's metadata" };

async function pagePhoto(view, idText, atText) {
  const id = Number(idText);
  setPage("Photo", h("p", { class: "loading" }, "Loading…"));
  const photo = await call("GET /v1/collection/photos/{}", id, { signal: view.signal });
  if (!view.active) return;
  if (photo.kind === "video") {
    await pageVideo(view, photo, atText === undefined ? null : Number(atText));
    return;
  }
  const faces = listOf(photo.faces, "faces");
  const name = photo.path || `Photo ${photo.id ?? id}`;
  const img = h("img", { alt: `Photo ${name}` });
  const frame = h("div", { class: "photo-frame" }, img);
  const status = h("div");
  const size = photo.width && photo.height ? ` · ${photo.width} × ${photo.height}` : "";
  const caption = h("figcaption", {}, `${name}${size} · ${plural(faces.length, "face")}`);
  const width = () => photo.width || img.naturalWidth;
  const height = () => photo.height || img.naturalHeight;
  let shown = faces.length;

  const items = new Map(); // face id -> its box, its "Not a face" button and its list item
  const removeFace = async (face, i, button) => {
    const text = nameOf(face);
    const ok = await confirmDialog(
      `Face ${i + 1} is not a face?`,
      `The box “${text}” is removed from this photo and from its person. Indexing the photo again does not bring it back. The photo itself is not touched.`,
      "Not a face",
      true,
    );
    if (!ok || !view.active) return;
    setBusy(button, true, "…");
    try {
      await call("DELETE /v1/collection/faces/{}", face.id, { signal: view.signal });
      for (const el of items.get(face.id) || []) el.remove();
      shown -= 1;
      caption.textContent = `${name}${size} · ${plural(shown, "face")}`;
      toast(`Removed face ${i + 1} (not a face)`);
    } catch (error) {
      if (isAbort(error)) return;
      setBusy(button, false);
      toast(errorText(error), "error");
    }
  };

  const placeBoxes = () => {
    const w = width();
    const hgt = height();
    fitFrame(frame, img.naturalWidth, img.naturalHeight);
    faces.forEach((face, i) => {
      const text = nameOf(face);
      const linked = inCluster(face);
      const origin = ORIGINS[face.origin];
      const described = origin ? `${text} (${origin})` : text;
      const attrs = { dataset: { face: face.id }, title: origin ? described : null };
      if (linked) Object.assign(attrs, { href: `#/people/${face.cluster_id}`, "aria-label": `Face ${i + 1}: ${described}` });
      const kind = [linked ? "" : "unassigned", origin ? face.origin : ""].join(" ").trim();
      const box = boxEl(linked ? "a" : "div", face.box, w, hgt, text, kind, attrs);
      const remove = h(
        "button",
        { type: "button", class: "box-remove", title: "Not a face", "aria-label": `Not a face: face ${i + 1}, ${text}` },
        "×",
      );
      remove.style.left = `${(100 * face.box[2]) / w}%`;
      remove.style.top = `${(100 * face.box[1]) / hgt}%`;
      remove.addEventListener("click", () => removeFace(face, i, remove));
      frame.append(box, remove);
      items.get(face.id)?.push(box, remove);
    });
  };
  img.addEventListener("load", placeBoxes, { once: true });

  const list = faces.length
    ? h(
        "ul",
        { class: "face-links", "aria-label": "Faces in this photo" },
        faces.map((face, i) => {
          const origin = ORIGINS[face.origin];
          const content = [
            faceThumb(view, face.id, ""),
            h("span", {}, `${i + 1}. ${nameOf(face)}`),
            origin ? h("span", { class: "origin" }, origin) : null,
          ];
          const li = h(
            "li",
            { dataset: { face: face.id } },
            inCluster(face) ? h("a", { href: `#/people/${face.cluster_id}` }, content) : h("div", {}, content),
            findElsewhere(face.id),
          );
          items.set(face.id, [li]);
          return li;
        }),
      )
    : h("p", { class: "empty" }, "No face was found in this photo.");

  const drawButton = h("button", { type: "button", "aria-pressed": "false", disabled: true }, "Draw a face");
  const drawHint = h("p", { class: "muted draw-hint", hidden: true }, "Drag a rectangle around the face the detector missed. Esc cancels.");
  drawButton.addEventListener("click", () => (frame.classList.contains("drawing") ? stopDrawing() : startDrawing()));
  img.addEventListener("load", () => (drawButton.disabled = false), { once: true });

  // drawing: a layer over the photo takes the pointer (mouse, pen or touch); the rectangle drawn, in
  // CSS pixels of the photo as shown, becomes photo pixels (the photo is scaled to fit: fitFrame)
  let layer = null;
  let people = null; // names for the dialog's list, loaded when drawing starts
  const onKey = (event) => {
    if (event.key === "Escape" && layer && !document.querySelector("dialog[open]")) {
      event.preventDefault();
      stopDrawing();
    }
  };
  document.addEventListener("keydown", onKey);
  view.onClose(() => document.removeEventListener("keydown", onKey));
  const stopDrawing = () => {
    if (layer) layer.remove();
    layer = null;
    frame.classList.remove("drawing");
    drawButton.setAttribute("aria-pressed", "false");
    drawButton.textContent = "Draw a face";
    drawHint.hidden = true;
  };
  const startDrawing = () => {
    if (!people) people = knownNames(view);
    layer = h("div", { class: "draw-layer", "aria-hidden": "true" });
    frame.classList.add("drawing");
    frame.append(layer);
    drawButton.setAttribute("aria-pressed", "true");
    drawButton.textContent = "Stop drawing";
    drawHint.hidden = false;
    let start = null;
    let rect = null;
    const at = (event) => {
      const r = layer.getBoundingClientRect();
      return [Math.min(Math.max(event.clientX - r.left, 0), r.width), Math.min(Math.max(event.clientY - r.top, 0), r.height)];
    };
    const corners = (event) => {
      const [x, y] = at(event);
      return [Math.min(start[0], x), Math.min(start[1], y), Math.max(start[0], x), Math.max(start[1], y)];
    };
    layer.addEventListener("pointerdown", (event) => {
      if (event.button !== 0) return;
      event.preventDefault();
      try {
        layer.setPointerCapture(event.pointerId); // the drag goes on past the photo's edge
      } catch {
        // a pointer the browser no longer tracks: the drag still works inside the photo
      }
      start = at(event);
      if (rect) rect.remove();
      rect = h("div", { class: "draw-rect" });
      layer.append(rect);
    });
    layer.addEventListener("pointermove", (event) => {
      if (!start) return;
      const [x1, y1, x2, y2] = corners(event);
      Object.assign(rect.style, { left: `${x1}px`, top: `${y1}px`, width: `${x2 - x1}px`, height: `${y2 - y1}px` });
    });
    const finish = async (event) => {
      if (!start) return;
      const [x1, y1, x2, y2] = corners(event);
      start = null;
      if (x2 - x1 < 6 || y2 - y1 < 6) {
        rect.remove(); // a click, not a rectangle
        return;
      }
      const scale = width() / layer.getBoundingClientRect().width; // CSS pixels -> photo pixels
      const box = [x1, y1, x2, y2].map((v, k) => Math.round(Math.min(v * scale, k % 2 ? height() : width())));
      const saved = await drawnFaceDialog(view, id, box, await people);
      if (!view.active) return;
      if (saved) {
        toast(`Saved the face${saved.cluster_name ? ` of ${saved.cluster_name}` : ""} (drawn by hand)`);
        route(); // the photo again, with its new box
      } else {
        stopDrawing();
      }
    };
    layer.addEventListener("pointerup", finish);
    layer.addEventListener("pointercancel", () => {
      start = null;
      if (rect) rect.remove();
    });
  };

  setPage(
    name,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/people" }, "People"), " › Photo"),
    h("h1", { tabindex: -1 }, name.split("/").pop()),
    h(
      "div",
      { class: "photo-layout" },
      h("figure", { class: "photo" }, frame, caption, h("div", { class: "photo-tools" }, drawButton, drawHint), status),
      h("section", { "aria-labelledby": "photo-faces" }, h("h2", { id: "photo-faces" }, "Faces"), list),
    ),
  );

  try {
    const blob = await imageLimiter.run(() => call("GET /v1/collection/photos/{}/image", id, { signal: view.signal }));
    if (view.active) view.setImage(img, blob);
  } catch (error) {
    if (isAbort(error)) return;
    status.replaceChildren(errorBox(error, "Could not load the photo"));
  }
}

/** The names a face can be given: the named people of the photos and those enrolled for search. */
async function knownNames(view) {
  const [clusters, people] = await Promise.all([
    call("GET /v1/collection/clusters", { query: { limit: 1000 }, signal: view.signal }).catch(() => ({ clusters: [] })),
    call("GET /v1/people", { signal: view.signal }).catch(() => ({ people: [] })),
  ]);
  const names = [...listOf(clusters, "clusters").map((c) => c.name), ...listOf(people, "people").map((p) => p.name)];
  return [...new Set(names.filter(Boolean))].sort((a, b) => a.localeCompare(b));
}

/** Ask who a drawn face is, and save it (POST); resolves to the saved face, or null when cancelled (Esc). */
function drawnFaceDialog(view, photoId, box, names) {
  return new Promise((resolve) => {
    const nameId = newId("drawn-name");
    const list = h("datalist", { id: newId("drawn-names") }, names.map((name) => h("option", { value: name })));
    const input = h("input", { id: nameId, type: "text", list: list.id, maxlength: 200, autocomplete: "off", placeholder: "Nobody yet" });
    const error = h("div");
    const save = h("button", { type: "submit", class: "primary" }, "Save face");
    let saved = null;
    const dialog = h(
      "dialog",
      { "aria-labelledby": `${nameId}-title` },
      h(
        "form",
        {},
        h("h2", { id: `${nameId}-title` }, "Save this face"),
        h("p", { class: "muted" }, `A face drawn by hand at ${box[0]}, ${box[1]} (${box[2] - box[0]} × ${box[3] - box[1]} pixels of the photo).`),
        h("div", { class: "field" }, h("label", { for: nameId }, "Who is it? (optional)"), input, list),
        error,
        h(
          "div",
          { class: "dialog-actions" },
          h("button", { type: "button", onclick: () => dialog.close() }, "Cancel"),
          save,
        ),
      ),
    );
    dialog.querySelector("form").addEventListener("submit", async (event) => {
      event.preventDefault();
      const person = input.value.trim() || null;
      error.replaceChildren();
      setBusy(save, true, "Saving…");
      try {
        saved = await call("POST /v1/collection/photos/{}/faces", photoId, { body: { box, person }, signal: view.signal });
        dialog.close();
      } catch (failure) {
        if (isAbort(failure)) return;
        setBusy(save, false);
        error.replaceChildren(errorBox(failure, "Could not save the face"));
        input.focus();
      }
    });
    dialog.addEventListener("close", () => {
      dialog.remove();
      resolve(saved);
    });
    view.onClose(() => dialog.isConnected && dialog.close());
    document.body.append(dialog);
    dialog.showModal();
    input.focus();
  });
}

// --- a video, its faces (one per track) and the moments they appear --------------------------------

/** Seconds as m:ss (h:mm:ss past an hour). */
function clock(seconds) {
  const total = Math.max(0, Math.floor(seconds));
  const s = String(total % 60).padStart(2, "0");
  const m = Math.floor(total / 60);
  return m >= 60 ? `${Math.floor(m / 60)}:${String(m % 60).padStart(2, "0")}:${s}` : `${m}:${s}`;
}

/** The UI's page of the video of a face, starting where the face appears. */
const momentHref = (face) => `#/photos/${face.photo_id}?t=${Number(face.time).toFixed(2)}`;

/** A path of the service (e.g. a signed video link) as a URL from this page (the UI may live under a prefix). */
const servicePath = (path) => `${new URL(".", document.baseURI).pathname.replace(/\/$/, "")}${path}`;

async function pageVideo(view, photo, at) {
  const faces = listOf(photo.faces, "faces");
  const name = photo.path || `Video ${photo.id}`;
  // a <video> sends no API key: it plays a link signed for this video (GET .../video-link)
  const video = h("video", { class: "video", controls: true, preload: "metadata", playsinline: true, "aria-label": `Video ${name}` });
  const status = h("div");
  const playFrom = (time) => {
    video.currentTime = time;
    video.play().catch(() => {}); // autoplay may be refused: the frame is shown, the user presses play
  };
  const list = faces.length
    ? h(
        "ul",
        { class: "face-links", "aria-label": "Faces in this video" },
        faces.map((face, i) => {
          const when = typeof face.time === "number" ? face.time : 0;
          const span = typeof face.start === "number" && typeof face.end === "number" ? ` (${clock(face.start)}–${clock(face.end)})` : "";
          const label = `${i + 1}. ${nameOf(face)} at ${clock(when)}${span}`;
          return h(
            "li",
            { dataset: { time: when.toFixed(2) } },
            faceThumb(view, face.id, ""),
            inCluster(face) ? h("a", { href: `#/people/${face.cluster_id}` }, label) : h("span", {}, label),
            h("button", { type: "button", class: "small quiet", onclick: () => playFrom(when) }, `Play from ${clock(when)}`),
          );
        }),
      )
    : h("p", { class: "empty" }, "No face was found in this video.");
  const length = typeof photo.duration === "number" ? ` · ${clock(photo.duration)}` : "";
  const size = photo.width && photo.height ? ` · ${photo.width} × ${photo.height}` : "";
  setPage(
    name,
    h("nav", { class: "crumbs", "aria-label": "Breadcrumb" }, h("a", { href: "#/people" }, "People"), " › Video"),
    h("h1", { tabindex: -1 }, name.split("/").pop()),
    h(
      "div",
      { class: "photo-layout" },
      h("figure", { class: "photo" }, video, h("figcaption", {}, `${name}${size}${length} · ${plural(faces.length, "face")}`), status),
      h("section", { "aria-labelledby": "video-faces" }, h("h2", { id: "video-faces" }, "Faces"), list),
    ),
  );
  if (photo.status && photo.status !== "ok") status.replaceChildren(h("p", { class: "error" }, photo.status));
  try {
    const link = await call("GET /v1/collection/photos/{}/video-link", photo.id, { signal: view.signal });
    if (!view.active) return;
    const start = Number.isFinite(at) ? at : 0;
    video.src = `${servicePath(link.url)}#t=${start.toFixed(2)}`; // a media fragment: the player starts there
  } catch (error) {
    if (isAbort(error)) return;
    status.replaceChildren(errorBox(error, "Could not load the video"));
  }
}

// --- Jobs -----------------------------------------------------------------------------------------

const KIND_NAMES = { index: "Index", cluster: "Group faces" };
const RUNNING = new Set(["queued", "running"]);

async function pageJobs(view) {
  const folderId = newId("folder");
  const folder = h("input", {
    id: folderId,
    type: "text",
    required: true,
    autocomplete: "off",
    spellcheck: "false",
    placeholder: "/srv/photos",
  });
  const indexButton = h("button", { type: "submit", class: "primary" }, "Start indexing");
  const indexError = h("div");
  const indexForm = h(
    "form",
    { class: "card", "aria-labelledby": `${folderId}-title` },
    h("h2", { id: `${folderId}-title` }, "Index a folder"),
    h(
      "p",
      { class: "muted" },
      "Find every face in the photos of a folder on the server (inside FACEATLAS_PHOTO_ROOTS). Run it again to pick up new photos.",
    ),
    h("div", { class: "row" }, h("div", { class: "field" }, h("label", { for: folderId }, "Folder on the server"), folder), indexButton),
    indexError,
  );

  const fullId = newId("full");
  const full = h("input", { id: fullId, type: "checkbox" });
  const clusterButton = h("button", { type: "submit", class: "primary" }, "Start grouping");
  const clusterError = h("div");
  const clusterForm = h(
    "form",
    { class: "card", "aria-labelledby": `${fullId}-title` },
    h("h2", { id: `${fullId}-title` }, "Group faces into people"),
    h("p", { class: "muted" }, "Clusters the indexed faces by person. New faces join the people they look like."),
    h(
      "div",
      { class: "row" },
      h("label", { class: "check", for: fullId }, full, "Start over (regroup every face; named people are kept)"),
      clusterButton,
    ),
    clusterError,
  );

  const listArea = h("div", {}, h("p", { class: "loading" }, "Loading jobs…"));
  const refreshButton = h("button", { type: "button", class: "small quiet" }, "Refresh");
  setPage(
    "Jobs",
    h("h1", { tabindex: -1 }, "Jobs"),
    h("div", { class: "cards" }, indexForm, clusterForm),
    h(
      "section",
      { "aria-labelledby": "jobs-title" },
      h("div", { class: "page-head" }, h("h2", { id: "jobs-title" }, "Recent jobs"), refreshButton),
      listArea,
    ),
  );

  const items = new Map(); // job id -> its <li>, updated in place (focus stays on a Cancel button)
  const states = new Map(); // job id -> last state seen, to announce changes
  const list = h("ul", { class: "jobs", "aria-label": "Recent jobs" });
  let timer = null;

  const refresh = async () => {
    if (timer !== null) view.cancel(timer);
    timer = null;
    let jobs;
    try {
      jobs = listOf(await call("GET /v1/jobs", { signal: view.signal }), "jobs");
    } catch (error) {
      if (isAbort(error) || !view.active) return;
      if (error instanceof api.ApiError && error.status === 401) {
        signOut(`Your API key was not accepted (${errorText(error)}). Sign in again.`);
        return;
      }
      listArea.replaceChildren(errorBox(error, "Could not load the jobs"));
      timer = view.later(refresh, POLL_MS * 5);
      return;
    }
    if (!view.active) return;
    renderJobs(jobs);
    if (jobs.some((job) => RUNNING.has(job.state)) && !document.hidden) timer = view.later(refresh, POLL_MS);
  };

  const renderJobs = (jobs) => {
    if (!jobs.length) {
      listArea.replaceChildren(h("p", { class: "empty" }, "No jobs yet."));
      items.clear();
      return;
    }
    const seen = new Set();
    jobs.forEach((job, position) => {
      seen.add(job.id);
      let li = items.get(job.id);
      if (!li) {
        li = jobItem(job);
        items.set(job.id, li);
      }
      updateJob(li, job);
      if (list.children[position] !== li) list.insertBefore(li, list.children[position] || null);
      const before = states.get(job.id);
      if (before && before !== job.state && !RUNNING.has(job.state)) {
        toast(
          `${KIND_NAMES[job.kind] || job.kind} job ${job.state}${job.error ? `: ${job.error}` : ""}`,
          job.state === "failed" ? "error" : "info",
        );
      }
      states.set(job.id, job.state);
    });
    for (const [id, li] of items) {
      if (!seen.has(id)) {
        li.remove();
        items.delete(id);
      }
    }
    if (list.parentNode !== listArea) listArea.replaceChildren(list);
  };

  const jobItem = (job) => {
    const cancel = h("button", { type: "button", class: "small" }, "Cancel");
    cancel.addEventListener("click", async () => {
      setBusy(cancel, true, "Cancelling…");
      try {
        await call("DELETE /v1/jobs/{}", job.id, { signal: view.signal });
      } catch (error) {
        if (isAbort(error)) return;
        toast(errorText(error), "error");
      }
      setBusy(cancel, false);
      refresh();
    });
    const progress = h("progress", { max: 1 });
    return h(
      "li",
      { class: "card job", dataset: { job: job.id } },
      h("div", { class: "job-head" }, h("span", { class: "job-kind" }), h("span", { class: "badge" }), h("span", { class: "job-params" })),
      h("div", { class: "job-actions" }, cancel),
      h("div", { class: "job-progress" }, progress, h("span", { class: "job-count" })),
      h("p", { class: "job-message" }),
      h("p", { class: "job-error error", role: "alert" }),
    );
  };

  const updateJob = (li, job) => {
    const kind = KIND_NAMES[job.kind] || job.kind;
    li.className = `card job state-${job.state}`;
    li.querySelector(".job-kind").textContent = kind;
    const badge = li.querySelector(".badge");
    badge.textContent = job.cancel_requested && job.state === "running" ? "cancelling" : job.state;
    badge.className = `badge ${job.state}`;
    const params = job.params || {};
    li.querySelector(".job-params").textContent = params.folder || (params.full ? "start over" : "");
    const progress = li.querySelector("progress");
    const total = typeof job.total === "number" && job.total > 0 ? job.total : null;
    progress.setAttribute("aria-label", `${kind} job progress`);
    if (job.state === "done") {
      progress.max = 1;
      progress.value = 1;
    } else if (total) {
      progress.max = total;
      progress.value = Math.min(job.done || 0, total);
    } else if (RUNNING.has(job.state)) {
      progress.removeAttribute("value"); // indeterminate
    } else {
      progress.max = 1;
      progress.value = 0;
    }
    li.querySelector(".job-count").textContent = total ? `${job.done || 0} / ${total}` : job.done ? String(job.done) : "";
    li.querySelector(".job-message").textContent = job.message && job.message !== job.state ? job.message : "";
    li.querySelector(".job-error").textContent = job.error || "";
    const cancel = li.querySelector(".job-actions button");
    cancel.hidden = !RUNNING.has(job.state) || Boolean(job.cancel_requested);
    cancel.setAttribute("aria-label", `Cancel ${kind} job ${params.folder || job.id}`);
  };

  const start = async (form, button, errorArea, key, body, what) => {
    errorArea.replaceChildren();
    setBusy(button, true, "Starting…");
    try {
      await call(key, { body, signal: view.signal });
      toast(`${what} started`);
      await refresh();
    } catch (error) {
      if (isAbort(error)) return;
      errorArea.replaceChildren(errorBox(error, `Could not start ${what.toLowerCase()}`));
    } finally {
      if (view.active) setBusy(button, false);
    }
  };
  indexForm.addEventListener("submit", (event) => {
    event.preventDefault();
    const path = folder.value.trim();
    if (path) start(indexForm, indexButton, indexError, "POST /v1/jobs/index", { folder: path }, "Indexing");
  });
  clusterForm.addEventListener("submit", (event) => {
    event.preventDefault();
    start(clusterForm, clusterButton, clusterError, "POST /v1/jobs/cluster", { full: full.checked }, "Grouping");
  });
  refreshButton.addEventListener("click", () => refresh());
  const onVisible = () => {
    if (document.visibilityState === "visible" && view.active) refresh();
  };
  document.addEventListener("visibilitychange", onVisible);
  view.onClose(() => document.removeEventListener("visibilitychange", onVisible));
  await refresh();
}

// --- Review: "Is this Ada?" yes / no / skip, the questions that teach the grouping the most -----------

const REVIEW_BATCH = 10; // questions asked for at once (the first is shown; the count says how many wait)
const REVIEW_REPLIES = [
  ["yes", "y", "Yes", "primary"],
  ["no", "n", "No", ""],
  ["skip", "s", "Skip", "quiet"],
];
const reviewSkipped = new Set(); // keys ("merge:12:40") skipped in this tab; the server keeps no session
const questionKey = (q) => `${q.kind}:${q.faces[0]}:${q.faces[1]}`;

function reviewSide(view, question, shown, i) {
  const member = question.kind === "member";
  let who;
  if (member && i === 0) who = "This face";
  else if (shown.cluster === null || shown.cluster === undefined) who = "A face not in any person yet";
  else who = `${shown.name || `Unnamed person #${shown.cluster}`} (${plural(question.sizes[i], "face")})`;
  const photoHref = typeof shown.time === "number" ? momentHref({ photo_id: shown.photo, time: shown.time }) : `#/photos/${shown.photo}`;
  return h(
    "figure",
    { class: "review-face card", dataset: { face: shown.face } },
    faceThumb(view, shown.face, `Face ${shown.face}${shown.name ? `, ${shown.name}` : ""}`),
    h(
      "figcaption",
      {},
      h("span", { class: "review-who" }, who),
      h("a", { href: photoHref, class: "muted" }, "Open the photo"),
    ),
  );
}

async function pageReview(view) {
  const status = h("div", {}, h("p", { class: "loading" }, "Loading the next question…"));
  const errorArea = h("div");
  const count = h("span", { class: "count" });
  setPage(
    "Review",
    h("div", { class: "page-head" }, h("h1", { tabindex: -1 }, "Review ", count)),
    h(
      "p",
      { class: "muted" },
      "Answer the questions that teach the grouping the most. Each answer is kept as a correction that later groupings follow. ",
      h("a", { href: "#/review/group" }, "Group questions"),
    ),
    errorArea,
    status,
  );
  let buttons = {};
  let busy = false;

  const showError = (error, prefix) => errorArea.replaceChildren(errorBox(error, prefix));

  const load = async () => {
    let questions;
    try {
      const response = await call("GET /v1/collection/review", {
        query: { limit: REVIEW_BATCH, skip: [...reviewSkipped] },
        signal: view.signal,
      });
      questions = listOf(response, "questions");
    } catch (error) {
      if (isAbort(error) || !view.active) return;
      if (error instanceof api.ApiError && error.status === 401) throw error;
      buttons = {};
      status.replaceChildren(h("p", {}, h("button", { type: "button", onclick: () => load() }, "Try again")));
      showError(error, "Could not load the questions");
      return;
    }
    if (!view.active) return;
    buttons = {};
    if (!questions.length) {
      count.textContent = "";
      const again = reviewSkipped.size
        ? h(
            "p",
            {},
            h(
              "button",
              {
                type: "button",
                onclick: () => {
                  reviewSkipped.clear();
                  load();
                },
              },
              `Ask the ${plural(reviewSkipped.size, "skipped question")} again`,
            ),
          )
        : null;
      status.replaceChildren(
        h(
          "p",
          { class: "empty review-done", role: "status" },
          "No more questions: the grouping has nothing left it is unsure of.",
        ),
        again,
        h("p", {}, h("a", { href: "#/people" }, "Go to People")),
      );
      return;
    }
    count.textContent = `· ${questions.length >= REVIEW_BATCH ? `${REVIEW_BATCH}+` : questions.length} left`;
    renderQuestion(questions[0]);
  };

  const renderQuestion = (question) => {
    const titleId = newId("question");
    const row = h("div", { class: "review-actions", role: "group", "aria-label": "Your answer" });
    for (const [reply, key, label, kind] of REVIEW_REPLIES) {
      const button = h(
        "button",
        { type: "button", class: kind || null, "aria-keyshortcuts": key, dataset: { reply } },
        label,
        " ",
        h("kbd", { "aria-hidden": "true" }, key),
      );
      button.addEventListener("click", () => answer(question, reply));
      buttons[reply] = button;
      row.append(button);
    }
    const chance = Math.round((question.p_same || 0) * 100);
    status.replaceChildren(
      h(
        "section",
        { class: "card review-question", "aria-labelledby": titleId, dataset: { key: questionKey(question) } },
        h("h2", { id: titleId, class: "review-text" }, question.text),
        h("div", { class: "review-faces" }, question.shown.map((shown, i) => reviewSide(view, question, shown, i))),
        h("p", { class: "muted review-meta" }, `Similarity ${fmtScore(question.similarity)} · about ${chance}% likely the same person`),
        row,
        h("p", { class: "muted review-hint" }, "Keys: ", h("kbd", {}, "y"), " yes, ", h("kbd", {}, "n"), " no, ", h("kbd", {}, "s"), " skip"),
      ),
    );
  };

  const answer = async (question, reply) => {
    if (busy) return;
    busy = true;
    for (const button of Object.values(buttons)) button.disabled = true;
    errorArea.replaceChildren();
    const body = { kind: question.kind, faces: question.faces, clusters: question.clusters, reply };
    try {
      await call("POST /v1/collection/review/answer", { body, signal: view.signal });
    } catch (error) {
      busy = false;
      if (isAbort(error) || !view.active) return;
      if (error instanceof api.ApiError && error.status === 401) {
        signOut(`Your API key was not accepted (${errorText(error)}). Sign in again.`);
        return;
      }
      if (error instanceof api.ApiError && (error.status === 409 || error.status === 404)) {
        showError(error, "Not saved");
        await load(); // the question is out of date: show the one the queue asks now
        return;
      }
      for (const button of Object.values(buttons)) button.disabled = false;
      showError(error, "Not saved");
      return;
    }
    if (reply === "skip") reviewSkipped.add(questionKey(question));
    toast({ yes: "Saved: yes", no: "Saved: no", skip: "Skipped" }[reply]);
    busy = false;
    if (view.active) await load();
  };

  const onKey = (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    if (typing(event.target) || document.querySelector("dialog[open]")) return;
    const reply = { y: "yes", n: "no", s: "skip" }[event.key];
    const button = reply && buttons[reply];
    if (!button || button.disabled) return;
    event.preventDefault();
    button.click();
  };
  document.addEventListener("keydown", onKey);
  view.onClose(() => document.removeEventListener("keydown", onKey));
  await load();
}

// Group questions: one face and the candidates most likely its person, ticked or not, saved at once
const reviewGroupSkipped = new Set(); // anchor face ids skipped in this tab

async function pageReviewGroup(view) {
  const status = h("div", {}, h("p", { class: "loading" }, "Loading the next question…"));
  const errorArea = h("div");
  setPage(
    "Review",
    h("div", { class: "page-head" }, h("h1", { tabindex: -1 }, "Review: group questions")),
    h(
      "p",
      { class: "muted" },
      "Tick the faces that are the same person as the first one; the others are kept apart from it (one grouped with them now leaves). ",
      h("a", { href: "#/review" }, "One question at a time"),
    ),
    errorArea,
    status,
  );
  let shown = null; // {question, boxes, save, skip} while a question is on the page
  let busy = false;
  const showError = (error, prefix) => errorArea.replaceChildren(errorBox(error, prefix));

  const load = async () => {
    shown = null;
    let question;
    try {
      const response = await call("GET /v1/collection/review/group", {
        query: { skip: [...reviewGroupSkipped] },
        signal: view.signal,
      });
      question = response ? response.question : null;
    } catch (error) {
      if (isAbort(error) || !view.active) return;
      if (error instanceof api.ApiError && error.status === 401) throw error;
      status.replaceChildren(h("p", {}, h("button", { type: "button", onclick: () => load() }, "Try again")));
      showError(error, "Could not load the question");
      return;
    }
    if (!view.active) return;
    if (!question) {
      const again = reviewGroupSkipped.size
        ? h(
            "p",
            {},
            h(
              "button",
              {
                type: "button",
                onclick: () => {
                  reviewGroupSkipped.clear();
                  load();
                },
              },
              `Ask the ${plural(reviewGroupSkipped.size, "skipped question")} again`,
            ),
          )
        : null;
      status.replaceChildren(
        h("p", { class: "empty review-done", role: "status" }, "No more questions: the grouping has nothing left it is unsure of."),
        again,
        h("p", {}, h("a", { href: "#/people" }, "Go to People")),
      );
      return;
    }
    render(question);
  };

  const render = (question) => {
    const titleId = newId("question");
    const anchor = question.anchor_shown;
    const boxes = [];
    const candidates = question.members.map((member, i) => {
      const face = member.shown[member.kind === "member" ? 0 : 1]; // a face of this person, or another's
      const box = h("input", { type: "checkbox", checked: member.p_same >= 0.5, dataset: { face: face.face } });
      boxes.push(box);
      const who =
        member.kind === "member"
          ? "Grouped with them now"
          : face.cluster === null || face.cluster === undefined
            ? "Not in any person yet"
            : face.name || `Unnamed person #${face.cluster}`;
      return h(
        "label",
        { class: "review-face card review-candidate", dataset: { face: face.face } },
        faceThumb(view, face.face, `Face ${face.face}${face.name ? `, ${face.name}` : ""}`),
        h(
          "span",
          { class: "review-who" },
          box,
          " ",
          i < 9 ? h("kbd", { "aria-hidden": "true" }, String(i + 1)) : null,
          ` ${who} · about ${Math.round((member.p_same || 0) * 100)}%`,
        ),
      );
    });
    const save = h("button", { type: "button", class: "primary", "aria-keyshortcuts": "Enter" }, "Save ", h("kbd", { "aria-hidden": "true" }, "Enter"));
    const skip = h("button", { type: "button", class: "quiet", "aria-keyshortcuts": "s" }, "Skip ", h("kbd", { "aria-hidden": "true" }, "s"));
    save.addEventListener("click", () => submit(question, false));
    skip.addEventListener("click", () => submit(question, true));
    shown = { question, boxes, save, skip };
    const who = anchor.name || (anchor.cluster === null || anchor.cluster === undefined ? "This face" : `Unnamed person #${anchor.cluster}`);
    status.replaceChildren(
      h(
        "section",
        { class: "card review-question review-group", "aria-labelledby": titleId, dataset: { anchor: question.anchor } },
        h("h2", { id: titleId, class: "review-text" }, `Which of these are ${anchor.name || "this person"}?`),
        h(
          "figure",
          { class: "review-face card review-anchor", dataset: { face: anchor.face } },
          faceThumb(view, anchor.face, `Face ${anchor.face}${anchor.name ? `, ${anchor.name}` : ""}`),
          h("figcaption", {}, h("span", { class: "review-who" }, who)),
        ),
        h("div", { class: "review-faces", role: "group", "aria-label": "Candidates" }, candidates),
        h("div", { class: "review-actions", role: "group", "aria-label": "Your answer" }, save, skip),
        h("p", { class: "muted review-hint" }, "Keys: ", h("kbd", {}, "1"), "–", h("kbd", {}, "9"), " tick or untick, ", h("kbd", {}, "Enter"), " save, ", h("kbd", {}, "s"), " skip"),
      ),
    );
  };

  const submit = async (question, skipped) => {
    if (busy || !shown || shown.question !== question) return;
    if (skipped) {
      reviewGroupSkipped.add(question.anchor);
      toast("Skipped");
      await load();
      return;
    }
    busy = true;
    shown.save.disabled = shown.skip.disabled = true;
    errorArea.replaceChildren();
    const body = {
      anchor: question.anchor,
      candidates: question.candidates,
      same: shown.boxes.filter((box) => box.checked).map((box) => Number(box.dataset.face)),
      skip: [...reviewGroupSkipped],
    };
    try {
      const out = await call("POST /v1/collection/review/group/answer", { body, signal: view.signal });
      toast(`Saved: ${out.merged} same, ${out.kept_apart} apart`);
    } catch (error) {
      busy = false;
      if (isAbort(error) || !view.active) return;
      if (error instanceof api.ApiError && error.status === 401) {
        signOut(`Your API key was not accepted (${errorText(error)}). Sign in again.`);
        return;
      }
      showError(error, "Not saved");
      if (error instanceof api.ApiError && (error.status === 409 || error.status === 404)) await load();
      else if (shown) shown.save.disabled = shown.skip.disabled = false;
      return;
    }
    busy = false;
    if (view.active) await load();
  };

  const onKey = (event) => {
    if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey || event.repeat) return;
    const box = event.target instanceof HTMLInputElement && event.target.type === "checkbox";
    if ((typing(event.target) && !box) || document.querySelector("dialog[open]") || !shown || busy) return;
    if (event.key === "Enter" && event.target instanceof HTMLElement && event.target.matches("button, a")) return; // its own click
    if (/^[1-9]$/.test(event.key)) {
      const target = shown.boxes[Number(event.key) - 1];
      if (!target) return;
      event.preventDefault();
      target.checked = !target.checked;
    } else if (event.key === "Enter") {
      event.preventDefault();
      shown.save.click();
    } else if (event.key === "s") {
      event.preventDefault();
      shown.skip.click();
    }
  };
  document.addEventListener("keydown", onKey);
  view.onClose(() => document.removeEventListener("keydown", onKey));
  await load();
}

// --- keyboard -------------------------------------------------------------------------------------

let pendingG = 0;

function typing(target) {
  return (
    target instanceof HTMLElement &&
    (target.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(target.tagName))
  );
}

document.addEventListener("keydown", (event) => {
  if (event.defaultPrevented || event.ctrlKey || event.metaKey || event.altKey) return;
  // Space opens a tile, as Enter does (tiles are links)
  if (event.key === " " && event.target instanceof HTMLElement && event.target.matches("a.tile, a.box, .face-links a")) {
    event.preventDefault();
    event.target.click();
    return;
  }
  if (typing(event.target) || document.querySelector("dialog[open]")) return;
  if (!session.key && !session.authOff) return;
  const now = Date.now();
  if (pendingG && now - pendingG < 1500) {
    pendingG = 0;
    const target = { p: "#/people", r: "#/review", s: "#/search", j: "#/jobs" }[event.key];
    event.preventDefault(); // the key was the second of "g x": no page's own shortcut (Review's y / n / s)
    if (target) location.hash = target;
    return;
  }
  if (event.key === "g") {
    pendingG = now;
    return;
  }
  if (event.key === "?") {
    event.preventDefault();
    helpDialog.showModal();
  } else if (event.key === "/") {
    const field = main.querySelector("[aria-keyshortcuts='/']");
    if (field && !field.disabled) {
      event.preventDefault();
      field.focus();
      if (field.type === "file") field.click();
    }
  }
});

// --- start ----------------------------------------------------------------------------------------

document.getElementById("help-open").addEventListener("click", () => helpDialog.showModal());
signOutButton.addEventListener("click", () => {
  signOut("Signed out. The key was removed from this tab.", false);
  history.replaceState(null, "", location.pathname + location.search);
});
document.getElementById("skip-link").addEventListener("click", (event) => {
  event.preventDefault();
  main.focus();
});
// a photo dropped outside the drop zone must not replace the page
window.addEventListener("dragover", (event) => event.preventDefault());
window.addEventListener("drop", (event) => event.preventDefault());
window.addEventListener("hashchange", route);

async function start() {
  api.configure({ baseUrl: new URL(".", document.baseURI).pathname.replace(/\/$/, "") });
  const saved = sessionStorage.getItem(KEY_STORAGE);
  if (saved) {
    useKey(saved);
  } else {
    try {
      await call("GET /v1/people"); // a server with FACEATLAS_AUTH=false needs no key
      session.authOff = true;
    } catch {
      session.authOff = false;
    }
    useKey(null);
  }
  session.ready = true;
  route();
}

start();
