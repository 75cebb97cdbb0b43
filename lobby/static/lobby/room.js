// The lobby room: members and readiness, the host's controls, the lobby's state and, once the
// relay is up, this player's assignment. Kept current by the player's event stream.

import {
  announce,
  api,
  bindCopyButtons,
  copyText,
  flashCopied,
  h,
  replaceChildrenKeepingFocus,
  showMessage,
} from "./api.js";
import { EventStream, connectionIndicator } from "./stream.js";
import { sentence } from "./words.js";

const config = JSON.parse(document.getElementById("room-config").textContent);
const me = config.me;
const lobbyPath = `/api/v1/lobbies/${config.lobbyId}`;
const $ = (id) => document.getElementById(id);

const ui = {
  room: $("room"),
  name: $("lobby-name"),
  meta: $("lobby-meta"),
  codeBox: $("join-code-box"),
  code: $("join-code"),
  connection: $("connection"),
  connectionText: $("connection-text"),
  body: $("room-body"),
  eyebrow: $("status-eyebrow"),
  title: $("status-title"),
  text: $("status-text"),
  allocating: $("allocating"),
  elapsed: $("allocating-elapsed"),
  assignment: $("assignment"),
  ready: $("ready-toggle"),
  start: $("start-button"),
  actionError: $("action-error"),
  members: $("members"),
  memberCount: $("member-count"),
  leave: $("leave-button"),
  end: $("end-button"),
  joinPrompt: $("join-prompt"),
  joinPromptText: $("join-prompt-text"),
  joinButton: $("join-button"),
  joinError: $("join-prompt-error"),
  ended: $("ended"),
  endedTitle: $("ended-title"),
  endedText: $("ended-text"),
  confirm: $("confirm"),
};

const state = {
  lobby: null, // the latest snapshot (highest version wins)
  assignment: null, // this player's own assignment, when the match has started
  ended: null, // {kind, title, text}: closed, kicked, left, not found
  busy: false,
  allocatingSince: null,
};

const GATHERING = ["open", "failed"];
const STARTED = ["allocating", "ready"];

// --- Applying what the server says -----------------------------------------------------------

function applySnapshot(lobby) {
  if (!lobby || lobby.id !== config.lobbyId) return;
  if (state.lobby && lobby.version < state.lobby.version) return; // an older view: ignore
  const before = state.lobby;
  state.lobby = lobby;
  if (!STARTED.includes(lobby.state) && lobby.state !== "failed") state.assignment = null;
  if (before) announceChanges(before, lobby);
  const wasMember = before && isMember(before);
  if (wasMember && !isMember(lobby) && lobby.state !== "closed" && !state.ended) {
    end("left", "You left this lobby", "You are no longer in this lobby.");
    return;
  }
  if (lobby.state === "closed" && !state.ended) {
    end("closed", "This lobby has closed", "The lobby is over.");
    return;
  }
  render();
}

function applyAssignment(assignment) {
  if (!assignment || assignment.lobby_id !== config.lobbyId) return;
  const wasReady = state.assignment && state.assignment.status === "ready";
  state.assignment = assignment;
  if (assignment.status === "ready" && !wasReady) {
    announce(`Your relay is ready. You are the ${assignment.role}.`);
  }
  render();
}

const CLOSED_REASONS = {
  ended: (byMe) =>
    byMe
      ? ["You ended the lobby", "Everyone has been told, and the relay session is being shut down."]
      : ["The host ended the lobby", "The match is over. Thanks for playing!"],
  empty: () => ["This lobby has closed", "Everyone left, so the lobby closed."],
  host_left: () => ["The host left", "The host was the game’s server, so the match ended."],
  abandoned: () => ["This lobby has closed", "Nobody was active in it for a while, so it closed."],
  ended_by_operator: () => [
    "This lobby was closed",
    "The service’s operator ended it. Find another lobby to play.",
  ],
};

function onEvent(event) {
  const data = event.data || {};
  // Other modules of the page (chat.js) hear the same stream: one socket per page.
  document.dispatchEvent(new CustomEvent("room:event", { detail: event }));
  switch (event.type) {
    case "player.banned":
      end("banned", "You are banned", data.message || "An operator banned you.");
      break;
    case "lobby.updated":
      applySnapshot(data);
      break;
    case "relay.assignment":
      applyAssignment(data);
      break;
    case "lobby.closed": {
      if (data.lobby_id !== config.lobbyId || state.ended) break;
      const hostIsMe = state.lobby && state.lobby.host_id === me.id;
      const say = CLOSED_REASONS[data.reason];
      const [title, text] = say
        ? say(hostIsMe)
        : ["This lobby has closed", "Find another lobby to play."]; // never a raw reason code
      end("closed", title, text);
      break;
    }
    case "lobby.kicked":
      if (data.lobby_id !== config.lobbyId) break;
      end(
        "kicked",
        "You were removed from the lobby",
        "The host removed you from this lobby; you can rejoin it after a cooldown. Find another one to play meanwhile.",
      );
      break;
    default:
      break; // other pages' events (matchmaking tickets...)
  }
}

function end(kind, title, text) {
  state.ended = { kind, title, text };
  stream.stop();
  render();
  announce(`${title}. ${text}`);
  ui.endedTitle.focus();
}

function isMember(lobby) {
  return lobby.members.some((member) => member.id === me.id);
}

function announceChanges(before, after) {
  const old = new Map(before.members.map((member) => [member.id, member]));
  const now = new Map(after.members.map((member) => [member.id, member]));
  const said = [];
  const shown = []; // who came, went or took over as host: shown to everyone for a moment
  for (const member of after.members) {
    const was = old.get(member.id);
    const itsMe = member.id === me.id;
    if (!was) said.push(`${member.display_name} joined.`);
    if (!was) shown.push(`${member.display_name} joined.`);
    else if (was.ready !== member.ready) {
      const who = itsMe ? "You are" : `${member.display_name} is`;
      said.push(`${who} ${member.ready ? "ready" : "not ready"}.`);
    }
    if (was && !was.is_host && member.is_host) {
      const host = member.id === me.id ? "You are now the host." : `${member.display_name} is now the host.`;
      said.push(host);
      shown.push(host);
    }
  }
  for (const member of before.members) {
    if (!now.has(member.id) && member.id !== me.id) {
      said.push(`${member.display_name} left.`);
      shown.push(`${member.display_name} left.`);
    }
  }
  if (said.length) announce(said.join(" "));
  if (shown.length) showBriefly(shown.join(" "));
}

function showBriefly(text) {
  // Screen readers already hear it from the announcer: this copy is for the eyes only.
  let box = document.getElementById("room-news");
  if (!box) {
    box = document.createElement("p");
    box.id = "room-news";
    box.className = "room-news";
    box.setAttribute("aria-hidden", "true");
    document.getElementById("room").prepend(box);
  }
  box.textContent = text;
  box.hidden = false;
  window.clearTimeout(showBriefly.timer);
  showBriefly.timer = window.setTimeout(() => {
    box.hidden = true;
  }, 6000);
}

// --- Rendering -------------------------------------------------------------------------------

function render() {
  const { lobby, ended } = state;
  ui.room.setAttribute("aria-busy", String(!lobby && !ended));
  if (ended) {
    ui.room.dataset.state = ended.kind;
    ui.body.hidden = true;
    ui.joinPrompt.hidden = true;
    ui.codeBox.hidden = true;
    ui.connection.hidden = true;
    ui.ended.hidden = false;
    ui.ended.dataset.kind = ended.kind;
    ui.endedTitle.textContent = ended.title;
    ui.endedText.textContent = ended.text;
    if (lobby) renderHead(lobby);
    stopElapsed();
    return;
  }
  if (!lobby) return;
  renderHead(lobby);
  const member = isMember(lobby);
  ui.room.dataset.state = lobby.state;
  ui.body.hidden = !member;
  ui.joinPrompt.hidden = member;
  // A lobby made by the matcher takes no one else: its code would only mislead.
  const fromMatch = Boolean(lobby.metadata && lobby.metadata.profile);
  ui.codeBox.hidden = !(member && lobby.join_code) || fromMatch;
  ui.code.textContent = lobby.join_code || "";
  if (!member) {
    const full = lobby.member_count >= lobby.max_players;
    ui.joinPromptText.textContent = full
      ? "It is full right now. This page updates when a seat frees up."
      : "It has a free seat: join to play.";
    ui.joinButton.disabled = full;
    return;
  }
  renderStatus(lobby);
  renderMembers(lobby);
}

function renderHead(lobby) {
  document.title = `${lobby.name} · Relay Lobby`;
  ui.name.textContent = lobby.name;
  const tags = [];
  if (lobby.mode) tags.push(h("span", { class: "tag" }, h("span", { class: "visually-hidden" }, "Mode: "), lobby.mode));
  if (lobby.region) tags.push(h("span", { class: "tag tag--region" }, h("span", { class: "visually-hidden" }, "Region: "), lobby.region));
  tags.push(h("span", { class: "tag tag--quiet" }, lobby.visibility === "private" ? "Private" : "Public"));
  ui.meta.replaceChildren(...tags);
}

function names(members) {
  const list = members.map((member) => (member.id === me.id ? "you" : member.display_name));
  if (list.length <= 1) return list.join("");
  return `${list.slice(0, -1).join(", ")} and ${list[list.length - 1]}`;
}

function statusOf(lobby) {
  const iAmHost = lobby.host_id === me.id;
  const host = lobby.members.find((member) => member.is_host);
  const hostName = host ? host.display_name : "the host";
  const notReady = lobby.members.filter((member) => !member.ready);
  const assignment = state.assignment;
  if (lobby.state === "failed") {
    return {
      badge: "Failed",
      title: "The relay could not be set up",
      text: `${sentence(lobby.failure_reason, "unknown")} ${
        iAmHost
          ? "Make sure everyone is still ready, then start again."
          : `Waiting for ${hostName} (the host) to start again.`
      }`,
    };
  }
  if (lobby.state === "open") {
    const count = lobby.members.length;
    if (count < 2) {
      return {
        badge: "Open",
        title: "Waiting for players",
        text: `At least 2 players are needed to start; ${count} is here. Share the join code with your friends.`,
      };
    }
    if (notReady.length) {
      const mine = notReady.some((member) => member.id === me.id);
      const verb = notReady.length === 1 && !mine ? "gets" : "get";
      return {
        badge: "Open",
        title: "Waiting for everyone to be ready",
        text: `Waiting until ${names(notReady)} ${verb} ready.${mine ? " Press “I’m ready” when you are." : ""}`,
      };
    }
    return {
      badge: "Open",
      title: "Everyone is ready",
      text: iAmHost
        ? "Start the match when you like."
        : `Waiting for ${hostName} (the host) to start the match.`,
    };
  }
  if (assignment && assignment.status === "failed") {
    return {
      badge: "Failed",
      title: "The relay refused your seat",
      text: sentence(assignment.error, "unknown"),
    };
  }
  if (lobby.state === "ready" && assignment && assignment.status === "ready") {
    return {
      badge: "Ready",
      title: "Your relay is ready",
      text:
        assignment.role === "server"
          ? "You are the server: your game hosts the match, and the others reach you through the relay."
          : `You are a client: your game connects to ${hostName}’s game through the relay.`,
    };
  }
  if (lobby.state === "ready") {
    return {
      badge: "Ready",
      title: "Getting your seat on the relay",
      text: "The relay is up; your seat on it is being set up. This takes a moment.",
      working: true,
    };
  }
  return {
    badge: "Allocating",
    title: "Allocating a relay",
    text: "Asking for a relay near the players. Your connection details appear here when it is ready.",
    working: true,
  };
}

function renderStatus(lobby) {
  const status = statusOf(lobby);
  const iAmHost = lobby.host_id === me.id;
  const mine = lobby.members.find((member) => member.id === me.id);
  // Only touched when changed: the block is a live region, read out on every change.
  if (ui.title.textContent !== status.title) ui.title.textContent = status.title;
  if (ui.text.textContent !== status.text) ui.text.textContent = status.text;
  if (ui.eyebrow.textContent !== status.badge) ui.eyebrow.textContent = status.badge;
  ui.eyebrow.dataset.badge = status.badge.toLowerCase();

  if (status.working) startElapsed();
  else stopElapsed();
  ui.allocating.hidden = !status.working;

  const assignment = state.assignment;
  const showAssignment = Boolean(assignment && assignment.status === "ready" && assignment.relay);
  ui.assignment.hidden = !showAssignment;
  if (showAssignment) renderAssignment(assignment);

  const gathering = GATHERING.includes(lobby.state);
  ui.ready.hidden = !gathering;
  ui.ready.setAttribute("aria-pressed", String(Boolean(mine && mine.ready)));
  // Busy: announced and inert, but still focusable (a disabled button would drop focus).
  ui.ready.setAttribute("aria-disabled", String(state.busy));
  const canStart = lobby.members.length >= 2 && lobby.members.every((member) => member.ready);
  ui.start.hidden = !(iAmHost && gathering);
  ui.start.disabled = !canStart;
  ui.start.setAttribute("aria-disabled", String(state.busy));
  ui.start.textContent = lobby.state === "failed" ? "Start again" : "Start match";

  ui.memberCount.textContent = `${lobby.members.length} of ${lobby.max_players} seats taken`;
  ui.leave.hidden = false;
  ui.leave.setAttribute("aria-disabled", String(state.busy));
  ui.end.hidden = !iAmHost;
  ui.end.setAttribute("aria-disabled", String(state.busy));
}

function renderAssignment(assignment) {
  const role = assignment.role === "server" ? "Server" : "Client";
  $("as-role").textContent = role;
  $("as-role-help").textContent =
    assignment.role === "server" ? "(you host the game)" : "(you join the host’s game)";
  $("as-ip").textContent = assignment.relay.ip;
  $("as-host").textContent = assignment.relay.host && assignment.relay.host !== assignment.relay.ip
    ? `(${assignment.relay.host})`
    : "";
  $("as-port").textContent = String(assignment.relay.port);
  $("as-protocol").textContent = assignment.relay.protocol;
  $("as-session-token").textContent = String(assignment.session_authorization_token);
  $("as-user-token").textContent = String(assignment.user_authorization_token);
}

function renderMembers(lobby) {
  const iAmHost = lobby.host_id === me.id;
  const gathering = GATHERING.includes(lobby.state);
  const items = lobby.members.map((member) => {
    const itsMe = member.id === me.id;
    const controls = [];
    if (iAmHost && !itsMe) {
      if (gathering) {
        controls.push(
          h(
            "button",
            {
              type: "button",
              class: "btn btn--ghost btn--small",
              "aria-label": `Make ${member.display_name} the host`,
              "aria-disabled": String(state.busy),
              dataset: { action: "transfer", player: member.id, focusKey: `transfer-${member.id}` },
            },
            "Make host",
          ),
        );
      }
      controls.push(
        h(
          "button",
          {
            type: "button",
            class: "btn btn--danger-ghost btn--small",
            "aria-label": `Kick ${member.display_name}`,
            "aria-disabled": String(state.busy),
            dataset: { action: "kick", player: member.id, focusKey: `kick-${member.id}` },
          },
          "Kick",
        ),
      );
    }
    return h(
      "li",
      { class: `member${itsMe ? " member--me" : ""}`, dataset: { playerId: member.id } },
      h("span", { class: "avatar", "aria-hidden": "true" }, initials(member.display_name)),
      h(
        "span",
        { class: "member__who" },
        h("span", { class: "member__name" }, member.display_name),
        itsMe ? h("span", { class: "muted" }, " (you)") : null,
        member.is_host ? h("span", { class: "badge badge--host" }, "Host") : null,
      ),
      h(
        "span",
        { class: `badge ${member.ready ? "badge--ready" : "badge--waiting"}` },
        member.ready ? "Ready" : "Not ready",
      ),
      controls.length ? h("span", { class: "member__controls" }, controls) : null,
    );
  });
  replaceChildrenKeepingFocus(ui.members, items);
}

function initials(name) {
  const letters = name.trim().split(/\s+/).map((word) => [...word][0] || "");
  return letters.slice(0, 2).join("").toUpperCase() || "?";
}

let elapsedTimer = null;
function startElapsed() {
  if (elapsedTimer) return;
  state.allocatingSince = Date.now();
  ui.elapsed.textContent = "0";
  elapsedTimer = window.setInterval(() => {
    ui.elapsed.textContent = String(Math.round((Date.now() - state.allocatingSince) / 1000));
  }, 1000);
}
function stopElapsed() {
  window.clearInterval(elapsedTimer);
  elapsedTimer = null;
}

const setConnection = connectionIndicator(ui.connection, ui.connectionText);

// --- Actions ---------------------------------------------------------------------------------

async function act(work, errorSlot = ui.actionError) {
  if (state.busy) return;
  state.busy = true;
  const focused = document.activeElement;
  showMessage(errorSlot, "");
  render();
  try {
    await work();
  } catch (error) {
    if (error.code === "lobby_closed" || error.code === "lobby_not_found") {
      end("closed", "This lobby has closed", error.message);
    } else if (error.code === "not_a_member" && state.lobby && !isMember(state.lobby)) {
      end("left", "You are not in this lobby", error.message);
    } else {
      showMessage(errorSlot, error.message);
    }
  } finally {
    state.busy = false;
    render();
    keepFocus(focused);
  }
}

// When the control just used goes away (Start becomes the allocation, a kicked player's row
// disappears), keyboard focus moves to what changed instead of falling back to the page.
function keepFocus(previous) {
  const lost = !previous || !previous.isConnected || previous.closest("[hidden]") || previous.disabled;
  if (!lost || previous === document.body) return;
  const target = state.ended ? ui.endedTitle : ui.title;
  target.setAttribute("tabindex", "-1");
  target.focus();
}

function post(path, body) {
  return api("POST", `${lobbyPath}${path}`, body);
}

let confirmations = 0;

function confirmAction({ title, text, ok }) {
  const mine = ++confirmations;
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = ok;
  ui.confirm.returnValue = "";
  const opener = document.activeElement;
  const openerKey = opener && opener.dataset ? opener.dataset.focusKey : null;
  ui.confirm.showModal();
  return new Promise((resolve) => {
    const onClose = () => {
      // "close" is dispatched a moment after the dialog closes: one from an earlier opening
      // can arrive while the dialog is open again, and must not answer this question.
      if (ui.confirm.open) return;
      ui.confirm.removeEventListener("close", onClose);
      // The browser gives focus back to the opener; if a live update re-drew it meanwhile,
      // give it to the new copy instead of losing it to the page.
      if (opener && !opener.isConnected && openerKey) {
        const again = document.querySelector(`[data-focus-key="${CSS.escape(openerKey)}"]`);
        if (again) again.focus();
      }
      resolve(mine === confirmations && ui.confirm.returnValue === "ok");
    };
    ui.confirm.addEventListener("close", onClose);
  });
}

ui.ready.addEventListener("click", () =>
  act(async () => {
    const ready = ui.ready.getAttribute("aria-pressed") !== "true";
    applySnapshot(await post("/ready", { ready }));
  }),
);

ui.start.addEventListener("click", () =>
  act(async () => {
    applySnapshot(await post("/start"));
  }),
);

ui.leave.addEventListener("click", async () => {
  if (state.busy) return;
  const lobby = state.lobby;
  const hostAfterStart = lobby && lobby.host_id === me.id && STARTED.includes(lobby.state);
  const sure = await confirmAction({
    title: "Leave this lobby?",
    text: hostAfterStart
      ? "You are the game’s server: leaving ends the match for everyone."
      : lobby && lobby.members.length <= 1
        ? "You are the last player here: leaving closes the lobby."
        : lobby && lobby.host_id === me.id
          ? "Another player becomes the host."
          : "You can join again later if the lobby is still open.",
    ok: "Leave",
  });
  if (!sure) return;
  act(async () => {
    await post("/leave");
    stream.stop();
    window.location.assign(document.body.dataset.browserUrl);
  });
});

ui.end.addEventListener("click", async () => {
  if (state.busy) return;
  const sure = await confirmAction({
    title: "End the lobby for everyone?",
    text: "Every player is sent back to the lobby list and the relay session is shut down.",
    ok: "End lobby",
  });
  if (!sure) return;
  act(async () => {
    await post("/end");
    const [title, text] = CLOSED_REASONS.ended(true);
    end("closed", title, text);
  });
});

ui.members.addEventListener("click", async (event) => {
  const button = event.target.closest("button[data-action]");
  if (!button || !state.lobby || state.busy) return;
  const playerId = Number(button.dataset.player);
  const member = state.lobby.members.find((item) => item.id === playerId);
  if (!member) return;
  if (button.dataset.action === "kick") {
    const sure = await confirmAction({
      title: `Kick ${member.display_name}?`,
      text: `${member.display_name} leaves the lobby and cannot join it again for a while.`,
      ok: "Kick",
    });
    if (!sure) return;
    act(async () => applySnapshot(await post("/kick", { player_id: playerId })));
  } else if (button.dataset.action === "transfer") {
    act(async () => applySnapshot(await post("/transfer-host", { player_id: playerId })));
  }
});

ui.joinButton.addEventListener("click", () =>
  act(async () => {
    applySnapshot(await post("/join"));
    ui.name.focus();
  }, ui.joinError),
);

$("copy-assignment").addEventListener("click", async (event) => {
  // Read before any await: the browser clears event.currentTarget once the handler yields.
  const button = event.currentTarget;
  const { assignment } = state;
  if (!assignment) return;
  const copied = await copyText(JSON.stringify(assignment, null, 2));
  await flashCopied(button, copied, "your assignment");
});

bindCopyButtons(document);

// --- Start -----------------------------------------------------------------------------------

const stream = new EventStream({
  after: config.after,
  onEvent,
  onStatus: setConnection,
  onSignedOut: () =>
    end("left", "You are signed out", "Sign in or choose a display name again to play."),
});

async function load() {
  try {
    applySnapshot(await api("GET", lobbyPath));
  } catch (error) {
    if (error.code === "lobby_not_found" || error.status === 404) {
      end(
        "missing",
        "There is no such lobby",
        "It may have closed, or it is private: ask its host for the join code.",
      );
    } else {
      end("missing", "The lobby could not be loaded", error.message);
    }
    return;
  }
  const lobby = state.lobby;
  if (lobby && isMember(lobby) && lobby.state !== "open") {
    try {
      applyAssignment(await api("GET", "/api/v1/players/me/assignment"));
    } catch {
      // None yet: it arrives as an event.
    }
  }
  if (!state.ended) stream.start();
  // Events reach members only: someone looking at a public lobby from outside polls it.
  window.setInterval(async () => {
    if (state.ended || !state.lobby || isMember(state.lobby) || state.busy || document.hidden) return;
    try {
      applySnapshot(await api("GET", lobbyPath));
    } catch {
      // Shown on the next action; the prompt stays as it was.
    }
  }, 5000);
}

load();
