// SMART App Launch for the service's apps (the STarT Back questionnaire, the red-flag screen):
// EHR launch with authorization code + PKCE, in the browser. Development: ?iss=<open FHIR
// base>&patient=<id> skips authorization (only when the service runs with CDS_REQUIRE_AUTH=false).
// No FHIR or authorization server is contacted before the service has accepted the launch's iss
// (the app's /config answers 400 otherwise): the script sends the client id and redirect URI
// there, and shows what that server returns on this origin.
"use strict";

window.SmartLaunch = (() => {
  const OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris";
  // The resource types a SMART fhirUser may name (the QuestionnaireResponse author).
  const FHIR_USER = /(?:^|\/)((?:Practitioner|PractitionerRole|Patient|RelatedPerson)\/[A-Za-z0-9\-.]{1,64})$/;

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

  function trimBase(url) {
    return url.replace(/\/+$/, "");
  }

  // The diagnostics of an OperationOutcome body, when there is one.
  function outcomeText(body) {
    const issue = ((body && body.issue) || [])[0] || {};
    return issue.diagnostics || (issue.details && issue.details.text) || "";
  }

  // The response's JSON body, or null when it has none (an empty or HTML error page).
  async function jsonOrNull(response) {
    try { return await response.json(); } catch (error) { return null; }
  }

  // The app's settings; the service checks the launch parameters and answers 400 when it
  // refuses them (its OperationOutcome says why).
  async function loadConfig(app, params) {
    const query = new URLSearchParams();
    ["iss", "launch", "patient"].forEach((name) => {
      if (params.has(name)) query.set(name, params.get(name));
    });
    const response = await fetch(`${app}/config?${query}`, { headers: { Accept: "application/json" } });
    const body = await jsonOrNull(response);
    if (!response.ok) {
      throw new Error(outcomeText(body) || `The app's settings could not be read (HTTP ${response.status}).`);
    }
    return body;
  }

  // Only an iss the service accepted for this page is ever contacted.
  function checkedIss(config, iss) {
    if (!iss || config.iss !== iss) {
      throw new Error("This FHIR server (iss) was not accepted by the service: the app does not connect to it.");
    }
    return iss;
  }

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

  async function startEhrLaunch(options, config, iss, launch) {
    checkedIss(config, iss);
    options.setStatus("Connecting to the EHR…");
    const smart = await smartConfiguration(iss);
    if (!smart.authorization_endpoint || !smart.token_endpoint) {
      throw new Error("The EHR's SMART configuration has no authorization or token endpoint.");
    }
    const verifier = randomString(48);
    const state = randomString(24);
    const redirectUri = location.origin + options.app;
    sessionStorage.setItem(options.statePrefix + state, JSON.stringify({
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

  // The signed-in user as a FHIR reference ("Practitioner/123"), from the id_token's fhirUser
  // claim (scopes openid fhirUser); null when the EHR does not say. Only read, never trusted for
  // access: the FHIR server checks the access token on every write.
  function fhirUser(idToken) {
    try {
      const payload = idToken.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
      const claims = JSON.parse(atob(payload + "=".repeat((4 - (payload.length % 4)) % 4)));
      const match = typeof claims.fhirUser === "string" ? claims.fhirUser.match(FHIR_USER) : null;
      return match ? match[1] : null;
    } catch (error) {
      return null;
    }
  }

  async function completeAuthorization(options, config, code, state) {
    const key = options.statePrefix + state;
    const stored = sessionStorage.getItem(key);
    sessionStorage.removeItem(key);
    if (!stored) throw new Error("This sign-in is unknown or was already used: open the app from the EHR again.");
    const launch = JSON.parse(stored);
    options.setStatus("Signing in…");
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
    history.replaceState(null, "", options.app);
    return {
      base: trimBase(launch.iss),
      patient: token.patient,
      token: token.access_token,
      encounter: token.encounter || null,
      user: token.id_token ? fhirUser(token.id_token) : null,
    };
  }

  // Start the app: the settings, then the EHR launch (the browser leaves for the EHR's
  // authorization page: null), its return, development mode, or no patient (fhir: null).
  async function begin(options) {
    const params = new URLSearchParams(location.search);
    const config = await loadConfig(options.app, params);
    if (params.get("error")) {
      throw new Error(`The EHR did not authorize the app: ${params.get("error_description") || params.get("error")}.`);
    }
    if (params.get("code") && params.get("state")) {
      const fhir = await completeAuthorization(options, config, params.get("code"), params.get("state"));
      return { config, fhir };
    }
    if (params.get("launch") && params.get("iss")) {
      await startEhrLaunch(options, config, params.get("iss"), params.get("launch"));
      return null;
    }
    if (params.get("iss") && params.get("patient")) {
      if (!config.developmentMode) {
        throw new Error("Development mode is off because the service requires authentication: launch the app from the EHR.");
      }
      const iss = checkedIss(config, params.get("iss"));
      return { config, fhir: { base: trimBase(iss), patient: params.get("patient"), token: null, encounter: null, user: null } };
    }
    return { config, fhir: null };
  }

  function authHeaders(fhir, extra) {
    const headers = Object.assign({ Accept: "application/fhir+json" }, extra || {});
    if (fhir && fhir.token) headers.Authorization = `Bearer ${fhir.token}`;
    return headers;
  }

  // "Name, born 1980-04-02" in `line`, else the patient id: a courtesy, the app works without.
  async function showPatient(fhir, line) {
    line.hidden = false;
    line.textContent = `Patient ${fhir.patient}`;
    try {
      const response = await fetch(`${fhir.base}/Patient/${encodeURIComponent(fhir.patient)}`, { headers: authHeaders(fhir) });
      if (!response.ok) return;
      const patient = await response.json();
      const name = (patient.name || [])[0];
      if (name) {
        const text = name.text || [].concat(name.given || [], name.family || []).join(" ");
        if (text) line.textContent = `${text}${patient.birthDate ? `, born ${patient.birthDate}` : ""}`;
      }
    } catch (error) {
      // The name is a courtesy.
    }
  }

  // "Type/id" of a resource a FHIR server just created: from the body, else Location.
  function savedReference(response, created) {
    if (created && created.resourceType && created.id) return `${created.resourceType}/${created.id}`;
    const location = response.headers.get("Location") || response.headers.get("Content-Location") || "";
    const match = location.match(/([A-Za-z]+\/[A-Za-z0-9\-.]{1,64})(\/_history\/[^/]+)?\/?$/);
    return match ? match[1] : null;
  }

  return { begin, authHeaders, showPatient, outcomeText, jsonOrNull, savedReference };
})();
