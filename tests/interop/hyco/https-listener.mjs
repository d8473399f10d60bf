// A hyco-https@1.4.5 HTTP listener serving a few fixed routes that exercise
// control-channel and rendezvous responses. Routes and output: README.md.
//
//   HC_BASE=ws://127.0.0.1:PORT HC_NAME=myhttp HC_KEY_NAME=listen HC_KEY=... \
//   node tests/interop/hyco/https-listener.mjs
import https from "hyco-https";
import {
  config,
  describe,
  emit,
  ErrorReporter,
  installProcessHandlers,
  withQueryToken,
} from "./common.mjs";

const cfg = config(https.createRelayToken);
// Written by hand: https.createRelayListenUri hard-codes wss:// and :443.
const listenUrl = `${cfg.wsBase}/$hc/${cfg.name}?sb-hc-action=listen`;

// 204800 bytes, byte i = i % 251: larger than the 64 KiB control-channel
// limit, so hyco-https answers over a rendezvous socket, and a prime period
// so that a dropped or repeated chunk does not go unnoticed.
const BIG = Buffer.alloc(204800);
for (let i = 0; i < BIG.length; i += 1) BIG[i] = i % 251;

const TEXT = { "content-type": "text/plain" };

// Keyed by "METHOD last-path-segment": the request target may or may not
// start with the entity name (/myhttp/hello or /hello), so only the last
// segment is matched.
const routes = {
  "GET hello": (req, res) => {
    res.writeHead(200, TEXT);
    res.end("hello");
  },
  // The handler writes the body as for GET; the relay must drop it.
  "HEAD hello": (req, res) => routes["GET hello"](req, res),
  "POST echo": (req, res, body) => {
    res.writeHead(200, {
      "content-type": req.headers["content-type"] || "application/octet-stream",
      "x-echo-len": String(body.length),
    });
    res.end(body);
  },
  "GET big": (req, res) => {
    res.writeHead(200, { "content-type": "application/octet-stream" });
    res.end(BIG);
  },
  // Three writes become one fragmented binary message on the wire.
  "GET stream": (req, res) => {
    res.writeHead(201, TEXT);
    res.write("part1-");
    res.write("part2-");
    res.end("part3");
  },
  "GET nocontent": (req, res) => {
    res.writeHead(204);
    res.end();
  },
};

function notFound(req, res) {
  res.writeHead(404, TEXT);
  res.end("no route for " + req.method + " " + req.url);
}

const reporter = new ErrorReporter();
let readyCount = 0;
const watchedChannels = new WeakSet();

const server = https.createRelayedServer(
  {
    server: withQueryToken(cfg, listenUrl),
    // A function: called on every (re)connect and hourly for renewToken.
    token: () => (cfg.tokenMode === "header" ? cfg.token(listenUrl) : null),
  },
  onRequest,
);

// 'listening' is emitted from the control channel's onopen.
server.on("listening", () => {
  readyCount += 1;
  emit("ready", { count: readyCount });
  const channel = server.controlChannel;
  if (channel && !watchedChannels.has(channel)) {
    watchedChannels.add(channel);
    channel.on("close", (code, reason) => {
      emit("close", { channel: "control", code, reason: String(reason ?? "") });
    });
  }
});

// hyco-https only emits 'error' when a handler exists; it then backs off
// (0, 1, 2, 5, 10, 30 s) and reconnects.
server.on("error", (error) => reporter.report("control", error));

function onRequest(req, res) {
  const chunks = [];
  req.on("data", (chunk) => chunks.push(Buffer.from(chunk)));
  req.on("error", (error) => reporter.report("request", error));
  req.on("end", () => {
    const body = Buffer.concat(chunks);
    emit("request", {
      method: req.method,
      url: req.url ?? null,
      bodyLength: body.length,
      headers: req.headers,
    });
    const path = new URL(req.url ?? "/", "http://relay.invalid").pathname;
    const segment = path.split("/").filter(Boolean).pop() ?? "";
    const route = routes[`${req.method} ${segment}`] ?? notFound;
    try {
      route(req, res, body);
    } catch (error) {
      emit("error", { channel: "handler", status: null, message: describe(error) });
    }
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

server.listen();
