// Shared by every page: calls to the HTTP API v1, its errors in plain words, copy buttons and
// screen-reader announcements. The player's event stream is stream.js. No build step: a plain
// ES module.

const JSON_TYPE = "application/json";

// --- Where things are ----------------------------------------------------------------------

const urls = document.body.dataset;
const NIL_UUID = "00000000-0000-0000-0000-000000000000";

export function roomUrl(lobbyId) {
  return urls.roomUrl.replace(NIL_UUID, encodeURIComponent(lobbyId));
}
export const browserUrl = urls.browserUrl;
export const entryUrl = urls.entryUrl;

// --- HTTP ----------------------------------------------------------------------------------

function cookie(name) {
  for (const part of document.cookie.split(";")) {
    const [key, ...rest] = part.trim().split("=");
    if (key === name) return decodeURIComponent(rest.join("="));
  }
  return "";
}

// Read on every call: signing in (creating a guest) rotates the CSRF token.
function csrfToken() {
  const field = document.querySelector("input[name=csrfmiddlewaretoken]");
  return cookie("csrftoken") || (field ? field.value : "");
}

export class ApiError extends Error {
  constructor({ status, code, message, fields = null, problems = null, retryAfter = null }) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.fields = fields;
    this.problems = problems; // `fields` as data (codes), where the API gives it
    this.retryAfter = retryAfter;
  }
}

export async function api(method, path, body, { signal } = {}) {
  const headers = { Accept: JSON_TYPE };
  const init = { method, headers, credentials: "same-origin", signal };
  if (method !== "GET" && method !== "HEAD") headers["X-CSRFToken"] = csrfToken();
  if (body !== undefined) {
    headers["Content-Type"] = JSON_TYPE;
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (error) {
    if (error.name === "AbortError") throw error;
    throw new ApiError({ status: 0, code: "network", message: plainError("network") });
  }
  const isJson = (response.headers.get("Content-Type") || "").includes(JSON_TYPE);
  const data = isJson ? await response.json().catch(() => null) : null;
  if (response.ok) return data;
  const error = (data && data.error) || {};
  const code = error.code || (response.status >= 500 ? "server_error" : "error");
  const header = response.headers.get("Retry-After");
  const retryAfter = error.retry_after ?? (header ? Number(header) : null);
  throw new ApiError({
    status: response.status,
    code,
    message: plainError(code, error.message, { status: response.status, retryAfter }),
    fields: error.fields || null,
    problems: error.problems || null,
    retryAfter,
  });
}

// --- Errors in plain words -----------------------------------------------------------------

// The API's error codes (lobby/errors.py and the services) as sentences a player can act on.
// `null` means the server's own message already says it best (it names players or fields).
const MESSAGES = {
  network: "We cannot reach the server. Check your connection and try again.",
  server_error: "Something went wrong on our side. Try again in a moment.",
  not_authenticated: "You are signed out. Reload the page to choose a display name again.",
  authentication_failed: "You are signed out. Reload the page to choose a display name again.",
  forbidden: "This page is out of date. Reload it and try again.",
  not_found: "That no longer exists.",
  method_not_allowed: "This page is out of date. Reload it and try again.",
  malformed_request: "This page is out of date. Reload it and try again.",
  unsupported_media_type: "This page is out of date. Reload it and try again.",
  too_large: "That is too much text. Shorten it and try again.",
  throttled: "You are going a little fast. Wait a few seconds and try again.",
  invalid: null,
  lobby_not_found: "There is no such lobby, or it is private and you are not in it.",
  wrong_code: "No open lobby has that code. Check it for typos, or ask the host for it again.",
  already_in_lobby: "You are already in a lobby. Leave it first, then try again.",
  kicked: null, // the server says until when the kick keeps the player out
  banned: null, // the server says until when, and why
  party_member_banned: null,
  cannot_mute_self: "You cannot mute yourself.",
  cannot_report_self: "You cannot report yourself.",
  already_reported: "You reported this player already; the operators are on it.",
  lobby_closed: "This lobby has closed.",
  lobby_started: "This lobby’s match has started and it takes no late joiners.",
  lobby_full: "This lobby is full.",
  not_a_member: null,
  not_host: "Only the host can do that.",
  wrong_state: null,
  cannot_kick_self: "You cannot kick yourself. Leave the lobby or end it instead.",
  not_enough_players: "At least two players are needed to start.",
  not_ready: null,
  busy: "The lobby is busy with another change. Try again.",
  no_assignment: "You have no relay assignment yet: the match has not started.",
  target_not_in_lobby: "That player is no longer in this lobby.",
  // Matchmaking
  already_queued: null, // the server names the queue you are already in
  profile_not_found: "That queue is closed or does not exist. Pick another one.",
  party_too_large: "Your party is larger than a team in this queue. Pick another queue.",
  not_party_leader: "Only your party’s leader can do that.",
  ticket_matched: "Too late to cancel: your match has been found.",
  ticket_not_found: "That search no longer exists. Start a new one.",
};

// DRF's stock validation sentences, said the way the rest of the page speaks.
const FIELD_PHRASES = [
  [/^This field (may not be blank|is required|may not be null)\.$/, () => "This cannot be empty."],
  [/^Ensure this field has no more than (\d+) characters\.$/, (n) => `Use at most ${n} characters.`],
  [/^Ensure this value is greater than or equal to (\d+)\.$/, (n) => `Use at least ${n}.`],
  [/^Ensure this value is less than or equal to (\d+)\.$/, (n) => `Use at most ${n}.`],
  [/^A valid integer is required\.$/, () => "Enter a whole number."],
  [/^"(.*)" is not a valid choice\.$/, (v) => `“${v}” is not one of the choices.`],
];

export function plainField(message) {
  for (const [pattern, say] of FIELD_PHRASES) {
    const match = pattern.exec(message);
    if (match) return say(...match.slice(1));
  }
  return message;
}

export function plainError(code, serverMessage = "", { status = 0, retryAfter = null } = {}) {
  if (code === "throttled" && retryAfter) {
    const seconds = Math.max(1, Math.ceil(Number(retryAfter)));
    return `You are going a little fast. Wait ${seconds} second${seconds === 1 ? "" : "s"} and try again.`;
  }
  if (code === "invalid" && serverMessage) {
    // "field: message" from the API: the page shows it next to the field, so say it plainly.
    const [, field, text] = /^([a-z_]+): (.*)$/.exec(serverMessage) || [null, null, serverMessage];
    const label = { display_name: "Display name", name: "Name", code: "Join code" }[field];
    return label ? `${label}: ${plainField(text)}` : plainField(text);
  }
  const known = MESSAGES[code];
  if (known) return known;
  if (serverMessage) return serverMessage;
  if (status >= 500) return MESSAGES.server_error;
  return "That did not work. Reload the page and try again.";
}

// Field errors from an `invalid` answer, next to their inputs (`<id-prefix>-<field>-error`).
export function showFieldErrors(form, prefix, fields) {
  clearFieldErrors(form);
  let first = null;
  for (const [name, messages] of Object.entries(fields || {})) {
    const input = form.elements.namedItem(name);
    const slot = document.getElementById(`${prefix}-${name}-error`);
    if (!slot || !input || !input.setAttribute) continue; // said in the form's own message
    slot.textContent = plainField(Array.isArray(messages) ? String(messages[0]) : String(messages));
    slot.hidden = false;
    input.setAttribute("aria-invalid", "true");
    first = first || input;
  }
  if (first) first.focus();
  return Boolean(first);
}

export function clearFieldErrors(form) {
  for (const input of form.querySelectorAll("[aria-invalid]")) input.removeAttribute("aria-invalid");
  for (const slot of form.querySelectorAll(".field-error")) {
    slot.textContent = "";
    slot.hidden = true;
  }
}

export function showMessage(element, text) {
  element.textContent = text || "";
  element.hidden = !text;
}

// --- Announcements and copying ---------------------------------------------------------------

export function announce(text) {
  const region = document.getElementById("announcer");
  if (!region) return;
  // Cleared first, so that the same sentence twice is announced twice.
  region.textContent = "";
  window.setTimeout(() => {
    region.textContent = text;
  }, 50);
}

export async function copyText(text) {
  try {
    if (navigator.clipboard && window.isSecureContext) {
      await navigator.clipboard.writeText(text);
      return true;
    }
  } catch {
    // Denied (no permission, not focused): the old way below still works in most browsers.
  }
  const scratch = document.createElement("textarea");
  scratch.value = text;
  scratch.setAttribute("readonly", "");
  scratch.className = "visually-hidden";
  document.body.appendChild(scratch);
  scratch.select();
  let copied = false;
  try {
    copied = document.execCommand("copy");
  } catch {
    copied = false;
  }
  scratch.remove();
  return copied;
}

// Buttons with `data-copy="<selector>"` copy that element's text, and say so.
export function bindCopyButtons(root = document) {
  root.addEventListener("click", async (event) => {
    const button = event.target.closest("[data-copy]");
    if (!button) return;
    const source = document.querySelector(button.dataset.copy);
    const text = source ? source.textContent.trim() : "";
    if (!text) return;
    await flashCopied(button, await copyText(text), button.dataset.copyWhat || "it");
  });
}

export async function flashCopied(button, copied, what) {
  const original = button.dataset.label || button.textContent;
  button.dataset.label = original;
  button.textContent = copied ? "Copied" : "Copy failed";
  button.classList.toggle("is-copied", copied);
  announce(copied ? `Copied ${what}.` : `Could not copy ${what}: select it and copy it by hand.`);
  window.clearTimeout(button._copyTimer);
  button._copyTimer = window.setTimeout(() => {
    button.textContent = original;
    button.classList.remove("is-copied");
  }, 2000);
}

// --- Building DOM ----------------------------------------------------------------------------

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs)) {
    if (value === false || value === null || value === undefined) continue;
    if (key === "class") element.className = value;
    else if (key === "text") element.textContent = value;
    else if (key.startsWith("on")) element.addEventListener(key.slice(2), value);
    else if (key === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(key, value === true ? "" : value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

// Re-render a container without losing keyboard focus: the focused control is found again
// by its `data-focus-key` and focused in the new markup.
export function replaceChildrenKeepingFocus(container, children) {
  const active = document.activeElement;
  const key = active && container.contains(active) ? active.dataset.focusKey : null;
  container.replaceChildren(...children);
  if (key) {
    const again = container.querySelector(`[data-focus-key="${CSS.escape(key)}"]`);
    if (again) again.focus();
  }
}

export const sleep = (ms) => new Promise((resolve) => window.setTimeout(resolve, ms));
