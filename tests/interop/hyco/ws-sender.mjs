// A hyco-ws@1.0.5 (ws 1.1.5) WebSocket sender: connects, sends one text and
// one binary message, expects both echoed, prints {"event":"result"} and
// exits 0; otherwise prints {"event":"error"} and exits 1. See README.md.
//
//   HC_BASE=ws://127.0.0.1:PORT HC_NAME=myhc HC_KEY_NAME=send HC_KEY=... \
//   node tests/interop/hyco/ws-sender.mjs
import WS from "hyco-ws";
import { config, describe, emit, fail, installProcessHandlers, statusOf } from "./common.mjs";

const env = process.env;
const cfg = config(WS.createRelayToken);
const protocols = (env.HC_PROTOCOLS ?? "chat.v1,chat.v2").split(",").filter(Boolean);
const text = env.HC_TEXT ?? "hello from hyco-ws";
const binaryLength = Number(env.HC_BINARY_LENGTH ?? 1024);
const timeoutMs = Number(env.HC_TIMEOUT_MS ?? 15000);

// Written by hand: WS.createRelaySendUri hard-codes wss:// and :443. The
// token's audience is the entity URL, without suffix or application query.
const entityUrl = `${cfg.wsBase}/$hc/${cfg.name}`;
const query = [env.HC_QUERY, "sb-hc-action=connect"];
if (env.HC_ID) query.push("sb-hc-id=" + encodeURIComponent(env.HC_ID));
if (cfg.tokenMode === "query") {
  query.push("sb-hc-token=" + encodeURIComponent(cfg.token(entityUrl)));
}
const url = entityUrl + (env.HC_SUFFIX ?? "") + "?" + query.filter(Boolean).join("&");

// Byte i of the binary message is i % 251, so a shifted or truncated echo
// does not compare equal.
const binary = Buffer.alloc(binaryLength);
for (let i = 0; i < binaryLength; i += 1) binary[i] = i % 251;

let socket;
if (cfg.tokenMode === "header" && protocols.length === 0) {
  // The package's own helper; it cannot pass subprotocols.
  socket = WS.relayedConnect(url, cfg.token(entityUrl));
} else {
  const headers = cfg.tokenMode === "header" ? { ServiceBusAuthorization: cfg.token(entityUrl) } : {};
  socket = new WS(url, protocols, { headers });
}

const received = { text: null, binary: null };
let finished = false;
// Set once a refused upgrade is being read; ws 1.x emits 'close' (1006)
// straight after 'unexpected-response', before the body has arrived.
let refused = false;

function finishWithError(status, message, extra = {}) {
  if (finished) return;
  finished = true;
  fail(message, { status, ...extra });
}

let opened = false;
const watchdog = setTimeout(() => {
  const what = opened ? "both echoes" : "the upgrade to complete";
  finishWithError(null, `timed out after ${timeoutMs} ms waiting for ${what}`);
}, timeoutMs);

// Listening for it keeps ws from turning a refused upgrade into a bare
// error; this way the status, headers and body are reported.
socket.on("unexpected-response", (request, response) => {
  refused = true;
  const chunks = [];
  response.on("data", (chunk) => chunks.push(chunk));
  response.on("end", () => {
    finishWithError(response.statusCode, response.statusMessage ?? "", {
      headers: response.headers,
      body: Buffer.concat(chunks).toString("utf8").slice(0, 4096),
    });
  });
  response.on("error", () => finishWithError(response.statusCode, response.statusMessage ?? ""));
});

socket.on("open", () => {
  opened = true;
  emit("open", { protocol: socket.protocol || null });
  socket.send(text);
  socket.send(binary, { binary: true });
});

socket.on("message", (data, flags) => {
  if (flags?.binary) received.binary = Buffer.from(data);
  else received.text = String(data);
  if (received.text === null || received.binary === null) return;
  clearTimeout(watchdog);
  finished = true;
  emit("result", {
    protocol: socket.protocol || null,
    text: received.text,
    binaryLength: received.binary.length,
    binaryEqual: received.binary.equals(binary),
  });
  socket.close(1000);
  // Wait for the close handshake, but not forever.
  setTimeout(() => process.exit(0), 2000).unref();
});

socket.on("error", (error) => finishWithError(statusOf(error), describe(error), { code: error?.code ?? null }));

socket.on("close", (code, reason) => {
  if (refused) return;
  if (finished) {
    emit("close", { code, reason: String(reason ?? "") });
    process.exit(0);
  }
  finishWithError(null, `closed before both echoes arrived`, { code, reason: String(reason ?? "") });
});

installProcessHandlers(null, () => process.exit(1));
