// Gather relay candidates for one RTCPeerConnection and report what came of it.
//
// Evaluated by tests/interop/test_interop_chromium.py with {iceServer}.
// Resolves once ICE gathering is complete with the candidates gathered and the
// icecandidateerror events seen (the URL and code of each TURN server that failed).
async ({ iceServer }) => {
  const pc = new RTCPeerConnection({ iceServers: [iceServer], iceTransportPolicy: "relay" });
  const candidates = [];
  const iceErrors = [];
  pc.onicecandidateerror = (event) =>
    iceErrors.push({ url: event.url, code: event.errorCode, text: event.errorText });
  const complete = new Promise((resolve) => {
    pc.onicecandidate = (event) => {
      if (event.candidate) candidates.push(event.candidate.candidate);
      else resolve();
    };
  });
  pc.createDataChannel("probe");
  await pc.setLocalDescription();
  await complete;
  pc.close();
  return { candidates, iceErrors };
}
