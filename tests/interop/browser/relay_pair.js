// Two RTCPeerConnections in one page, relay only, joined by a data channel.
//
// Evaluated by tests/interop/test_interop_chromium.py with Playwright's
// page.evaluate(source, {iceServer, messages}). Both connections get the one
// ICE server and iceTransportPolicy "relay", so the only candidates are TURN
// relayed addresses. The caller sends every message; the callee keeps what it
// receives and echoes it back. Resolves with what each end received and each
// end's selected candidate pair as getStats() reports it; the Python side
// asserts. window.passageTrace tells a test that gave up where it got to.
async ({ iceServer, messages }) => {
  const trace = (window.passageTrace = { step: "start", iceErrors: [], states: [] });
  const config = { iceServers: [iceServer], iceTransportPolicy: "relay" };
  const caller = new RTCPeerConnection(config);
  const callee = new RTCPeerConnection(config);
  for (const [name, pc, other] of [["caller", caller, callee], ["callee", callee, caller]]) {
    pc.onicecandidate = (event) => {
      if (event.candidate) other.addIceCandidate(event.candidate);
    };
    pc.onicecandidateerror = (event) =>
      trace.iceErrors.push({ name, url: event.url, code: event.errorCode, text: event.errorText });
    pc.onconnectionstatechange = () => trace.states.push(`${name}: ${pc.connectionState}`);
  }

  const toBytes = (b64) => Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
  const fromBytes = (buffer) => {
    let binary = "";
    for (const byte of new Uint8Array(buffer)) binary += String.fromCharCode(byte);
    return btoa(binary);
  };
  // A message is {text} or {bytes: base64}; kept in that form at both ends.
  const record = (data) => (typeof data === "string" ? { text: data } : { bytes: fromBytes(data) });
  const collect = (channel, into) =>
    new Promise((resolve) => {
      channel.onmessage = (event) => {
        into.push(record(event.data));
        if (into.length === messages.length) resolve();
      };
    });

  const atCallee = [];
  const echoed = [];
  const calleeDone = new Promise((resolve) => {
    callee.ondatachannel = ({ channel }) => {
      channel.binaryType = "arraybuffer";
      const done = collect(channel, atCallee);
      const forward = channel.onmessage;
      channel.onmessage = (event) => {
        forward(event);
        channel.send(event.data);
      };
      done.then(resolve);
    };
  });
  const channel = caller.createDataChannel("passage", { ordered: true });
  channel.binaryType = "arraybuffer";
  const callerDone = collect(channel, echoed);
  const open = new Promise((resolve) => (channel.onopen = resolve));

  trace.step = "signaling";
  await caller.setLocalDescription();
  await callee.setRemoteDescription(caller.localDescription);
  await callee.setLocalDescription();
  await caller.setRemoteDescription(callee.localDescription);

  trace.step = "connecting";
  await open;
  trace.step = "sending";
  for (const message of messages) {
    channel.send("text" in message ? message.text : toBytes(message.bytes));
  }
  await Promise.all([calleeDone, callerDone]);

  trace.step = "stats";
  const selected = async (pc) => {
    const byId = new Map();
    (await pc.getStats()).forEach((stat) => byId.set(stat.id, stat));
    const transports = [...byId.values()].filter((stat) => stat.type === "transport");
    const pairs = transports.map((t) => byId.get(t.selectedCandidatePairId));
    const pair = pairs[0];
    return {
      transports: transports.length,
      pair: pair ?? null,
      local: pair ? byId.get(pair.localCandidateId) : null,
      remote: pair ? byId.get(pair.remoteCandidateId) : null,
    };
  };
  const result = {
    atCallee,
    echoed,
    caller: await selected(caller),
    callee: await selected(callee),
    iceErrors: trace.iceErrors,
  };
  caller.close();
  callee.close();
  trace.step = "done";
  return result;
}
