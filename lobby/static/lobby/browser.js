// The lobby browser: public open lobbies (filtered, polled so the list stays current), join by
// code, create a lobby.

import {
  api,
  clearFieldErrors,
  h,
  replaceChildrenKeepingFocus,
  roomUrl,
  showFieldErrors,
  showMessage,
} from "./api.js";

const REFRESH_MS = 4000;
const PAGE_SIZE = 50;

const filters = document.getElementById("filters");
const list = document.getElementById("lobby-list");
const empty = document.getElementById("list-empty");
const summary = document.getElementById("list-summary");
const updated = document.getElementById("list-updated");
const listError = document.getElementById("list-error");
const knownModes = new Set();
const knownRegions = new Set();

// --- The list ------------------------------------------------------------------------------

let timer = null;
let inFlight = null;
let renderedList = "";
let generation = 0;

function currentFilters() {
  const params = new URLSearchParams();
  for (const name of ["q", "mode", "region"]) {
    const value = filters.elements.namedItem(name).value.trim();
    if (value) params.set(name, value);
  }
  return params;
}

async function refresh() {
  window.clearTimeout(timer);
  const mine = ++generation;
  const params = currentFilters();
  // The address bar keeps the filters: reloading or sharing the page shows the same list.
  const query = params.toString();
  window.history.replaceState(null, "", query ? `?${query}` : window.location.pathname);
  params.set("page_size", String(PAGE_SIZE));
  if (inFlight) inFlight.abort();
  inFlight = new AbortController();
  try {
    const page = await api("GET", `/api/v1/lobbies?${params}`, undefined, {
      signal: inFlight.signal,
    });
    if (mine !== generation) return;
    render(page);
    showMessage(listError, "");
  } catch (error) {
    if (error.name === "AbortError") return;
    if (error.fields) {
      showMessage(listError, `Check the filters. ${error.message}`);
    } else {
      showMessage(listError, `The list could not be updated. ${error.message}`);
    }
  } finally {
    if (mine === generation) schedule();
  }
}

function schedule() {
  window.clearTimeout(timer);
  if (!document.hidden) timer = window.setTimeout(refresh, REFRESH_MS);
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) window.clearTimeout(timer);
  else refresh();
});

function say(count, total) {
  if (total === 0) return "No open lobbies right now.";
  const noun = total === 1 ? "open lobby" : "open lobbies";
  if (count < total) return `Showing ${count} of ${total} ${noun}. Narrow the filters to see others.`;
  return `${total} ${noun}.`;
}

function render(page) {
  const lobbies = page.results;
  const text = say(lobbies.length, page.count);
  // Only when it changes: the summary is a live region, and must not chatter every few seconds.
  if (summary.textContent !== text) summary.textContent = text;
  updated.textContent = `Updated ${new Date().toLocaleTimeString()}. The list refreshes by itself.`;
  empty.hidden = lobbies.length > 0;
  list.hidden = lobbies.length === 0;
  // Unchanged lists are left alone: a screen reader reading the list is not interrupted.
  const fingerprint = JSON.stringify(lobbies);
  if (fingerprint !== renderedList) {
    renderedList = fingerprint;
    replaceChildrenKeepingFocus(list, lobbies.map(lobbyItem));
  }
  for (const lobby of lobbies) {
    if (lobby.mode) knownModes.add(lobby.mode);
    if (lobby.region) knownRegions.add(lobby.region);
  }
  fillDatalist("known-modes", knownModes);
  fillDatalist("known-regions", knownRegions);
}

function fillDatalist(id, values) {
  const datalist = document.getElementById(id);
  if (datalist.options.length === values.size) return;
  datalist.replaceChildren(...[...values].sort().map((value) => h("option", { value })));
}

function lobbyItem(lobby) {
  const full = lobby.member_count >= lobby.max_players;
  const titleId = `lobby-${lobby.id}-name`;
  return h(
    "li",
    { class: "lobby-item", dataset: { lobbyId: lobby.id } },
    h(
      "div",
      { class: "lobby-item__main" },
      h("h3", { class: "lobby-item__name", id: titleId }, lobby.name),
      h(
        "p",
        { class: "tags" },
        lobby.mode ? h("span", { class: "tag" }, h("span", { class: "visually-hidden" }, "Mode: "), lobby.mode) : null,
        lobby.region ? h("span", { class: "tag tag--region" }, h("span", { class: "visually-hidden" }, "Region: "), lobby.region) : null,
        h("span", { class: "muted" }, `Host: ${lobby.host}`),
      ),
    ),
    h(
      "div",
      { class: "lobby-item__side" },
      h(
        "span",
        { class: `seats${full ? " seats--full" : ""}` },
        `${lobby.member_count}/${lobby.max_players}`,
        h("span", { class: "visually-hidden" }, " players"),
      ),
      h(
        "button",
        {
          type: "button",
          class: "btn btn--primary btn--small",
          disabled: full,
          "aria-describedby": titleId,
          dataset: { focusKey: `join-${lobby.id}`, join: lobby.id },
        },
        full ? "Full" : "Join",
      ),
    ),
  );
}

list.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-join]");
  if (!button) return;
  button.disabled = true;
  button.textContent = "Joining…";
  try {
    const lobby = await api("POST", `/api/v1/lobbies/${button.dataset.join}/join`);
    window.location.assign(roomUrl(lobby.id));
  } catch (error) {
    showMessage(listError, error.message);
    button.disabled = false;
    button.textContent = "Join";
    refresh();
  }
});

let debounce = null;
filters.addEventListener("input", () => {
  window.clearTimeout(debounce);
  debounce = window.setTimeout(refresh, 300);
});
filters.addEventListener("submit", (event) => {
  event.preventDefault();
  refresh();
});
filters.addEventListener("reset", () => {
  // The fields are cleared after this event: look at them on the next turn.
  for (const name of ["q", "mode", "region"]) filters.elements.namedItem(name).defaultValue = "";
  window.setTimeout(refresh, 0);
});

// --- Join by code --------------------------------------------------------------------------

const joinForm = document.getElementById("join-form");
const joinInput = document.getElementById("join-code");
const joinError = document.getElementById("join-error");

joinInput.addEventListener("input", () => {
  const { selectionStart, selectionEnd } = joinInput;
  joinInput.value = joinInput.value.toUpperCase();
  joinInput.setSelectionRange(selectionStart, selectionEnd);
});

joinForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  showMessage(joinError, "");
  joinInput.removeAttribute("aria-invalid");
  const code = joinInput.value.replace(/[\s-]/g, "").toUpperCase();
  if (!code) {
    showMessage(joinError, "Type the lobby’s join code: the host sees it in the lobby.");
    joinInput.setAttribute("aria-invalid", "true");
    joinInput.focus();
    return;
  }
  const submit = joinForm.querySelector("button[type=submit]");
  submit.disabled = true;
  try {
    const lobby = await api("POST", "/api/v1/lobbies/join", { code });
    window.location.assign(roomUrl(lobby.id));
  } catch (error) {
    showMessage(joinError, error.message);
    joinInput.setAttribute("aria-invalid", "true");
    joinInput.focus();
    submit.disabled = false;
  }
});

// --- Create --------------------------------------------------------------------------------

const createForm = document.getElementById("create-form");
const createError = document.getElementById("create-error");

createForm.addEventListener("submit", async (event) => {
  event.preventDefault();
  clearFieldErrors(createForm);
  showMessage(createError, "");
  const fields = createForm.elements;
  const body = {
    name: fields.namedItem("name").value.trim(),
    max_players: Number(fields.namedItem("max_players").value),
    visibility: fields.namedItem("visibility").value,
    mode: fields.namedItem("mode").value.trim(),
    region: fields.namedItem("region").value.trim(),
    joinable_after_start: fields.namedItem("joinable_after_start").checked,
  };
  const problems = {};
  if (!body.name) problems.name = ["Give the lobby a name, so players can tell it apart."];
  const max = Number(fields.namedItem("max_players").max);
  if (!Number.isInteger(body.max_players) || body.max_players < 2 || body.max_players > max) {
    problems.max_players = [`Choose a whole number from 2 to ${max}.`];
  }
  if (Object.keys(problems).length) {
    showFieldErrors(createForm, "create", problems);
    return;
  }
  const submit = createForm.querySelector("button[type=submit]");
  submit.disabled = true;
  submit.textContent = "Creating…";
  try {
    const lobby = await api("POST", "/api/v1/lobbies", body);
    window.location.assign(roomUrl(lobby.id));
  } catch (error) {
    if (!(error.fields && showFieldErrors(createForm, "create", error.fields))) {
      showMessage(createError, error.message);
    } else {
      showMessage(createError, "Check the highlighted field.");
    }
    submit.disabled = false;
    submit.textContent = "Create lobby";
  }
});

refresh();
