// The queue page: choose a matchmaking profile, fill in the attributes its rules read, follow
// the ticket live (status by the event stream, the matcher's explanation by polling), and land
// in the match's lobby room. See docs/matchmaking.md for the API it uses.

import {
  announce,
  api,
  clearFieldErrors,
  h,
  roomUrl,
  showMessage,
} from "../lobby/api.js";
import { EventStream, connectionIndicator } from "../lobby/stream.js";
import {
  clock,
  describeChange,
  describeRule,
  explain,
  label,
  parseRules,
  plural,
  seconds,
  sentence,
  teamSentence,
  teamShape,
  words,
} from "./rules-words.js";
import { recall, remember } from "./storage.js";

const config = JSON.parse(document.getElementById("queue-config").textContent);
const me = config.me;
const $ = (id) => document.getElementById(id);

const TICKETS = "/api/v1/matchmaking/tickets";
// `blocked_by` is refreshed by every matcher pass but is not an event: read it this often.
const POLL_MS = 3000;
const FINAL = new Set(["matched", "cancelled", "expired"]);
// Where a ticket keeps the ratings the server used (matchmaking/services.py): not an attribute.
const RATED_KEY = "$rated";
// One searching ticket per tab survives a reload (the page's own config also names it).
const STORAGE_KEY = `relay-lobby:queue-ticket:${me.id}`;
const PROFILE_KEY = `relay-lobby:queue-profile:${me.id}`;
const EXAMPLE_LATENCIES = [
  ["eu-west", 40],
  ["us-east", 110],
];

const ui = {
  queue: $("queue"),
  formCard: $("form-card"),
  summary: $("profiles-summary"),
  profilesError: $("profiles-error"),
  profilesEmpty: $("profiles-empty"),
  form: $("queue-form"),
  choices: $("profile-choices"),
  attributes: $("attributes"),
  attributesHelp: $("attributes-help"),
  fields: $("attribute-fields"),
  queueError: $("queue-error"),
  find: $("find-button"),
  ticket: $("ticket"),
  badge: $("ticket-badge"),
  title: $("ticket-title"),
  text: $("ticket-text"),
  note: $("ticket-note"),
  connection: $("connection"),
  connectionText: $("connection-text"),
  searching: $("searching"),
  waited: $("ticket-waited"),
  expires: $("ticket-expires"),
  step: $("ticket-step"),
  blocked: $("ticket-blocked"),
  ticketAttributes: $("ticket-attributes"),
  ticketError: $("ticket-error"),
  cancel: $("cancel-button"),
  lobbyLink: $("lobby-link"),
  again: $("again-button"),
  rulesCard: $("rules-card"),
  rulesSummary: $("rules-summary"),
  rulesSteps: $("rules-steps"),
};

const state = {
  profiles: null, // Map name -> profile (with `parsed` rules), once loaded
  selected: null, // the chosen profile's name
  ticket: null, // the ticket shown (searching, or how it ended) or null: the form
  cancelledHere: new Set(), // ticket ids this page cancelled
  submitting: false,
  cancelling: false,
  leaving: false, // on the way to the lobby room
};

// --- Profiles and the form -------------------------------------------------------------------

// A number per profile name for the ids of its inputs, stable when the list is loaded again.
const profileNumbers = new Map();

async function loadProfiles() {
  try {
    const list = await api("GET", "/api/v1/matchmaking/profiles");
    const before = state.profiles;
    state.profiles = new Map(
      list.map((profile) => {
        if (!profileNumbers.has(profile.name)) profileNumbers.set(profile.name, profileNumbers.size);
        const index = profileNumbers.get(profile.name);
        return [profile.name, { ...profile, index, parsed: parseRules(profile.rules) }];
      }),
    );
    // A profile whose rules changed gets new inputs; the others keep what was typed.
    for (const [name, profile] of state.profiles) {
      const old = before && before.get(name);
      if (old && JSON.stringify(old.rules) !== JSON.stringify(profile.rules)) fieldSets.delete(name);
    }
    showMessage(ui.profilesError, "");
  } catch (error) {
    showMessage(ui.profilesError, `The queues could not be loaded. ${error.message}`);
    ui.summary.textContent = "";
    return;
  }
  renderChoices();
  render();
}

function profileTitle(profile, name) {
  return profile ? profile.title || profile.name : name;
}

function renderChoices() {
  const profiles = [...state.profiles.values()];
  const count = profiles.length;
  ui.summary.textContent = count ? `${plural(count, "queue")} open.` : "";
  ui.profilesEmpty.hidden = count > 0;
  ui.form.hidden = count === 0;
  if (!count) return;
  const wanted = [state.ticket && state.ticket.profile, state.selected, recall(PROFILE_KEY)];
  state.selected = wanted.find((name) => name && state.profiles.has(name)) || profiles[0].name;
  ui.choices.replaceChildren(
    ...profiles.map((profile) => {
      const id = `profile-${profile.index}`;
      const pc = profile.parsed.steps[0].rules[profile.parsed.playerCount];
      return h(
        "label",
        { class: "choice choice--profile" },
        h("input", {
          type: "radio",
          name: "profile",
          value: profile.name,
          checked: profile.name === state.selected,
          "aria-labelledby": `${id}-title`,
          "aria-describedby": `${id}-about`,
        }),
        h(
          "span",
          { class: "choice__body" },
          h(
            "span",
            { class: "choice__title" },
            h("strong", { id: `${id}-title` }, profileTitle(profile)),
            pc ? h("span", { class: "tag" }, teamShape(pc)) : null,
          ),
          h(
            "span",
            { id: `${id}-about`, class: "muted small" },
            pc ? `${teamSentence(pc)}. ` : "",
            profile.description || "",
          ),
        ),
      );
    }),
  );
  showFields();
}

ui.choices.addEventListener("change", (event) => {
  if (event.target.name !== "profile") return;
  state.selected = event.target.value;
  remember(PROFILE_KEY, state.selected);
  clearFieldErrors(ui.form);
  showMessage(ui.queueError, "");
  showFields();
  renderRules();
});

// One set of inputs per profile, kept while the page lives: switching back keeps what was typed.
const fieldSets = new Map();

function showFields() {
  const profile = state.profiles.get(state.selected);
  if (!fieldSets.has(profile.name)) fieldSets.set(profile.name, buildFields(profile));
  ui.fields.replaceChildren(fieldSets.get(profile.name));
  const needs = profile.parsed.attributeRules.length;
  ui.attributes.hidden = false;
  ui.attributesHelp.textContent = needs
    ? `What ${profileTitle(profile)} matches players on.`
    : `${profileTitle(profile)} needs nothing more from you: just find a match.`;
}

function fieldId(profile, index) {
  return `attr-${profile.index}-${index}`;
}

function hintFor(profile, rule) {
  // The loosest value the expansions reach, to say what waiting buys.
  const steps = profile.parsed.steps;
  const last = steps[steps.length - 1].rules[rule.name];
  const relaxedAt = steps.find((step) => step.changes.some((change) => change.after.name === rule.name));
  const later = relaxedAt ? ` (looser after ${seconds(relaxedAt.after)} of waiting)` : "";
  switch (rule.type) {
    case "string_equality":
      return `You meet only players with exactly the same ${words(rule.name)}; capitals count.`;
    case "number_difference":
      if (rule.rating) {
        const looser = relaxedAt ? `, ${last.max_difference} after ${seconds(relaxedAt.after)} of waiting` : "";
        return `Taken from your rating, not typed: you meet players whose μ is within ${rule.max_difference} of yours${looser}.`;
      }
      return relaxedAt
        ? `You meet players within ${rule.max_difference} of yours, ` +
            `${last.max_difference} after ${seconds(relaxedAt.after)} of waiting.`
        : `You meet players within ${rule.max_difference} of yours.`;
    case "intersection":
      return `Separate values with commas. Everyone in a match shares at least ${rule.overlap} of them${later}.`;
    case "latencies":
      return (
        "Your ping to each region, in milliseconds (your game measures it). " +
        `A match is played where everyone’s ping is at most ${rule.max_latency} ms${later}.`
      );
    default:
      return "";
  }
}

function buildFields(profile) {
  const set = h("div", { class: "attribute-fields__set" });
  profile.parsed.attributeRules.forEach((rule, index) => {
    set.append(buildField(profile, rule, index));
  });
  return set;
}

function buildField(profile, rule, index) {
  const id = fieldId(profile, index);
  const help = h("p", { id: `${id}-help`, class: "hint" }, hintFor(profile, rule));
  if (rule.rating) return buildRatedField(rule, index, id, help);
  const error = h("p", { id: `${id}-error`, class: "field-error", hidden: true });
  const describedBy = `${id}-help ${id}-error`;
  const common = { id, name: rule.name, "aria-describedby": describedBy, autocomplete: "off" };
  if (rule.type === "latencies") {
    const rows = h("div", { class: "latency-rows" });
    const field = h(
      "fieldset",
      { class: "field latencies", dataset: { attr: String(index) }, "aria-describedby": describedBy },
      h("legend", {}, label(rule.name)),
      help,
      rows,
      h(
        "button",
        { type: "button", class: "btn btn--secondary btn--small", dataset: { addRow: "" } },
        "Add a region",
      ),
      error,
    );
    for (const [region, ms] of EXAMPLE_LATENCIES) addLatencyRow(rows, id, region, ms);
    field.addEventListener("click", (event) => {
      const add = event.target.closest("[data-add-row]");
      const remove = event.target.closest("[data-remove-row]");
      if (add) {
        const row = addLatencyRow(rows, id, "", "");
        row.querySelector("input").focus();
      } else if (remove) {
        const row = remove.closest(".latency-row");
        const next = row.nextElementSibling || row.previousElementSibling;
        row.remove();
        renumberRows(rows, id);
        (next ? next.querySelector("input") : field.querySelector("[data-add-row]")).focus();
      }
    });
    return field;
  }
  let input;
  if (rule.type === "number_difference") {
    input = h("input", { ...common, type: "number", step: "any", inputmode: "decimal", placeholder: "e.g. 1500" });
  } else if (rule.type === "intersection") {
    input = h("input", {
      ...common,
      type: "text",
      autocapitalize: "off",
      spellcheck: "false",
      placeholder: "e.g. harbor, dust",
    });
  } else {
    input = h("input", { ...common, type: "text", maxlength: "200", autocapitalize: "off", spellcheck: "false" });
  }
  return h(
    "div",
    { class: "field", dataset: { attr: String(index) } },
    h("label", { for: id }, label(rule.name)),
    input,
    help,
    error,
  );
}

function leaderboardUrl(name) {
  return `${config.leaderboardsUrl}${encodeURIComponent(name)}/`;
}

// A number the server takes from the player's rating: shown, never asked (sending it is refused).
function buildRatedField(rule, index, id, help) {
  const rating = config.ratings[rule.rating];
  let value;
  if (!rating) {
    // The queue became rated after this page was made: the page has no figures for it.
    value = h("p", { class: "hint" }, `From your ${rule.rating} rating. Reload the page to see it.`);
  } else {
    value = h(
      "p",
      { class: "tags" },
      h("span", { class: "tag" }, `${rating.games ? "Rating" : "New player: rating"} ${Math.round(rating.ordinal)}`),
      h("span", { class: "tag tag--quiet" }, `μ ${Math.round(rating.mu)} ± ${Math.round(rating.sigma)}`),
      h("span", { class: "tag tag--quiet" }, rating.games ? plural(rating.games, "game") : "no games yet"),
      rating.listed
        ? h("a", { href: leaderboardUrl(rating.leaderboard) }, `See ${rating.title}`)
        : h("span", { class: "muted" }, "Its leaderboard appears with its first result."),
    );
  }
  return h(
    "fieldset",
    {
      class: "field rated",
      "aria-describedby": `${id}-help`,
      dataset: { attr: String(index), rated: rule.rating },
    },
    h("legend", {}, label(rule.name)),
    value,
    help,
  );
}

function addLatencyRow(rows, id, region, ms) {
  const row = h(
    "div",
    { class: "latency-row" },
    h(
      "div",
      { class: "field" },
      h("label", { class: "latency-row__label" }, "Region", h("span", { class: "visually-hidden" }, "")),
      h("input", {
        type: "text",
        maxlength: "200",
        autocomplete: "off",
        autocapitalize: "off",
        spellcheck: "false",
        placeholder: "e.g. eu-west",
        dataset: { part: "region" },
      }),
    ),
    h(
      "div",
      { class: "field" },
      h("label", { class: "latency-row__label" }, "Ping (ms)", h("span", { class: "visually-hidden" }, "")),
      h("input", { type: "number", min: "0", step: "any", inputmode: "decimal", dataset: { part: "ms" } }),
    ),
    h(
      "button",
      { type: "button", class: "btn btn--ghost btn--small latency-row__remove", dataset: { removeRow: "" } },
      "Remove",
    ),
  );
  row.querySelector("[data-part=region]").value = region;
  row.querySelector("[data-part=ms]").value = ms === "" || ms === null || ms === undefined ? "" : String(ms);
  rows.append(row);
  renumberRows(rows, id);
  return row;
}

// Each row's inputs are named for screen readers by their position: "Region 2", "Ping (ms) for region 2".
function renumberRows(rows, id) {
  [...rows.children].forEach((row, index) => {
    const n = index + 1;
    const [regionLabel, msLabel] = row.querySelectorAll("label");
    const region = row.querySelector("[data-part=region]");
    const ms = row.querySelector("[data-part=ms]");
    region.id = `${id}-region-${n}`;
    ms.id = `${id}-ms-${n}`;
    regionLabel.htmlFor = region.id;
    msLabel.htmlFor = ms.id;
    regionLabel.lastElementChild.textContent = ` ${n}`;
    msLabel.lastElementChild.textContent = ` for region ${n}`;
    row.querySelector("[data-remove-row]").setAttribute("aria-label", `Remove region ${n}`);
  });
}

/** The attributes as typed; empty inputs are left out, and the server says what is missing. */
function collect(profile) {
  const set = fieldSets.get(profile.name);
  const attributes = {};
  const problems = {};
  profile.parsed.attributeRules.forEach((rule, index) => {
    if (rule.rating) return; // the server's to set
    const field = set.querySelector(`[data-attr="${index}"]`);
    if (rule.type === "latencies") {
      const map = {};
      for (const row of field.querySelectorAll(".latency-row")) {
        const region = row.querySelector("[data-part=region]").value.trim();
        const msInput = row.querySelector("[data-part=ms]");
        if (!region && msInput.value === "" && !msInput.validity.badInput) continue;
        if (Object.hasOwn(map, region) && region) {
          problems[rule.name] = { code: "duplicate_region", region };
          continue;
        }
        map[region] = msInput.value === "" ? null : Number(msInput.value);
      }
      if (Object.keys(map).length) attributes[rule.name] = map;
      return;
    }
    const input = field.querySelector("input");
    const raw = input.value.trim();
    if (rule.type === "number_difference") {
      if (input.validity.badInput) problems[rule.name] = { code: "not_number" };
      else if (raw !== "") attributes[rule.name] = Number(raw);
    } else if (rule.type === "intersection") {
      const values = raw.split(",").map((value) => value.trim()).filter(Boolean);
      if (values.length) attributes[rule.name] = values;
    } else if (raw) {
      attributes[rule.name] = raw;
    }
  });
  return { attributes, problems };
}

// Attribute problems as data: `{code, ...its parameters}`, the API's `problems` (codes defined in
// matchmaking/rules.py `Problem`) or this page's own checks (`collect`), with `message`, the API's
// words, for a code this page does not know yet. Each code as a sentence a player can act on.
const PROBLEM_WORDS = {
  missing: (rule) =>
    ({
      string_equality: "Fill this in.",
      number_difference: "Enter a number, like 1500.",
      intersection: "Enter at least one value; separate values with commas.",
      latencies: "Add at least one region with your ping to it.",
    })[rule.type] || "Fill this in.",
  not_number: () => "Enter a number, like 1500.",
  not_string: () => "Enter some text.",
  too_long: (rule, problem) => `Use at most ${problem.max_length} characters.`,
  not_string_list: () => "Enter at least one value; separate values with commas.",
  too_many_items: (rule, problem) => `Use at most ${problem.max_items} values.`,
  too_many_regions: (rule, problem) => `List at most ${problem.max_regions} regions.`,
  not_latency_map: () => "Add at least one region with your ping to it.",
  bad_region_name: () => "Give every row a region name.",
  bad_latency: (rule, problem) => `Give ${problem.region} a ping of 0 ms or more.`,
  // This page's own: the API takes an object, which cannot repeat a region.
  duplicate_region: (rule, problem) => `List each region once: ${problem.region} is there twice.`,
};

function plainProblem(rule, problem) {
  const words = Object.hasOwn(PROBLEM_WORDS, problem.code) ? PROBLEM_WORDS[problem.code] : null;
  return words ? words(rule, problem) : sentence(problem.message);
}

// The API's refusal as problems by attribute name: its codes, with its words beside them.
function attributeProblems(error) {
  const codes = (error.problems && error.problems.attributes) || {};
  return Object.fromEntries(
    Object.entries(error.fields.attributes).map(([name, message]) => [name, { ...codes[name], message }]),
  );
}

// Field errors next to their inputs; anything that names no input of this form is the form's.
function showAttributeErrors(profile, errors) {
  clearFieldErrors(ui.form);
  const set = fieldSets.get(profile.name);
  const stale = [];
  let first = null;
  for (const [name, problem] of Object.entries(errors)) {
    const index = profile.parsed.attributeRules.findIndex((rule) => rule.name === name);
    // A number the page asked for that the server now takes from ratings: the rules changed.
    const rated = problem.code === "set_by_server";
    if (index < 0 || rated || profile.parsed.attributeRules[index].rating) {
      stale.push(name);
      continue;
    }
    const rule = profile.parsed.attributeRules[index];
    const field = set.querySelector(`[data-attr="${index}"]`);
    const slot = field.querySelector(".field-error");
    slot.textContent = plainProblem(rule, problem);
    slot.hidden = false;
    let input = field.querySelector("input");
    if (rule.type === "latencies") {
      // The row the problem is about: the region whose ping is wrong, else one with no name.
      const region = problem.code === "bad_latency" ? String(problem.region) : null;
      const rows = [...field.querySelectorAll(".latency-row")];
      const row =
        region !== null
          ? rows.find((item) => item.querySelector("[data-part=region]").value.trim() === region)
          : rows.find((item) => !item.querySelector("[data-part=region]").value.trim());
      if (row) input = row.querySelector(region !== null ? "[data-part=ms]" : "[data-part=region]");
      field.setAttribute("aria-invalid", "true");
    }
    if (input) input.setAttribute("aria-invalid", "true");
    first = first || input || field.querySelector("button");
  }
  if (stale.length) {
    // The rules changed since the page loaded them: load them again, with inputs to match.
    loadProfiles().then(() =>
      showMessage(ui.queueError, "This queue’s rules have just changed. Check your details and try again."),
    );
  } else if (first) {
    showMessage(ui.queueError, "Check the highlighted details.");
  }
  if (first) first.focus();
  return Boolean(first || stale.length);
}

function fillForm(ticket) {
  const profile = state.profiles && state.profiles.get(ticket.profile);
  if (!profile) return;
  if (!fieldSets.has(profile.name)) fieldSets.set(profile.name, buildFields(profile));
  const set = fieldSets.get(profile.name);
  profile.parsed.attributeRules.forEach((rule, index) => {
    const value = ticket.attributes ? ticket.attributes[rule.name] : undefined;
    if (value === undefined || rule.rating) return;
    const field = set.querySelector(`[data-attr="${index}"]`);
    if (rule.type === "latencies") {
      const rows = field.querySelector(".latency-rows");
      rows.replaceChildren();
      for (const [region, ms] of Object.entries(value)) addLatencyRow(rows, fieldId(profile, index), region, ms);
    } else {
      field.querySelector("input").value = Array.isArray(value) ? value.join(", ") : String(value);
    }
  });
}

ui.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  if (state.submitting || !state.profiles) return;
  clearFieldErrors(ui.form);
  showMessage(ui.queueError, "");
  const profile = state.profiles.get(state.selected);
  const { attributes, problems } = collect(profile);
  if (Object.keys(problems).length) {
    showAttributeErrors(profile, problems);
    return;
  }
  state.submitting = true;
  ui.find.disabled = true;
  ui.find.textContent = "Joining the queue…";
  try {
    const ticket = await api("POST", TICKETS, { profile: profile.name, attributes });
    showTicket(ticket, { focus: true });
  } catch (error) {
    if (error.code === "invalid" && error.fields && error.fields.attributes) {
      showAttributeErrors(profile, attributeProblems(error));
    } else if (error.code === "already_queued") {
      await resumeElsewhere(error);
    } else if (error.code === "profile_not_found") {
      showMessage(ui.queueError, "This queue has just closed. Choose another one.");
      loadProfiles();
    } else {
      showMessage(ui.queueError, error.message);
    }
  } finally {
    state.submitting = false;
    ui.find.disabled = false;
    ui.find.textContent = "Find a match";
  }
});

// A 409 already_queued: the player searches in another queue (another tab, a game client). The
// API has no "my tickets" call, but this page's own view knows the ticket: read it from there.
async function resumeElsewhere(error) {
  let ticket = null;
  try {
    const response = await fetch(window.location.pathname, {
      credentials: "same-origin",
      headers: { Accept: "text/html" },
    });
    if (response.ok) {
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const script = page.getElementById("queue-config");
      ticket = script ? JSON.parse(script.textContent).ticket : null;
    }
  } catch {
    ticket = null;
  }
  if (!ticket) {
    showMessage(ui.queueError, `${error.message} Cancel that search first, then try again.`);
    return;
  }
  const where = profileTitle(state.profiles.get(ticket.profile), ticket.profile);
  showTicket(ticket, { focus: true });
  showMessage(
    ui.note,
    `You were already searching in ${where}, so here is that search. Cancel it to queue elsewhere.`,
  );
}

// --- The ticket ------------------------------------------------------------------------------

function iQueued(ticket) {
  return !ticket.players || ticket.players[0] === me.id;
}

function showTicket(ticket, { focus = false } = {}) {
  const before = state.ticket;
  applyTicket(ticket, { force: true });
  if (focus && state.ticket && state.ticket.id === ticket.id && before !== state.ticket) {
    ui.title.focus();
  }
}

/**
 * The one place a ticket snapshot (POST, GET, DELETE answers and `ticket.updated` events) is
 * applied. A ticket's status only moves from `searching` to a final one, and its expansion step
 * only grows: an older view arriving late is ignored.
 */
function applyTicket(ticket, { force = false, fromEvent = false, navigate = true } = {}) {
  if (!ticket || !ticket.id) return;
  const current = state.ticket;
  let stepChanged = false;
  if (!current || current.id !== ticket.id) {
    if (current && current.status === "searching" && !force) return; // another, older ticket's news
    if (fromEvent && ticket.status !== "searching") return; // the end of a ticket not shown here
    state.ticket = ticket;
    showMessage(ui.note, "");
    showMessage(ui.ticketError, "");
    fillForm(ticket);
    if (state.profiles && state.profiles.has(ticket.profile)) {
      state.selected = ticket.profile;
      const radio = ui.choices.querySelector(`input[value="${CSS.escape(ticket.profile)}"]`);
      if (radio) radio.checked = true;
      showFields();
    }
  } else {
    if (FINAL.has(current.status)) return;
    if (ticket.status === "searching" && ticket.expansion_step < current.expansion_step) return;
    stepChanged = ticket.status === "searching" && ticket.expansion_step > current.expansion_step;
    state.ticket = ticket;
  }
  remember(STORAGE_KEY, ticket.status === "searching" ? ticket.id : null);
  const ended = FINAL.has(ticket.status) && !(current && current.id === ticket.id && FINAL.has(current.status));
  if (ticket.status === "matched" && ticket.lobby_id && navigate) {
    goToLobby(ticket.lobby_id);
  }
  render();
  if (stepChanged) {
    const steps = stepsOf(ticket);
    announce(`Your search now uses looser rules: step ${ticket.expansion_step + 1}${steps ? ` of ${steps}` : ""}.`);
  }
  if (ended) {
    schedulePoll(); // stops polling
    const active = document.activeElement;
    if (!active || active === document.body || active.closest("[hidden]") || active === ui.cancel) {
      ui.title.focus();
    }
  } else {
    schedulePoll();
  }
}

function goToLobby(lobbyId) {
  if (state.leaving) return;
  state.leaving = true;
  stream.stop();
  window.clearTimeout(pollTimer);
  remember(STORAGE_KEY, null);
  window.location.assign(roomUrl(lobbyId));
}

function stepsOf(ticket) {
  const profile = state.profiles && state.profiles.get(ticket.profile);
  return profile ? profile.parsed.steps.length : 0;
}

function ticketCopy(ticket, profile) {
  const where = profileTitle(profile, ticket.profile);
  const pc = profile && profile.parsed.steps[0].rules[profile.parsed.playerCount];
  const shape = pc ? ` (${teamShape(pc)})` : "";
  // Its own time to live: a profile's `ticket_ttl` changes only tickets made after the change.
  const ttl = (Date.parse(ticket.expires_at) - Date.parse(ticket.created_at)) / 1000;
  switch (ticket.status) {
    case "searching":
      return {
        badge: "Searching",
        title: "Looking for a match",
        text: `In ${where}${shape}. Stay on this page: it takes you to your lobby as soon as a match forms.${
          iQueued(ticket) ? "" : " Your party’s leader queued you, and only they can cancel."
        }`,
      };
    case "matched":
      return {
        badge: "Matched",
        title: "Match found",
        text: state.leaving ? "Taking you to your lobby…" : "Your search found a match. Its lobby has your relay details.",
      };
    case "expired":
      return {
        badge: "Expired",
        title: "No match this time",
        text:
          `Nobody fit your search in ${where} within ${seconds(ttl)}. ` +
          "Queue again, perhaps with a wider range, more values or more regions.",
      };
    default:
      return state.cancelledHere.has(ticket.id)
        ? {
            badge: "Cancelled",
            title: "You left the queue",
            text: `Your search in ${where} is cancelled. Queue again whenever you like.`,
          }
        : {
            badge: "Cancelled",
            title: "Your search was cancelled",
            text:
              "It ended outside this page: from another tab or a game client, by your party, " +
              "or because you joined a lobby.",
          };
  }
}

function setText(element, text) {
  // Only when it changes: these are in a live region, which speaks on every change.
  if (element.textContent !== text) element.textContent = text;
}

function renderTicket() {
  const ticket = state.ticket;
  const profile = state.profiles && state.profiles.get(ticket.profile);
  const copy = ticketCopy(ticket, profile);
  const searching = ticket.status === "searching";
  ui.ticket.dataset.status = ticket.status;
  setText(ui.badge, copy.badge);
  setText(ui.title, copy.title);
  setText(ui.text, copy.text);
  ui.searching.hidden = !searching;
  ui.connection.hidden = !searching;
  ui.cancel.hidden = !searching || !iQueued(ticket);
  ui.cancel.setAttribute("aria-disabled", String(state.cancelling));
  ui.cancel.textContent = state.cancelling ? "Cancelling…" : "Cancel search";
  ui.again.hidden = searching || ticket.status === "matched";
  ui.lobbyLink.hidden = !(ticket.status === "matched" && ticket.lobby_id);
  if (ticket.lobby_id) ui.lobbyLink.href = roomUrl(ticket.lobby_id);

  const attributes = ticket.attributes || {};
  const rated = attributes[RATED_KEY] || {};
  const entries = Object.entries(attributes).filter(([name]) => name !== RATED_KEY);
  const tags = entries.map(([name, value]) => {
    let shown;
    if (rated[name]) shown = `${Math.round(value)} (from ${rated[name].leaderboard} ratings)`;
    else if (Array.isArray(value)) shown = value.join(", ");
    else if (value && typeof value === "object") {
      shown = Object.entries(value).map(([region, ms]) => `${region} ${ms} ms`).join(", ");
    } else shown = String(value);
    return h("span", { class: "tag tag--quiet" }, `${label(name)}: ${shown}`);
  });
  if (!tags.length) tags.push(h("span", { class: "muted" }, "No details needed."));
  ui.ticketAttributes.replaceChildren(...tags);

  const why = explain(ticket.explanation);
  const lead = h("strong", {}, why.lead);
  ui.blocked.replaceChildren(lead, why.detail ? h("span", { class: "muted small" }, why.detail) : "");
  tick();
}

// The clocks: how long the search has waited, when it expires, when its rules loosen.
function tick() {
  const ticket = state.ticket;
  if (!ticket || ticket.status !== "searching") return;
  const now = Date.now();
  const waited = (now - Date.parse(ticket.created_at)) / 1000;
  ui.waited.textContent = clock(waited);
  const left = (Date.parse(ticket.expires_at) - now) / 1000;
  ui.expires.textContent = left > 0 ? `gives up in ${clock(left)}` : "giving up now";
  const profile = state.profiles && state.profiles.get(ticket.profile);
  const step = ticket.expansion_step;
  if (!profile) {
    ui.step.textContent = step ? `Looser rules, step ${step + 1}` : "The starting rules";
    return;
  }
  const steps = profile.parsed.steps;
  if (steps.length === 1) {
    ui.step.textContent = "This queue’s rules stay the same while you wait.";
    return;
  }
  const at = Math.min(step, steps.length - 1);
  const name = at === 0 ? "the starting rules" : `looser rules, after ${seconds(steps[at].after)}`;
  let next = "These are the loosest rules.";
  if (at < steps.length - 1) {
    const inSeconds = steps[at + 1].after - waited;
    next = inSeconds > 0 ? `Looser in ${seconds(inSeconds)}.` : "Looser at the next check.";
  }
  ui.step.textContent = `Step ${at + 1} of ${steps.length}: ${name}. ${next}`;
}

ui.cancel.addEventListener("click", async () => {
  const ticket = state.ticket;
  if (!ticket || state.cancelling || ticket.status !== "searching") return;
  state.cancelling = true;
  state.cancelledHere.add(ticket.id); // the event may arrive before the answer
  showMessage(ui.ticketError, "");
  renderTicket();
  try {
    applyTicket(await api("DELETE", `${TICKETS}/${ticket.id}`));
  } catch (error) {
    state.cancelledHere.delete(ticket.id);
    if (error.code === "ticket_matched") {
      // Too late: the match formed meanwhile. Its lobby is where the player belongs now.
      try {
        applyTicket(await api("GET", `${TICKETS}/${ticket.id}`));
      } catch {
        showMessage(ui.ticketError, error.message);
      }
    } else if (error.code === "ticket_not_found") {
      forget("That search no longer exists.");
    } else {
      showMessage(ui.ticketError, error.message);
    }
  } finally {
    state.cancelling = false;
    if (state.ticket) renderTicket();
  }
});

ui.again.addEventListener("click", () => {
  forget("");
  const first = ui.form.querySelector("#attribute-fields input") || ui.choices.querySelector("input:checked");
  if (first) first.focus();
});

// Back to the form (the values typed, or the last ticket's, are still in it).
function forget(message) {
  state.ticket = null;
  remember(STORAGE_KEY, null);
  schedulePoll();
  render();
  showMessage(ui.queueError, message);
}

// --- Polling the explanation, following the stream -------------------------------------------

let pollTimer = null;
let polling = false;

function schedulePoll(delay = POLL_MS) {
  window.clearTimeout(pollTimer);
  const ticket = state.ticket;
  if (!ticket || ticket.status !== "searching" || state.leaving || document.hidden) return;
  pollTimer = window.setTimeout(poll, delay);
}

async function poll() {
  const ticket = state.ticket;
  if (!ticket || ticket.status !== "searching" || polling) return;
  polling = true;
  try {
    applyTicket(await api("GET", `${TICKETS}/${ticket.id}`));
    if (ui.ticketError.textContent.startsWith("Could not refresh")) showMessage(ui.ticketError, "");
  } catch (error) {
    if (error.code === "ticket_not_found" && state.ticket && state.ticket.id === ticket.id) {
      forget("Your search is gone. Queue again.");
    } else if (state.ticket && state.ticket.id === ticket.id) {
      const text = `Could not refresh your search. ${error.message}`;
      if (ui.ticketError.textContent !== text) showMessage(ui.ticketError, text);
    }
  } finally {
    polling = false;
    schedulePoll();
  }
}

document.addEventListener("visibilitychange", () => {
  if (document.hidden) window.clearTimeout(pollTimer);
  else schedulePoll(0);
});

function onEvent(event) {
  if (event.type === "ticket.updated") applyTicket(event.data, { fromEvent: true });
}

const setConnection = connectionIndicator(ui.connection, ui.connectionText);

const stream = new EventStream({
  after: config.after,
  onEvent,
  onStatus: setConnection,
  onSignedOut: () => {
    const text = "You are signed out. Reload the page to choose a display name again.";
    showMessage(state.ticket ? ui.ticketError : ui.queueError, text);
  },
});

// --- Rendering -------------------------------------------------------------------------------

function render() {
  const view = state.ticket ? "ticket" : state.profiles ? "form" : "loading";
  ui.queue.dataset.view = view;
  ui.queue.setAttribute("aria-busy", String(view === "loading"));
  ui.formCard.hidden = view === "ticket";
  ui.ticket.hidden = view !== "ticket";
  if (view === "ticket") renderTicket();
  renderRules();
}

function renderRules() {
  const name = state.ticket ? state.ticket.profile : state.selected;
  const profile = state.profiles && name ? state.profiles.get(name) : null;
  ui.rulesCard.hidden = !profile;
  if (!profile) return;
  const current = state.ticket && state.ticket.status === "searching" ? state.ticket.expansion_step : null;
  const pc = profile.parsed.steps[0].rules[profile.parsed.playerCount];
  const shape = pc ? `: ${teamShape(pc)}` : "";
  ui.rulesSummary.textContent =
    `${profileTitle(profile)}${shape}. A search gives up after ${seconds(profile.ticket_ttl)}.`;
  const items = profile.parsed.steps.map((step, index) => {
    const lines =
      index === 0
        ? [profile.parsed.playerCount, ...profile.parsed.attributeRules.map((rule) => rule.name)]
            .filter(Boolean)
            .map((ruleName) => describeRule(step.rules[ruleName]))
        : step.changes.map(describeChange);
    const here = current !== null && Math.min(current, profile.parsed.steps.length - 1) === index;
    return h(
      "li",
      { class: `step${here ? " step--current" : ""}`, "aria-current": here ? "step" : false },
      h(
        "p",
        { class: "step__when" },
        index === 0 ? "From the start" : `After ${seconds(step.after)} of waiting`,
        here ? h("span", { class: "badge badge--ready" }, "Your search") : null,
      ),
      h("ul", { class: "step__rules" }, lines.map((line) => h("li", {}, line))),
    );
  });
  ui.rulesSteps.replaceChildren(...items);
}

// --- Start -----------------------------------------------------------------------------------

window.setInterval(tick, 1000);

async function start() {
  let ticket = config.ticket;
  const stored = recall(STORAGE_KEY);
  if (!ticket && stored) {
    // A search this tab started and the server no longer lists as searching: how did it end?
    try {
      ticket = await api("GET", `${TICKETS}/${encodeURIComponent(stored)}`);
    } catch {
      ticket = null;
    }
    if (!ticket) remember(STORAGE_KEY, null);
  }
  if (ticket) applyTicket(ticket, { navigate: false });
  else render();
  stream.start();
  await loadProfiles();
  if (state.ticket) {
    fillForm(state.ticket);
    render();
  }
}

start();
