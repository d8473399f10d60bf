// Passage console: send the REST calls buttons name (with the session's CSRF token),
// swap in the live parts the server streams (Server-Sent Events), filter and sort tables.
"use strict";

(function () {
  const csrfMeta = document.querySelector('meta[name="csrf-token"]');
  const csrf = csrfMeta ? csrfMeta.content : "";
  const statusLine = document.getElementById("status");

  function say(text) {
    if (statusLine) statusLine.textContent = text;
  }

  function randomKey() {
    const bytes = new Uint8Array(32);
    crypto.getRandomValues(bytes);
    return btoa(String.fromCharCode.apply(null, bytes));
  }

  async function call(method, path, body) {
    const init = { method: method, credentials: "same-origin", headers: { "X-CSRF-Token": csrf } };
    if (body !== undefined) {
      init.headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const response = await fetch("/console/api" + path, init);
    const text = await response.text();
    let data = null;
    try { data = text ? JSON.parse(text) : null; } catch (e) { data = null; }
    return { ok: response.ok, status: response.status, data: data };
  }

  function shown(data) {
    if (!data) return "";
    if (data.token) return data.token + "\n(expires " + data.expiresOn + ")";
    if (data.primaryKey) return "primary:   " + data.primaryKey + "\nsecondary: " + data.secondaryKey;
    if (data.identity && data.identity.id) return "created " + data.identity.id;
    return JSON.stringify(data, null, 2);
  }

  async function onButton(button) {
    const data = button.dataset;
    if (data.confirm && !window.confirm(data.confirm)) return;
    let body = data.body ? JSON.parse(data.body) : undefined;
    if (data.rotate) {
      body = { rights: data.rights.split(","), primaryKey: randomKey(), secondaryKey: randomKey() };
    }
    button.disabled = true;
    try {
      const answer = await call(data.method, data.path, body);
      if (!answer.ok) {
        const error = answer.data && answer.data.error;
        say("Refused (" + answer.status + "): " + (error ? error.message : "no details"));
        return;
      }
      if (data.show) {
        const output = document.getElementById(data.show);
        if (output) output.textContent = shown(answer.data);
      }
      say("Done: " + button.textContent.trim() + ".");
      if (data.reload) window.location.reload();
    } finally {
      button.disabled = false;
    }
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("button[data-method]");
    if (button) {
      event.preventDefault();
      onButton(button);
    }
    const sort = event.target.closest("button.sort");
    if (sort) sortBy(sort);
  });

  // Hybrid connection creation: PUT /hybridConnections/{name}.
  const create = document.querySelector('form[data-create="hc"]');
  if (create) {
    create.addEventListener("submit", async function (event) {
      event.preventDefault();
      const name = create.elements.name.value.trim();
      const body = { requiresClientAuthorization: create.elements.requiresClientAuthorization.checked };
      const answer = await call("PUT", "/hybridConnections/" + encodeURIComponent(name), body);
      if (answer.ok) {
        window.location.reload();
      } else {
        const error = answer.data && answer.data.error;
        say("Refused (" + answer.status + "): " + (error ? error.message : "no details"));
      }
    });
  }

  // A new authorization rule: PUT /authorizationRules/{rule}[?entity=NAME]; keys generated.
  document.querySelectorAll('form[data-create="rule"]').forEach(function (form) {
    form.addEventListener("submit", async function (event) {
      event.preventDefault();
      const rights = Array.from(form.querySelectorAll('input[name="rights"]:checked'))
        .map(function (box) { return box.value; });
      if (!rights.length) {
        say("Choose at least one right: Listen, Send or Manage.");
        return;
      }
      const entity = form.dataset.entity;
      const path = "/authorizationRules/" + encodeURIComponent(form.elements.rule.value.trim()) +
        (entity !== undefined ? "?entity=" + encodeURIComponent(entity) : "");
      const answer = await call("PUT", path, { rights: rights });
      if (answer.ok) {
        window.location.reload();
      } else {
        const error = answer.data && answer.data.error;
        say("Refused (" + answer.status + "): " + (error ? error.message : "no details"));
      }
    });
  });

  // Filtering and sorting the Relays table; applied again after every live update.
  const filter = document.querySelector('form[data-filter="relays"]');
  let sorting = null;

  function applyFilter() {
    if (!filter) return;
    const text = filter.elements.text.value.trim().toLowerCase();
    const transport = filter.elements.transport.value;
    document.querySelectorAll("#relays-rows tr[data-id]").forEach(function (row) {
      const matches = (!text || row.textContent.toLowerCase().includes(text)) &&
        (!transport || row.dataset.transport === transport);
      row.hidden = !matches;
    });
  }

  function sortValue(row, column) {
    const cell = row.cells[column];
    const span = cell && cell.querySelector("[data-sort]");
    const value = span ? span.dataset.sort : (cell ? cell.textContent : "");
    const number = Number(value);
    return value !== "" && !Number.isNaN(number) ? number : value.toLowerCase();
  }

  function applySort() {
    if (!sorting) return;
    const body = document.getElementById("relays-rows");
    const rows = Array.from(body.querySelectorAll("tr[data-id]"));
    rows.sort(function (a, b) {
      const x = sortValue(a, sorting.column), y = sortValue(b, sorting.column);
      const order = x < y ? -1 : x > y ? 1 : 0;
      return sorting.ascending ? order : -order;
    });
    rows.forEach(function (row) { body.appendChild(row); });
  }

  function sortBy(button) {
    const column = Number(button.dataset.column);
    const ascending = !(sorting && sorting.column === column && sorting.ascending);
    sorting = { column: column, ascending: ascending };
    document.querySelectorAll("#relays th").forEach(function (th) {
      if (th.hasAttribute("aria-sort")) th.setAttribute("aria-sort", "none");
    });
    button.closest("th").setAttribute("aria-sort", ascending ? "ascending" : "descending");
    applySort();
  }

  if (filter) {
    filter.addEventListener("input", applyFilter);
    filter.addEventListener("submit", function (event) { event.preventDefault(); });
  }

  // Live parts: the server sends {element id: HTML} for this page.
  const page = document.body.dataset.page;
  if (["overview", "relays", "hc"].includes(page) && window.EventSource) {
    const events = new EventSource("/console/events?page=" + page);
    events.onmessage = function (message) {
      const parts = JSON.parse(message.data);
      Object.keys(parts).forEach(function (id) {
        const element = document.getElementById(id);
        if (element) element.innerHTML = parts[id];
      });
      applySort();
      applyFilter();
      document.body.dataset.updated = String(Date.now());
    };
    events.addEventListener("signedout", function () {
      events.close();
      window.location.href = "/console/signin";
    });
  }
})();
