// The recgen page: plain JavaScript over the /v1 API. Every text from the data goes through textContent, never
// innerHTML, so item titles and ids are shown as text, never run as markup.
"use strict";

const $ = (id) => document.getElementById(id);
const keyInput = $("key");
keyInput.value = localStorage.getItem("recgen-key") || "";

async function api(path, options = {}) {
  const headers = { "X-API-Key": keyInput.value, ...(options.headers || {}) };
  const response = await fetch(path, { ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    throw new Error(body.detail || `HTTP ${response.status}`);
  }
  return body;
}

function status(text) {
  $("status").textContent = text;
}

function itemRow(item, { feedback = true } = {}) {
  const li = document.createElement("li");
  const label = document.createElement("span");
  label.className = "item";
  label.textContent = item.title ? `${item.title} (${item.item_id})` : item.item_id;
  label.dataset.itemId = item.item_id;
  label.addEventListener("click", () => showSimilar(item));
  li.appendChild(label);
  if (feedback) {
    for (const [event, value, text] of [["click", null, "click"], ["rate", 5, "like"]]) {
      const button = document.createElement("button");
      button.className = "fb";
      button.textContent = text;
      button.dataset.event = event;
      button.addEventListener("click", () => sendFeedback(item, event, value));
      li.appendChild(button);
    }
  }
  return li;
}

function fill(list, items, options) {
  list.replaceChildren(...items.map((item) => itemRow(item, options)));
}

async function showUser() {
  const user = $("user").value.trim();
  if (!user) {
    status("type or pick a user id");
    return;
  }
  localStorage.setItem("recgen-key", keyInput.value);
  try {
    const recs = await api(`/v1/users/${encodeURIComponent(user)}/recommendations?k=10`);
    $("version").textContent = `model ${recs.model_version}`;
    $("note").textContent = recs.fallback || "";
    fill($("recs"), recs.items);
    explainAll(user, recs.items);
    const info = await api(`/v1/users/${encodeURIComponent(user)}`);
    fill($("history"), info.history.slice(-20).reverse(), { feedback: false });
    status(`${recs.items.length} recommendations for ${user}`);
  } catch (error) {
    status(`error: ${error.message}`);
  }
}

async function explainAll(user, items) {
  // one "why" line per recommendation: the user's own history items that drive its score (GET .../explanations)
  const rows = $("recs").querySelectorAll("li");
  await Promise.all(items.map(async (item, n) => {
    try {
      const e = await api(`/v1/users/${encodeURIComponent(user)}/explanations/${encodeURIComponent(item.item_id)}`);
      const why = document.createElement("div");
      why.className = "why muted small";
      why.textContent = e.text;
      rows[n].appendChild(why);
    } catch (error) {
      /* an explanation is optional: the list stands without it */
    }
  }));
}

async function showSimilar(item) {
  try {
    const similar = await api(`/v1/items/${encodeURIComponent(item.item_id)}/similar?k=10`);
    $("similar-title").textContent = item.title || item.item_id;
    fill($("similar"), similar.items);
  } catch (error) {
    status(`error: ${error.message}`);
  }
}

async function sendFeedback(item, event, value) {
  const user = $("user").value.trim();
  const body = { user_id: user, item_id: item.item_id, event };
  if (value !== null) body.value = value;
  try {
    const stored = await api("/v1/feedback", {
      method: "POST",
      headers: { "Content-Type": "application/json", "Idempotency-Key": crypto.randomUUID() },
      body: JSON.stringify(body),
    });
    status(`feedback stored (#${stored.event_id}): ${event} on ${item.item_id}`);
  } catch (error) {
    status(`error: ${error.message}`);
  }
}

async function loadUsers() {
  try {
    const body = await api("/v1/users?limit=200");
    $("users").replaceChildren(...body.users.map((u) => Object.assign(document.createElement("option"), { value: u })));
    $("version").textContent = `model ${body.model_version}`;
  } catch (error) {
    status(keyInput.value ? `error: ${error.message}` : "enter an API key");
  }
}

$("show").addEventListener("click", showUser);
$("user").addEventListener("keydown", (e) => { if (e.key === "Enter") showUser(); });
keyInput.addEventListener("change", () => { localStorage.setItem("recgen-key", keyInput.value); loadUsers(); });
loadUsers();
