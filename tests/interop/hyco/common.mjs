// Shared plumbing for the hyco-ws / hyco-https driver scripts: configuration
// from the environment, one JSON line per event on stdout, rate-limited error
// reports, and process-level handlers. See README.md for the variables.

// The packages print diagnostics with console.log (e.g. "renewToken error",
// caught exceptions); keep stdout for our JSON lines only.
console.log = (...args) => console.error(...args);
console.info = console.log;

/** Print one event as a JSON line. Writes to a pipe are synchronous on Linux. */
export function emit(event, fields = {}) {
  process.stdout.write(JSON.stringify({ event, ...fields }) + "\n");
}

/** Print an error and exit: for bad configuration and unrecoverable states. */
export function fail(message, fields = {}, exitCode = 1) {
  emit("error", { status: null, message, ...fields });
  process.exit(exitCode);
}

/**
 * Read HC_* variables. `createRelayToken` is the package's own helper
 * (hyco-ws and hyco-https carry identical copies).
 */
export function config(createRelayToken) {
  const env = process.env;
  for (const name of ["HC_BASE", "HC_NAME"]) {
    if (!env[name]) fail(`missing environment variable ${name}`, {}, 2);
  }
  const base = env.HC_BASE.replace(/\/+$/, "");
  const tokenMode = env.HC_TOKEN_MODE || "header";
  if (!["header", "query", "none"].includes(tokenMode)) {
    fail(`HC_TOKEN_MODE must be header, query or none, not ${tokenMode}`, {}, 2);
  }
  if (tokenMode !== "none" && !env.HC_TOKEN && !(env.HC_KEY_NAME && env.HC_KEY)) {
    fail("HC_KEY_NAME and HC_KEY (or HC_TOKEN) are needed unless HC_TOKEN_MODE=none", {}, 2);
  }
  const ttl = env.HC_TOKEN_TTL ? Number(env.HC_TOKEN_TTL) : 3600;
  return {
    name: env.HC_NAME,
    // The relay's WebSocket endpoints; accept http(s):// too.
    wsBase: base.replace(/^http(s?):/i, "ws$1:"),
    tokenMode,
    /**
     * The SAS token for `uri` (audience = uri, or the namespace host with
     * HC_TOKEN_SCOPE=namespace, as the packages' README does), or HC_TOKEN
     * verbatim. Called on every (re)connect, so a short TTL stays fresh.
     */
    token(uri) {
      if (tokenMode === "none") return null;
      if (env.HC_TOKEN) return env.HC_TOKEN;
      const audience =
        env.HC_TOKEN_SCOPE === "namespace" ? "http://" + new URL(base).host : uri;
      return createRelayToken(audience, env.HC_KEY_NAME, env.HC_KEY, ttl);
    },
  };
}

/** `url` with the token appended as sb-hc-token when HC_TOKEN_MODE=query. */
export function withQueryToken(cfg, url, tokenUri = url) {
  if (cfg.tokenMode !== "query") return url;
  return url + "&sb-hc-token=" + encodeURIComponent(cfg.token(tokenUri));
}

/** HTTP status of a failed WebSocket upgrade, from ws 1.x or ws 6.x wording. */
export function statusOf(error) {
  const match = /unexpected server response\D*(\d{3})/i.exec(describe(error));
  return match ? Number(match[1]) : null;
}

/** A message for an Error, a ws ErrorEvent, or the bare strings ws 1.x emits. */
export function describe(error) {
  if (error == null) return String(error);
  if (typeof error === "string") return error;
  return String(error.message ?? error.error?.message ?? error);
}

/**
 * Error reports limited to one line per channel per interval. hyco-ws
 * reconnects without backoff (each failure schedules two new attempts), so a
 * refused listen would otherwise print thousands of lines a second. A line
 * stands for `count` errors; the first of a burst is printed at once, the
 * rest are folded into one line (with the last one's details) per interval.
 */
export class ErrorReporter {
  constructor(intervalMs = 1000) {
    this.intervalMs = intervalMs;
    this.channels = new Map();
    this.total = 0;
  }

  report(channel, error) {
    this.total += 1;
    const fields = {
      channel,
      status: statusOf(error),
      code: error?.code ?? error?.error?.code ?? null,
      message: describe(error),
    };
    const now = Date.now();
    let state = this.channels.get(channel);
    if (!state) {
      state = { last: 0, pending: null, count: 0, timer: null };
      this.channels.set(channel, state);
    }
    if (!state.timer && now - state.last >= this.intervalMs) {
      state.last = now;
      emit("error", { ...fields, count: 1 });
      return;
    }
    state.pending = fields;
    state.count += 1;
    if (!state.timer) {
      state.timer = setTimeout(() => this.flush(channel), this.intervalMs - (now - state.last));
    }
  }

  flush(channel) {
    const state = this.channels.get(channel);
    if (!state?.pending) return;
    clearTimeout(state.timer);
    emit("error", { ...state.pending, count: state.count });
    Object.assign(state, { last: Date.now(), pending: null, count: 0, timer: null });
  }

  flushAll() {
    for (const channel of this.channels.keys()) this.flush(channel);
  }
}

/**
 * Report uncaught exceptions (the packages throw from inside socket handlers,
 * e.g. hyco-https on an `accept` message) as {"event":"fatal"} and exit 1, and
 * shut down cleanly on SIGTERM/SIGINT via `shutdown`.
 */
export function installProcessHandlers(reporter, shutdown) {
  process.on("uncaughtException", (error) => {
    reporter?.flushAll();
    emit("fatal", { message: describe(error) });
    console.error(error);
    process.exit(1);
  });
  for (const signal of ["SIGTERM", "SIGINT"]) {
    process.on(signal, () => {
      reporter?.flushAll();
      shutdown();
    });
  }
}
