// A hyco-ws@1.0.5 WebSocket listener that echoes every message (text as
// text, binary as binary). Configuration and output: README.md.
//
//   HC_BASE=ws://127.0.0.1:PORT HC_NAME=myhc HC_KEY_NAME=listen HC_KEY=... \
//   node tests/interop/hyco/ws-listener.mjs
import WS from "hyco-ws";
import {
  config,
  emit,
  ErrorReporter,
  installProcessHandlers,
  withQueryToken,
} from "./common.mjs";

const cfg = config(WS.createRelayToken);
// Written by hand: WS.createRelayListenUri hard-codes wss:// and :443.
const listenUrl = `${cfg.wsBase}/$hc/${cfg.name}?sb-hc-action=listen`;
// hyco-ws multiplies its control-channel attempts on every failure (onerror
// and onclose each reconnect at once), so a refused listener grows without
// bound in memory and CPU. Give up after this many failures (0: never).
const maxErrors = Number(process.env.HC_MAX_ERRORS ?? 100);

const reporter = new ErrorReporter();
let readyCount = 0;
let controlErrors = 0;
const watchedChannels = new WeakSet();

const server = WS.createRelayedServer(
  {
    server: withQueryToken(cfg, listenUrl),
    // A function, so hyco-ws fetches a fresh token on every (re)connect and
    // sends renewToken hourly; in query mode the token is in the URL instead.
    token: () => (cfg.tokenMode === "header" ? cfg.token(listenUrl) : null),
  },
  onConnection,
);

// 'listening' is emitted from the control channel's onopen.
server.on("listening", () => {
  readyCount += 1;
  emit("ready", { count: readyCount });
  watchControlChannel(server.controlChannel);
});

// Without a handler, hyco-ws's server.emit('error') would kill the process.
server.on("error", (error) => {
  controlErrors += 1;
  reporter.report("control", error);
  if (maxErrors > 0 && controlErrors >= maxErrors) {
    reporter.flushAll();
    emit("giving-up", { errors: controlErrors });
    process.exit(1);
  }
});

/** Report when an established control channel closes (e.g. 1008 on expiry). */
function watchControlChannel(channel) {
  // The server emits 'listening' without saying which attempt opened; during
  // a reconnect burst server.controlChannel may still be connecting.
  if (!channel || channel.readyState !== WS.OPEN || watchedChannels.has(channel)) return;
  watchedChannels.add(channel);
  channel.on("close", (code, reason) => {
    emit("close", { channel: "control", code, reason: String(reason ?? "") });
  });
}

/** hyco-ws emits 'connection' before the accept handshake has completed. */
function onConnection(socket) {
  socket.on("open", () => {
    emit("connection", { protocol: socket.protocol || null, url: socket.url });
  });
  socket.on("message", (data, flags) => {
    const binary = Boolean(flags?.binary);
    emit("message", { binary, length: data.length });
    socket.send(data, { binary }, (error) => {
      if (error) reporter.report("connection", error);
    });
  });
  socket.on("error", (error) => reporter.report("accept", error));
  socket.on("close", (code, reason) => {
    emit("close", { channel: "connection", code, reason: String(reason ?? "") });
  });
}

installProcessHandlers(reporter, () => {
  try {
    server.close();
  } catch {
    // The control channel may still be connecting; exiting is enough.
  }
  setTimeout(() => process.exit(0), 200);
});
