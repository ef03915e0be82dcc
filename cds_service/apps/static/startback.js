// STarT Back questionnaire app: SMART App Launch (EHR launch, authorization code + PKCE), the
// 9 items rendered from the service's Questionnaire, scoring by the service, and the write of a
// QuestionnaireResponse plus three Observations to the FHIR server, straight from the browser.
// Development: ?iss=<open FHIR base>&patient=<id> skips authorization (only when the service
// runs with CDS_REQUIRE_AUTH=false).
// The script contacts no FHIR or authorization server before the service has accepted the
// launch's iss (allow-listed, https except loopback): it sends the client id and redirect URI
// there, and shows what that server returns on this origin.
"use strict";

(() => {
  const APP = location.pathname.replace(/\/+$/, "");
  const STATE_PREFIX = "startback-smart:";
  const OAUTH_URIS =
    "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";
  const $ = (id) => document.getElementById(id);

  let config = null; // { clientId, scope, questionnaire }
  let fhir = null; // { base, patient, token, encounter }
  let saved = false;

  // ---- helpers ----------------------------------------------------------------------------

  function base64url(bytes) {
    let text = "";
    bytes.forEach((b) => { text += String.fromCharCode(b); });
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function randomString(byteCount) {
    const bytes = new Uint8Array(byteCount);
    crypto.getRandomValues(bytes);
    return base64url(bytes);
  }

  async function sha256(text) {
    const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
    return new Uint8Array(digest);
  }

  async function getJson(url, accept) {
    const response = await fetch(url, { headers: { Accept: accept || "application/json" } });
    if (!response.ok) throw new Error(`${url} answered HTTP ${response.status}`);
    return response.json();
  }

  // The app's settings; the service checks the launch parameters and answers 400 when it
  // refuses them (its OperationOutcome says why).
  async function loadConfig(params) {
    const query = new URLSearchParams();
    ["iss", "launch", "patient"].forEach((name) => {
      if (params.has(name)) query.set(name, params.get(name));
    });
    const response = await fetch(`${APP}/config?${query}`, { headers: { Accept: "application/json" } });
    let body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    if (!response.ok) {
      const issue = ((body && body.issue) || [])[0] || {};
      throw new Error(issue.diagnostics || `The app's settings could not be read (HTTP ${response.status}).`);
    }
    return body;
  }

  // Only an iss the service accepted for this page is ever contacted.
  function checkedIss(iss) {
    if (!iss || config.iss !== iss) {
      throw new Error("This FHIR server (iss) was not accepted by the service: the app does not connect to it.");
    }
    return iss;
  }

  function trimBase(url) {
    return url.replace(/\/+$/, "");
  }

  function setStatus(text) {
    $("status").textContent = text;
  }

  function showError(text) {
    const box = $("error");
    box.textContent = text;
    box.hidden = false;
  }

  function clearError() {
    $("error").hidden = true;
    $("error").textContent = "";
  }

  // ---- SMART App Launch ----------------------------------------------------------------------

  async function smartConfiguration(iss) {
    try {
      return await getJson(`${trimBase(iss)}/.well-known/smart-configuration`);
    } catch (wellKnownError) {
      // Older servers announce the endpoints in the CapabilityStatement instead.
      const cap = await getJson(`${trimBase(iss)}/metadata`, "application/fhir+json");
      const security = ((cap.rest || [])[0] || {}).security || {};
      const uris = (security.extension || []).find((e) => e.url === OAUTH_URIS);
      if (!uris) throw wellKnownError;
      const find = (name) => ((uris.extension || []).find((e) => e.url === name) || {}).valueUri;
      return { authorization_endpoint: find("authorize"), token_endpoint: find("token") };
    }
  }

  async function startEhrLaunch(iss, launch) {
    checkedIss(iss);
    setStatus("Connecting to the EHR…");
    const smart = await smartConfiguration(iss);
    if (!smart.authorization_endpoint || !smart.token_endpoint) {
      throw new Error("The EHR's SMART configuration has no authorization or token endpoint.");
    }
    const verifier = randomString(48);
    const state = randomString(24);
    const redirectUri = location.origin + APP;
    sessionStorage.setItem(STATE_PREFIX + state, JSON.stringify({
      iss, verifier, redirectUri, tokenEndpoint: smart.token_endpoint,
    }));
    const params = new URLSearchParams({
      response_type: "code",
      client_id: config.clientId,
      redirect_uri: redirectUri,
      launch,
      scope: config.scope,
      state,
      aud: iss,
      code_challenge: base64url(await sha256(verifier)),
      code_challenge_method: "S256",
    });
    location.assign(`${smart.authorization_endpoint}?${params}`);
  }

  async function completeAuthorization(code, state) {
    const key = STATE_PREFIX + state;
    const stored = sessionStorage.getItem(key);
    sessionStorage.removeItem(key);
    if (!stored) throw new Error("This sign-in is unknown or was already used: open the app from the EHR again.");
    const launch = JSON.parse(stored);
    setStatus("Signing in…");
    const response = await fetch(launch.tokenEndpoint, {
      method: "POST",
      headers: { "Content-Type": "application/x-www-form-urlencoded", Accept: "application/json" },
      body: new URLSearchParams({
        grant_type: "authorization_code",
        code,
        redirect_uri: launch.redirectUri,
        client_id: config.clientId,
        code_verifier: launch.verifier,
      }),
    });
    if (!response.ok) throw new Error(`The EHR refused the sign-in (HTTP ${response.status}).`);
    const token = await response.json();
    if (!token.access_token) throw new Error("The EHR sent no access token.");
    if (!token.patient) throw new Error("The EHR sent no patient: launch the app from a patient's chart.");
    // Drop the one-time code from the address bar and the history.
    history.replaceState(null, "", APP);
    return { base: trimBase(launch.iss), patient: token.patient, token: token.access_token, encounter: token.encounter || null };
  }

  function authHeaders(extra) {
    const headers = Object.assign({ Accept: "application/fhir+json" }, extra || {});
    if (fhir && fhir.token) headers.Authorization = `Bearer ${fhir.token}`;
    return headers;
  }

  async function showPatient() {
    const line = $("patient");
    line.hidden = false;
    line.textContent = `Patient ${fhir.patient}`;
    try {
      const response = await fetch(`${fhir.base}/Patient/${encodeURIComponent(fhir.patient)}`, { headers: authHeaders() });
      if (!response.ok) return;
      const patient = await response.json();
      const name = (patient.name || [])[0];
      if (name) {
        const text = name.text || [].concat(name.given || [], name.family || []).join(" ");
        if (text) line.textContent = `${text}${patient.birthDate ? `, born ${patient.birthDate}` : ""}`;
      }
    } catch (error) {
      // The name is a courtesy; the questionnaire works without it.
    }
  }

  // ---- the form ------------------------------------------------------------------------------

  function renderForm(questionnaire) {
    const container = $("items");
    container.textContent = "";
    questionnaire.item.forEach((item) => {
      const fieldset = document.createElement("fieldset");
      fieldset.className = "item";
      fieldset.id = `item-${item.linkId}`;
      fieldset.dataset.linkId = item.linkId;
      const legend = document.createElement("legend");
      const number = document.createElement("span");
      number.className = "number";
      number.textContent = `${item.prefix}.`;
      legend.append(number, ` ${item.text}`);
      fieldset.append(legend);
      const options = document.createElement("div");
      options.className = item.answerOption.length > 2 ? "options options-scale" : "options";
      item.answerOption.forEach((option, index) => {
        const coding = option.valueCoding;
        const id = `a-${item.linkId}-${index}`;
        const input = document.createElement("input");
        input.type = "radio";
        input.name = item.linkId;
        input.value = coding.code;
        input.id = id;
        input.required = true;
        const label = document.createElement("label");
        label.htmlFor = id;
        label.className = "option";
        label.append(input, document.createTextNode(` ${coding.display}`));
        options.append(label);
      });
      fieldset.append(options);
      container.append(fieldset);
    });
    $("form").hidden = false;
  }

  function answers() {
    const out = {};
    config.questionnaire.item.forEach((item) => {
      const checked = document.querySelector(`input[name="${CSS.escape(item.linkId)}"]:checked`);
      if (checked) out[item.linkId] = checked.value;
    });
    return out;
  }

  function unanswered() {
    const given = answers();
    return config.questionnaire.item.filter((item) => !(item.linkId in given));
  }

  async function score(withPatient) {
    const body = { answers: answers() };
    if (withPatient) {
      body.patient = fhir.patient;
      body.authored = new Date().toISOString();
      if (fhir.encounter) body.encounter = fhir.encounter;
    }
    const response = await fetch(`${APP}/score`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    const data = await response.json();
    if (!response.ok) {
      const issue = ((data.issue || [])[0] || {}).diagnostics;
      throw new Error(issue || `Scoring failed (HTTP ${response.status}).`);
    }
    return data;
  }

  function showResult(result) {
    const riskNames = { low: "Low risk", medium: "Medium risk", high: "High risk" };
    $("result-risk").textContent = riskNames[result.risk];
    $("result-risk").dataset.risk = result.risk;
    $("result-total").textContent = `${result.total} of 9`;
    $("result-subscale").textContent = `${result.subscale} of 5`;
    $("result-care").textContent = `Matched care: ${result.care}`;
    $("result").hidden = false;
  }

  async function onChange() {
    if (saved) return;
    const missing = unanswered();
    const count = config.questionnaire.item.length;
    $("progress").textContent = `${count - missing.length} of ${count} answered`;
    missing.length === 0 ? $("progress").classList.add("done") : $("progress").classList.remove("done");
    if (missing.length === 0) {
      try {
        clearError();
        showResult(await score(false));
      } catch (error) {
        showError(error.message);
      }
    } else {
      $("result").hidden = true;
    }
  }

  // ---- saving to the FHIR server ----------------------------------------------------------

  function referenceFrom(response, created) {
    if (created && created.resourceType && created.id) return `${created.resourceType}/${created.id}`;
    const location = response.headers.get("Location") || response.headers.get("Content-Location") || "";
    const match = location.match(/([A-Za-z]+\/[A-Za-z0-9\-.]{1,64})(\/_history\/[^/]+)?\/?$/);
    return match ? match[1] : null;
  }

  async function saveOneByOne(bundle) {
    // For servers without transactions: POST in order, swapping each urn:uuid for the new id.
    const created = {};
    const references = [];
    for (const entry of bundle.entry) {
      let text = JSON.stringify(entry.resource);
      Object.entries(created).forEach(([urn, ref]) => { text = text.split(`"${urn}"`).join(`"${ref}"`); });
      const response = await fetch(`${fhir.base}/${entry.resource.resourceType}`, {
        method: "POST",
        headers: authHeaders({ "Content-Type": "application/fhir+json" }),
        body: text,
      });
      if (!response.ok) throw new Error(`Saving the ${entry.resource.resourceType} failed (HTTP ${response.status}).`);
      let body = null;
      try { body = await response.json(); } catch (error) { body = null; }
      const reference = referenceFrom(response, body);
      if (!reference) throw new Error(`The FHIR server did not say where it saved the ${entry.resource.resourceType}.`);
      created[entry.fullUrl] = reference;
      references.push(reference);
    }
    return references;
  }

  async function save(bundle) {
    const response = await fetch(fhir.base, {
      method: "POST",
      headers: authHeaders({ "Content-Type": "application/fhir+json" }),
      body: JSON.stringify(bundle),
    });
    if (response.ok) {
      const result = await response.json();
      return (result.entry || []).map((e) => {
        const location = (e.response || {}).location || "";
        const match = location.match(/([A-Za-z]+\/[A-Za-z0-9\-.]{1,64})(\/_history\/[^/]+)?$/);
        return match ? match[1] : location;
      });
    }
    if (response.status === 401 || response.status === 403) {
      throw new Error(`The FHIR server refused the write (HTTP ${response.status}).`);
    }
    return saveOneByOne(bundle);
  }

  async function onSubmit(event) {
    event.preventDefault();
    clearError();
    const missing = unanswered();
    if (missing.length > 0) {
      const numbers = missing.map((item) => item.prefix).join(", ");
      showError(`Please answer every statement (missing: ${numbers}).`);
      const first = document.querySelector(`#item-${CSS.escape(missing[0].linkId)} input`);
      if (first) first.focus();
      return;
    }
    if (!fhir) {
      showError("No patient record is open: launch the app from the EHR to save.");
      return;
    }
    const button = $("save");
    button.disabled = true;
    setStatus("Saving…");
    try {
      const result = await score(true);
      showResult(result);
      const references = await save(result.bundle);
      saved = true;
      document.querySelectorAll("#items input").forEach((input) => { input.disabled = true; });
      button.hidden = true;
      const line = $("saved");
      line.textContent = `Saved to the record: ${references.join(", ")}.`;
      line.hidden = false;
      setStatus("Saved.");
      line.focus();
    } catch (error) {
      button.disabled = false;
      setStatus("Not saved.");
      showError(error.message);
    }
  }

  // ---- start ---------------------------------------------------------------------------------

  async function main() {
    const params = new URLSearchParams(location.search);
    config = await loadConfig(params);
    if (params.get("error")) {
      throw new Error(`The EHR did not authorize the app: ${params.get("error_description") || params.get("error")}.`);
    }
    if (params.get("code") && params.get("state")) {
      fhir = await completeAuthorization(params.get("code"), params.get("state"));
    } else if (params.get("launch") && params.get("iss")) {
      await startEhrLaunch(params.get("iss"), params.get("launch"));
      return;
    } else if (params.get("iss") && params.get("patient")) {
      if (!config.developmentMode) {
        throw new Error("Development mode is off because the service requires authentication: launch the app from the EHR.");
      }
      const iss = checkedIss(params.get("iss"));
      fhir = { base: trimBase(iss), patient: params.get("patient"), token: null, encounter: null };
    }
    renderForm(config.questionnaire);
    $("form").addEventListener("change", onChange);
    $("form").addEventListener("submit", onSubmit);
    $("saved").tabIndex = -1;
    if (fhir) {
      setStatus(fhir.token ? "Signed in through the EHR." : "Development mode: open FHIR server, no sign-in.");
      await showPatient();
    } else {
      setStatus("No patient record is open: answers can be scored but not saved. Launch the app from the EHR.");
      $("save").disabled = true;
    }
    onChange();
  }

  document.addEventListener("DOMContentLoaded", () => {
    main().catch((error) => {
      setStatus("The questionnaire could not start.");
      showError(error.message);
    });
  });
})();
