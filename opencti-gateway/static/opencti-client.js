// opencti browser client: the desktop protocol over WebSocket, with no dependencies.
//
//   import { OpenCtiClient } from "./opencti-client.js";
//   const client = new OpenCtiClient("ws://host/ws", token);
//   client.on("event", (event) => console.log(event.type, event));
//   await client.connect();                      // resolves with the first snapshot
//   await client.command({ type: "login" });     // resolves when the switch confirms
//
// Messages are described by the JSON Schema the gateway serves at /schema.json, generated
// from the Rust types.

/** An error from the gateway or the switch: `kind`, `message`, and for refused commands
 * the commands `allowed` instead. */
export class OpenCtiError extends Error {
  constructor(body) {
    super(body.message);
    this.name = "OpenCtiError";
    this.kind = body.kind;
    this.allowed = body.allowed || null;
  }
}

export class OpenCtiClient {
  /**
   * @param {string} url     the gateway's WebSocket URL, e.g. "ws://localhost:8080/ws"
   * @param {string} token   the agent's token, issued by the integrator's code
   * @param {object} [options]
   * @param {boolean} [options.reconnect=true]   reconnect with backoff when the link drops
   * @param {number} [options.maxBackoffMs=10000]
   */
  constructor(url, token, options = {}) {
    this.url = url;
    this.token = token;
    this.reconnect = options.reconnect !== false;
    this.maxBackoffMs = options.maxBackoffMs || 10000;
    this.snapshot = null;
    this.link = "down";
    this._socket = null;
    this._handlers = {};
    this._pending = new Map();
    this._nextId = 1;
    this._attempt = 0;
    this._closedByUser = false;
  }

  /** Registers a handler: "event", "snapshot", "link" ("up" | "down" | "reconnecting"),
   * "screen_pop", "queue_waiting" (callers waiting in one of the agent's queues),
   * "error"; for a supervisor, "centre" and "update". */
  on(type, handler) {
    (this._handlers[type] = this._handlers[type] || []).push(handler);
    return this;
  }

  _emit(type, value) {
    for (const handler of this._handlers[type] || []) {
      try {
        handler(value);
      } catch (e) {
        console.error("opencti handler failed", e);
      }
    }
  }

  _setLink(state) {
    if (this.link !== state) {
      this.link = state;
      this._emit("link", state);
    }
  }

  /** Opens the connection and authenticates; resolves with the first snapshot. */
  connect() {
    this._closedByUser = false;
    return new Promise((resolve, reject) => {
      let first = true;
      const socket = new WebSocket(this.url);
      this._socket = socket;
      socket.onopen = () => {
        socket.send(JSON.stringify({ auth: { token: this.token } }));
      };
      socket.onmessage = (frame) => {
        let message;
        try {
          message = JSON.parse(frame.data);
        } catch (e) {
          this._emit("error", new OpenCtiError({ kind: "other", message: "unreadable message from the gateway" }));
          return;
        }
        if (message.snapshot) {
          this.snapshot = message.snapshot;
          this._attempt = 0;
          this._setLink(message.snapshot.link === "up" ? "up" : "down");
          this._emit("snapshot", message.snapshot);
          if (first) {
            first = false;
            resolve(message.snapshot);
          }
        } else if (message.event) {
          const event = message.event;
          if (event.type === "link_down") this._setLink("down");
          if (event.type === "link_up") this._setLink("up");
          if (this.snapshot) this.snapshot.seq = event.seq;
          this._emit("event", event);
        } else if (message.reply) {
          this._reply(message.reply, first ? reject : null);
        } else if (message.screen_pop) {
          this._emit("screen_pop", message.screen_pop);
        } else if (message.queue_waiting) {
          this._emit("queue_waiting", message.queue_waiting);
        } else if (message.centre) {
          // A supervisor's connection: the whole centre, first and after falling behind.
          this._attempt = 0;
          this._setLink("up");
          this._emit("centre", message.centre);
          if (first) {
            first = false;
            resolve(message.centre);
          }
        } else if (message.update) {
          this._emit("update", message.update);
        }
      };
      socket.onclose = () => {
        this._socket = null;
        for (const [, pending] of this._pending) {
          pending.reject(new OpenCtiError({ kind: "link_down", message: "the connection to the gateway closed; the command may or may not have taken effect" }));
        }
        this._pending.clear();
        if (first) {
          first = false;
          reject(new OpenCtiError({ kind: "link_down", message: "could not connect to the gateway" }));
        }
        if (this._closedByUser || !this.reconnect) {
          this._setLink("down");
          return;
        }
        this._setLink("reconnecting");
        const backoff = Math.min(this.maxBackoffMs, 500 * 2 ** this._attempt++);
        const jitter = Math.random() * backoff * 0.3;
        setTimeout(() => {
          if (!this._closedByUser) this.connect().catch(() => {});
        }, backoff + jitter);
      };
    });
  }

  _reply(reply, rejectConnect) {
    if (reply.id === "auth" || (reply.id === undefined && rejectConnect)) {
      const error = new OpenCtiError(reply.error || { kind: "unauthorized", message: "refused" });
      // A refused login is final: do not retry with the same token.
      this._closedByUser = true;
      this._emit("error", error);
      if (rejectConnect) rejectConnect(error);
      return;
    }
    const pending = reply.id !== undefined ? this._pending.get(reply.id) : undefined;
    if (!pending) {
      if (reply.error) this._emit("error", new OpenCtiError(reply.error));
      return;
    }
    this._pending.delete(reply.id);
    if (reply.error) pending.reject(new OpenCtiError(reply.error));
    else pending.resolve(reply);
  }

  _request(body) {
    if (!this._socket || this._socket.readyState !== WebSocket.OPEN) {
      return Promise.reject(new OpenCtiError({ kind: "link_down", message: "not connected to the gateway" }));
    }
    const id = "r" + this._nextId++;
    return new Promise((resolve, reject) => {
      this._pending.set(id, { resolve, reject });
      this._socket.send(JSON.stringify({ id, ...body }));
    });
  }

  /** Sends a command; resolves with {command, seq} once the confirming event arrived. */
  async command(command) {
    const reply = await this._request({ command });
    return reply.confirmed;
  }

  /** The session's snapshot, fresh from the gateway. */
  async refresh() {
    const reply = await this._request({ query: { type: "snapshot" } });
    this.snapshot = reply.snapshot;
    return reply.snapshot;
  }

  /** The commands allowed now, for the agent (no call) or one call. */
  async allowedCommands(call) {
    const query = call ? { type: "allowed_commands", call } : { type: "allowed_commands" };
    const reply = await this._request({ query });
    return reply.allowed_commands;
  }

  /** What the connector can do. */
  async capabilities() {
    const reply = await this._request({ query: { type: "capabilities" } });
    return reply.capabilities;
  }

  /** The agent's phone book from the gateway's CRM: up to 50 entries
   * `{number, contact: {name, company, ...}}` whose name, number or company contains
   * `search` (any case); an empty search lists the first 50. */
  async contacts(search = "") {
    const reply = await this._request({ contacts: { search: String(search) } });
    return reply.contacts;
  }

  /** A supervisor command (`{type: "force_not_ready", agent, reason}`,
   * `{type: "force_log_out", agent}`, `{type: "monitor", agent, mode}`); resolves once
   * the agent's session confirmed it. Only a supervisor's token may. */
  async supervise(command) {
    await this._request({ supervise: command });
  }

  /** Closes the connection for good. */
  close() {
    this._closedByUser = true;
    if (this._socket) this._socket.close();
  }
}
