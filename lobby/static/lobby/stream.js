// The player's event stream, shared by the room and the queue pages: a WebSocket with replay
// from `after`, long-polling when sockets fail, and the "Live / Reconnecting…" indicator.

import { api, sleep } from "./api.js";

const SOCKET_HEALTHY_MS = 5000; // a socket that lived this long (or spoke) worked
const SOCKET_FAILURES_BEFORE_POLLING = 3;
const SOCKET_RETRY_WHILE_POLLING_MS = 30000;
const POLL_WAIT_S = 25; // the server holds a long-poll for up to 30 s
// While the socket is open, the REST stream is read this often anyway: the server repairs lost
// pushes itself, this catches a socket that went quiet without closing (a dead proxy).
const SOCKET_CHECK_MS = 20000;

/**
 * The player's events (design.md §5), in `seq` order, each exactly once.
 *
 * A WebSocket first (`/ws/v1/events?after=<last seq seen>`): the server replays what was missed,
 * then pushes. When it drops, it reconnects with the last seq, so nothing is lost. When sockets
 * keep failing (a proxy that does not pass them, a corporate network), it long-polls
 * `GET /api/v1/players/me/events?after=&wait=` and retries the socket now and then.
 *
 * Channel layers deliver at most once, so a push can go missing while later ones arrive: a gap
 * in `seq` is filled from the REST stream before the later event is handled, and while the
 * socket is open the REST stream is also read every SOCKET_CHECK_MS, so a lost last push
 * arrives even if the socket goes quiet (the server repairs it on the socket within seconds).
 */
export class EventStream {
  constructor({ after = 0, onEvent, onStatus = () => {}, onSignedOut = () => {} }) {
    this.lastSeq = Number(after) || 0;
    this.onEvent = onEvent;
    this.onStatus = onStatus;
    this.onSignedOut = onSignedOut;
    this.failures = 0;
    this.socket = null;
    this.polling = false;
    this.stopped = false;
    this.queue = Promise.resolve();
    this.timer = null;
    this.checkTimer = null;
    this.status = null;
    window.addEventListener("online", () => this.reconnectSoon(0));
    // Leaving the page closes the socket: that is not a failure to recover from.
    window.addEventListener("pagehide", () => {
      this.stopped = true;
      window.clearTimeout(this.timer);
    });
    window.addEventListener("pageshow", (event) => {
      if (event.persisted) window.location.reload(); // back from the cache: start afresh
    });
  }

  start() {
    this.connect();
  }

  stop() {
    this.stopped = true;
    window.clearTimeout(this.timer);
    window.clearInterval(this.checkTimer);
    this.stopPolling();
    if (this.socket) {
      const socket = this.socket;
      this.socket = null;
      // Closing a socket still connecting makes browsers log an error: let it open first.
      if (socket.readyState === WebSocket.CONNECTING) {
        socket.addEventListener("open", () => socket.close(1000, "done"));
      } else {
        socket.close(1000, "done");
      }
    }
    this.setStatus("stopped");
  }

  setStatus(status) {
    if (status !== this.status) {
      this.status = status;
      this.onStatus(status);
    }
  }

  connect() {
    window.clearTimeout(this.timer);
    if (this.stopped || this.socket) return;
    const scheme = window.location.protocol === "https:" ? "wss:" : "ws:";
    const url = `${scheme}//${window.location.host}/ws/v1/events?after=${this.lastSeq}`;
    let socket;
    try {
      socket = new WebSocket(url);
    } catch {
      this.socketEnded(false);
      return;
    }
    this.socket = socket;
    let openedAt = 0;
    let spoke = false;
    if (!this.polling) this.setStatus(this.failures ? "reconnecting" : "connecting");
    socket.addEventListener("open", () => {
      openedAt = Date.now();
      this.stopPolling();
      this.setStatus("live");
      window.clearInterval(this.checkTimer);
      this.checkTimer = window.setInterval(() => this.check(), SOCKET_CHECK_MS);
    });
    socket.addEventListener("message", (message) => {
      spoke = true;
      let event;
      try {
        event = JSON.parse(message.data);
      } catch {
        return;
      }
      this.receive(event);
    });
    socket.addEventListener("close", () => {
      if (this.socket !== socket) return;
      this.socket = null;
      window.clearInterval(this.checkTimer);
      const healthy = spoke || (openedAt && Date.now() - openedAt >= SOCKET_HEALTHY_MS);
      this.socketEnded(healthy);
    });
  }

  socketEnded(healthy) {
    if (this.stopped) return;
    this.failures = healthy ? 0 : this.failures + 1;
    if (this.failures >= SOCKET_FAILURES_BEFORE_POLLING) {
      this.startPolling();
      this.reconnectSoon(SOCKET_RETRY_WHILE_POLLING_MS);
    } else {
      this.setStatus("reconnecting");
      // 0.5 s after a drop, then 1 s, 2 s... with jitter, so a restarted server is not stormed.
      const delay = healthy ? 500 : 1000 * 2 ** (this.failures - 1);
      this.reconnectSoon(delay * (0.8 + Math.random() * 0.4));
    }
  }

  reconnectSoon(delay) {
    if (this.stopped || this.socket) return;
    window.clearTimeout(this.timer);
    this.timer = window.setTimeout(() => this.connect(), delay);
  }

  // Events from any source go through one queue, so they are handled one at a time, in order.
  receive(event) {
    this.queue = this.queue.then(() => this.handle(event)).catch(() => {});
    return this.queue;
  }

  async handle(event) {
    if (typeof event.seq !== "number" || event.seq <= this.lastSeq) return;
    if (event.seq > this.lastSeq + 1) await this.fillGap(event.seq);
    if (event.seq <= this.lastSeq) return;
    this.deliver(event);
  }

  // One page of the REST stream after the last seq, through the same queue as pushes.
  async check() {
    if (this.stopped || this.polling) return;
    try {
      const page = await api("GET", `/api/v1/players/me/events?after=${this.lastSeq}`);
      for (const event of page.events) this.receive(event);
    } catch {
      // The socket is still there; the next check or a reconnect tries again.
    }
  }

  async fillGap(upTo) {
    try {
      while (this.lastSeq < upTo - 1) {
        const page = await api("GET", `/api/v1/players/me/events?after=${this.lastSeq}`);
        const missing = page.events.filter((event) => event.seq < upTo);
        if (!missing.length) return;
        for (const event of missing) if (event.seq > this.lastSeq) this.deliver(event);
      }
    } catch {
      // The later event is still worth handling; snapshots carry the whole lobby anyway.
    }
  }

  deliver(event) {
    this.lastSeq = event.seq;
    try {
      this.onEvent(event);
    } catch (error) {
      window.setTimeout(() => {
        throw error; // reported as the page's error, without stopping the stream
      });
    }
  }

  startPolling() {
    if (this.polling || this.stopped) return;
    this.polling = true;
    this.setStatus("polling");
    this.pollLoop();
  }

  stopPolling() {
    this.polling = false;
    if (this.pollAbort) this.pollAbort.abort();
  }

  async pollLoop() {
    let delay = 0;
    while (this.polling && !this.stopped) {
      this.pollAbort = new AbortController();
      try {
        const page = await api(
          "GET",
          `/api/v1/players/me/events?after=${this.lastSeq}&wait=${POLL_WAIT_S}`,
          undefined,
          { signal: this.pollAbort.signal },
        );
        if (!this.polling) return;
        for (const event of page.events) this.receive(event);
        await this.queue;
        delay = 0;
        this.setStatus("polling");
      } catch (error) {
        if (error.name === "AbortError" || !this.polling) return;
        if (error.status === 401 || error.status === 403) {
          this.stop();
          this.onSignedOut(error);
          return;
        }
        delay = error.retryAfter ? error.retryAfter * 1000 : Math.min((delay || 500) * 2, 15000);
        this.setStatus("offline");
        await sleep(delay);
      }
    }
  }
}

export const STREAM_STATUS = {
  connecting: "Connecting…",
  live: "Live",
  reconnecting: "Reconnecting…",
  polling: "Live (polling)",
  offline: "Offline, retrying…",
  stopped: "Not listening",
};

/** The page's connection indicator (a dot and its words): the `onStatus` of an EventStream. */
export function connectionIndicator(dot, text) {
  return (status) => {
    dot.className = `conn conn--${status}`;
    text.textContent = STREAM_STATUS[status] || status;
  };
}
