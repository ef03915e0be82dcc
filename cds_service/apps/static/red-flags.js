// Red-flag screen app: the 12 yes / no items rendered from the service's Questionnaire, read by
// the service (the same code that reads the screen back in hook calls), and the completed
// QuestionnaireResponse written to the FHIR server straight from the browser with the launch's
// access token. The SMART launch is smart-launch.js, shared with the STarT Back app.
"use strict";

(() => {
  const APP = location.pathname.replace(/\/+$/, "");
  const { $, setStatus, showError, clearError, checkedInput, focusFirst } = QuestionnaireForm;
  const ANSWERS = [{ value: "true", text: "Yes" }, { value: "false", text: "No" }];

  let config = null; // { clientId, scope, questionnaire }
  let fhir = null; // { base, patient, token, encounter, user }
  let saved = false;

  // ---- the form ------------------------------------------------------------------------------

  function renderForm(questionnaire) {
    QuestionnaireForm.render(questionnaire, () => ANSWERS, () => "options");
  }

  function answers() {
    const out = {};
    config.questionnaire.item.forEach((item) => {
      const checked = checkedInput(item);
      if (checked) out[item.linkId] = checked.value === "true";
    });
    return out;
  }

  function unanswered() {
    return QuestionnaireForm.unanswered(config.questionnaire);
  }

  // The service reads the answers as the cards will; with the patient, it also builds the
  // QuestionnaireResponse to write.
  async function readAnswers(withPatient) {
    const body = { answers: answers() };
    if (withPatient) {
      body.patient = fhir.patient;
      body.authored = new Date().toISOString();
      if (fhir.encounter) body.encounter = fhir.encounter;
      if (fhir.user) body.author = fhir.user;
    }
    const response = await fetch(`${APP}/response`, {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (error) { data = null; }
    if (!response.ok) {
      throw new Error(SmartLaunch.outcomeText(data) || `The answers could not be read (HTTP ${response.status}).`);
    }
    return data;
  }

  function showResult(result) {
    const verdict = $("result-verdict");
    verdict.dataset.negative = String(result.negative);
    verdict.textContent = result.negative
      ? "Negative: no red flag."
      : `${result.yes.length === 1 ? "1 red flag" : `${result.yes.length} red flags`}: consider serious pathology.`;
    const list = $("result-flags");
    list.textContent = "";
    result.yes.forEach((flag) => {
      const entry = document.createElement("li");
      entry.textContent = `${flag.item[0].toUpperCase()}${flag.item.slice(1)} (${flag.flag})`;
      list.append(entry);
    });
    list.hidden = result.yes.length === 0;
    $("result").hidden = false;
  }

  async function onChange() {
    if (saved) return;
    const missing = unanswered();
    const count = config.questionnaire.item.length;
    $("progress").textContent = `${count - missing.length} of ${count} answered`;
    $("progress").classList.toggle("done", missing.length === 0);
    $("rest-no").disabled = missing.length === 0;
    if (missing.length === 0) {
      try {
        clearError();
        showResult(await readAnswers(false));
      } catch (error) {
        showError(error.message);
      }
    } else {
      $("result").hidden = true;
    }
  }

  // "Two clicks" for a patient without red flags: every item not yet answered becomes No (a Yes
  // already chosen stays), then Save.
  function answerNoToTheRest() {
    unanswered().forEach((item) => {
      document.getElementById(`a-${item.linkId}-false`).checked = true;
    });
    onChange();
    $("save").focus();
  }

  // ---- saving to the FHIR server ----------------------------------------------------------

  async function save(resource) {
    const response = await fetch(`${fhir.base}/QuestionnaireResponse`, {
      method: "POST",
      headers: SmartLaunch.authHeaders(fhir, { "Content-Type": "application/fhir+json" }),
      body: JSON.stringify(resource),
    });
    let body = null;
    try { body = await response.json(); } catch (error) { body = null; }
    if (!response.ok) {
      const why = SmartLaunch.outcomeText(body);
      throw new Error(`The FHIR server refused the screen (HTTP ${response.status})${why ? `: ${why}` : "."} It is not saved.`);
    }
    const reference = SmartLaunch.savedReference(response, body);
    if (!reference) throw new Error("The FHIR server did not say where it saved the screen.");
    return reference;
  }

  async function onSubmit(event) {
    event.preventDefault();
    clearError();
    const missing = unanswered();
    if (missing.length > 0) {
      const numbers = missing.map((item) => item.prefix).join(", ");
      showError(`Please answer every item, yes or no (missing: ${numbers}).`);
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
      const result = await readAnswers(true);
      showResult(result);
      const reference = await save(result.resource);
      saved = true;
      document.querySelectorAll("#items input").forEach((input) => { input.disabled = true; });
      button.hidden = true;
      $("rest-no").hidden = true;
      const line = $("saved");
      line.textContent = `Saved to the record: ${reference}.`;
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
    const launched = await SmartLaunch.begin({ app: APP, statePrefix: "red-flags-smart:", setStatus });
    if (!launched) return; // on the way to the EHR's sign-in
    config = launched.config;
    fhir = launched.fhir;
    renderForm(config.questionnaire);
    $("form").addEventListener("change", onChange);
    $("form").addEventListener("submit", onSubmit);
    $("rest-no").addEventListener("click", answerNoToTheRest);
    $("saved").tabIndex = -1;
    if (fhir) {
      setStatus(fhir.token ? "Signed in through the EHR." : "Development mode: open FHIR server, no sign-in.");
      await SmartLaunch.showPatient(fhir, $("patient"));
    } else {
      setStatus("No patient record is open: the screen can be filled in but not saved. Launch the app from the EHR.");
      $("save").disabled = true;
    }
    onChange();
  }

  document.addEventListener("DOMContentLoaded", () => {
    main().catch((error) => {
      setStatus("The screen could not start.");
      showError(error.message);
    });
  });
})();
