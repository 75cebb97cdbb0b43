// The lobby room's chat (issue 15): the last messages on load, new ones live from the room's
// event stream (room.js re-dispatches every event as a "room:event" DOM event, so the page keeps
// one socket), sending, muting and reporting. Every text goes in with textContent: a message
// is shown as the text it is, never as HTML.

import { api, h } from "./api.js";

const config = JSON.parse(document.getElementById("room-config").textContent);
const me = config.me;
const base = `/api/v1/lobbies/${config.lobbyId}`;
const $ = (id) => document.getElementById(id);

const ui = {
  box: $("chat"),
  log: $("chat-log"),
  form: $("chat-form"),
  text: $("chat-text"),
  error: $("chat-error"),
  dialog: $("report-dialog"),
  reportForm: $("report-form"),
  reportWho: $("report-who"),
  reportError: $("report-error"),
};

const seen = new Set(); // message ids shown: a replayed event is not shown twice
const muted = new Set();
let loaded = false;
let reportTarget = null;

function showError(element, text) {
  element.textContent = text || "";
  element.hidden = !text;
}

function line(message) {
  const mine = message.sender_id === me.id;
  const tools = mine
    ? []
    : [
        h("button", {
          type: "button",
          class: "btn btn--ghost btn--small",
          dataset: { action: "mute", player: message.sender_id },
          "aria-label": `Mute ${message.display_name}`,
          text: "Mute",
        }),
        h("button", {
          type: "button",
          class: "btn btn--ghost btn--small",
          dataset: { action: "report", player: message.sender_id, name: message.display_name },
          "aria-label": `Report ${message.display_name}`,
          text: "Report",
        }),
      ];
  return h(
    "li",
    { class: mine ? "chat__line chat__line--mine" : "chat__line", dataset: { sender: message.sender_id, id: message.id } },
    h("span", { class: "chat__who", text: `${message.display_name}:` }),
    " ",
    h("span", { class: "chat__text", text: message.text }),
    h("span", { class: "chat__tools" }, ...tools),
  );
}

function append(message) {
  if (seen.has(message.id) || muted.has(message.sender_id)) return;
  seen.add(message.id);
  const atBottom = ui.log.scrollTop + ui.log.clientHeight >= ui.log.scrollHeight - 8;
  ui.log.append(line(message));
  if (atBottom) ui.log.scrollTop = ui.log.scrollHeight;
}

async function load() {
  try {
    const body = await api("GET", `${base}/messages`);
    ui.box.hidden = false;
    loaded = true;
    body.messages.forEach(append);
    ui.log.scrollTop = ui.log.scrollHeight;
  } catch {
    ui.box.hidden = true; // not a member (yet): the room shows the join prompt
  }
}

document.addEventListener("room:event", (event) => {
  const { type, data } = event.detail || {};
  if (type === "lobby.message" && data && data.lobby_id === config.lobbyId) {
    if (loaded) append(data);
  } else if (type === "lobby.updated" && data && data.id === config.lobbyId && !loaded) {
    if (data.members.some((member) => member.id === me.id)) load(); // just joined
  } else if (type === "lobby.closed" || type === "lobby.kicked" || type === "player.banned") {
    ui.form.hidden = true;
  }
});

ui.form.addEventListener("submit", async (event) => {
  event.preventDefault();
  const text = ui.text.value;
  if (!text.trim()) return;
  showError(ui.error, "");
  try {
    append(await api("POST", `${base}/messages`, { text }));
    ui.text.value = "";
  } catch (error) {
    showError(ui.error, error.message);
  }
  ui.text.focus();
});

ui.log.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button) return;
  const playerId = Number(button.dataset.player);
  if (button.dataset.action === "mute") {
    try {
      await api("POST", "/api/v1/players/me/mutes", { player_id: playerId });
      muted.add(playerId);
      for (const row of ui.log.querySelectorAll(`li[data-sender="${playerId}"]`)) row.remove();
    } catch (error) {
      showError(ui.error, error.message);
    }
  } else if (button.dataset.action === "report") {
    reportTarget = playerId;
    ui.reportWho.textContent = button.dataset.name;
    showError(ui.reportError, "");
    ui.dialog.showModal();
  }
});

ui.reportForm.addEventListener("submit", async (event) => {
  if (event.submitter && event.submitter.value === "cancel") return; // the dialog closes
  event.preventDefault();
  const form = new FormData(ui.reportForm);
  try {
    await api("POST", `${base}/reports`, {
      player_id: reportTarget,
      reason: form.get("reason"),
      note: form.get("note") || "",
    });
    ui.dialog.close();
    ui.reportForm.reset();
    showError(ui.error, "");
    $("chat-notice").textContent = "Thanks: your report and the recent messages went to the operators.";
  } catch (error) {
    showError(ui.reportError, error.message);
  }
});

load();
