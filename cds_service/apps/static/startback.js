// STarT Back questionnaire app: the 9 items rendered from the service's Questionnaire, scoring by
// the service, and the write of a QuestionnaireResponse plus three Observations to the FHIR
// server, straight from the browser. The SMART launch (EHR launch with PKCE, or development mode)
// is smart-launch.js, shared with the red-flag screen.
"use strict";

(() => {
  const APP = location.pathname.replace(/\/+$/, "");
  const { $, setStatus, showError, clearError, checkedInput, focusFirst } = QuestionnaireForm;

  let config = null; // { clientId, scope, questionnaire }
  let fhir = null; // { base, patient, token, encounter, user }
  let saved = false;

  function authHeaders(extra) {
    return SmartLaunch.authHeaders(fhir, extra);
  }

  // ---- the form ------------------------------------------------------------------------------

  function renderForm(questionnaire) {
    QuestionnaireForm.render(
      questionnaire,
      (item) => item.answerOption.map(({ valueCoding }) => ({ value: valueCoding.code, text: valueCoding.display })),
      (item) => (item.answerOption.length > 2 ? "options options-scale" : "options"),
    );
  }

  function answers() {
    const out = {};
    config.questionnaire.item.forEach((item) => {
      const checked = checkedInput(item);
      if (checked) out[item.linkId] = checked.value;
    });
    return out;
  }

  function unanswered() {
    return QuestionnaireForm.unanswered(config.questionnaire);
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
      const reference = SmartLaunch.savedReference(response, body);
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
      focusFirst(missing);
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
    const launched = await SmartLaunch.begin({ app: APP, statePrefix: "startback-smart:", setStatus });
    if (!launched) return; // on the way to the EHR's sign-in
    config = launched.config;
    fhir = launched.fhir;
    renderForm(config.questionnaire);
    $("form").addEventListener("change", onChange);
    $("form").addEventListener("submit", onSubmit);
    $("saved").tabIndex = -1;
    if (fhir) {
      setStatus(fhir.token ? "Signed in through the EHR." : "Development mode: open FHIR server, no sign-in.");
      await SmartLaunch.showPatient(fhir, $("patient"));
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
