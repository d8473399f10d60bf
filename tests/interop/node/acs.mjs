// Drives Passage with the unmodified npm Azure Communication Services SDKs.
//
//   PASSAGE_CONNECTION_STRING='endpoint=https://127.0.0.1:PORT/;accesskey=...' \
//   NODE_EXTRA_CA_CERTS=ca.pem node tests/interop/node/acs.mjs identity|relay|errors
//
// Prints exactly one JSON object on stdout. Calls that are meant to fail are
// reported as {statusCode, code, message}; anything else that goes wrong
// (including a transport error) ends the script with a message and exit 1.
import { AzureCommunicationTokenCredential } from "@azure/communication-common";
import { CommunicationIdentityClient } from "@azure/communication-identity";
import { CommunicationRelayClient } from "@azure/communication-network-traversal";

const connStr = process.env.PASSAGE_CONNECTION_STRING;
const scenario = process.argv[2];

// The SDKs retry failures several times with backoff (and by default never
// time out a request), so a test against a broken server would stall.
// maxRetries: 0 makes errors surface at once; the watchdog bounds the rest.
const options = { retryOptions: { maxRetries: 0 } };
const WATCHDOG_MS = 30_000;

const identityClient = (cs = connStr) => new CommunicationIdentityClient(cs, options);
const relayClient = (cs = connStr) => new CommunicationRelayClient(cs, options);

// Await a call that should be rejected by the server and describe the error.
// Errors without an HTTP status (connection refused, TLS, ...) are not a
// server answer, so they are rethrown rather than reported.
async function failure(promise) {
  try {
    await promise;
  } catch (e) {
    if (typeof e?.statusCode !== "number") throw e;
    return { statusCode: e.statusCode, code: e.code ?? null, message: e.message };
  }
  return { statusCode: null, code: null, message: "call succeeded but was expected to fail" };
}

async function identity() {
  const client = identityClient();
  const user = await client.createUser();
  const withToken = await client.createUserAndToken(["chat", "voip"]);
  const token = await client.getToken(user, ["voip"], { tokenExpiresInMinutes: 60 });
  // The credential decodes the JWT client-side (it reads `exp`); this proves
  // Passage's tokens parse in the SDK that chat and calling clients use.
  const credential = new AzureCommunicationTokenCredential(withToken.token);
  const access = await credential.getToken();
  credential.dispose();
  await client.revokeTokens(user);
  await client.deleteUser(user);
  return {
    user: user.communicationUserId,
    userWithToken: withToken.user.communicationUserId,
    createTokenExpiresOn: withToken.expiresOn.toISOString(),
    token: token.token,
    tokenExpiresOn: token.expiresOn.toISOString(),
    credentialExpiresOnTimestamp: access.expiresOnTimestamp,
    revoked: true,
    deleted: true,
    afterDelete: await failure(client.getToken(user, ["chat"])),
  };
}

async function relay() {
  // JSON.stringify turns the returned expiresOn Date into an ISO string.
  const asJson = (config) => JSON.parse(JSON.stringify(config));
  const client = relayClient();
  const byDefault = asJson(await client.getRelayConfiguration());
  const user = await identityClient().createUser();
  // 1.1.0-beta.1 takes one options object: { id?, routeType?, ttl? }.
  const forUser = asJson(
    await client.getRelayConfiguration({ id: user.communicationUserId, routeType: "nearest", ttl: 3600 }),
  );
  return { default: byDefault, forUser, user: user.communicationUserId };
}

async function errors() {
  // Same endpoint, a well-formed key that is not Passage's: 32 zero bytes.
  const wrongKey = Buffer.alloc(32).toString("base64");
  const wrongConnStr = connStr.replace(/(accesskey=)[^;]*/i, `$1${wrongKey}`);
  const result = { wrongKey: await failure(identityClient(wrongConnStr).createUser()) };

  const client = identityClient();
  const user = await client.createUser();
  result.badScope = await failure(client.getToken(user, ["bogus"]));
  result.badExpiry = await failure(client.getToken(user, ["chat"], { tokenExpiresInMinutes: 59 }));
  const unknown = {
    communicationUserId:
      "8:acs:00000000-0000-0000-0000-000000000000_00000000-0000-0000-0000-000000000000",
  };
  result.unknownIdentity = await failure(client.getToken(unknown, ["chat"]));
  return result;
}

const scenarios = { identity, relay, errors };

function die(message) {
  process.stderr.write(`acs.mjs: ${message}\n`);
  process.exit(1);
}

if (!scenarios[scenario]) die(`usage: acs.mjs ${Object.keys(scenarios).join("|")}`);
if (!connStr) die("PASSAGE_CONNECTION_STRING is not set");
setTimeout(() => die(`${scenario}: no result after ${WATCHDOG_MS} ms`), WATCHDOG_MS).unref();
try {
  process.stdout.write(JSON.stringify(await scenarios[scenario]()) + "\n");
} catch (e) {
  const detail = [e?.name, e?.code, e?.statusCode].filter((x) => x !== undefined).join(" ");
  die(`${scenario} failed (${detail}): ${e?.stack ?? e}`);
}
