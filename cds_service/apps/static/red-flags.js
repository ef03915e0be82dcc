// Red-flag screen app: the 12 yes / no items rendered from the service's Questionnaire, read by
// the service (the same code that reads the screen back in hook calls), and the completed
// QuestionnaireResponse written to the FHIR server straight from the browser with the launch's
// access token. The SMART launch is smart-launch.js and the page's flow questionnaire-form.js,
// both shared with the STarT Back app.
"use strict";

(() => {
  const { $ } = QuestionnaireForm;
  const ANSWERS = [{ value: "true", text: "Yes" }, { value: "false", text: "No" }];

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

  async function save(result, fhir) {
    const response = await fetch(`${fhir.base}/QuestionnaireResponse`, {
      method: "POST",
      headers: SmartLaunch.authHeaders(fhir, { "Content-Type": "application/fhir+json" }),
      body: JSON.stringify(result.resource),
    });
    const body = await SmartLaunch.jsonOrNull(response);
    if (!response.ok) {
      const why = SmartLaunch.outcomeText(body);
      throw new Error(`The FHIR server refused the screen (HTTP ${response.status})${why ? `: ${why}` : "."} It is not saved.`);
    }
    const reference = SmartLaunch.savedReference(response, body);
    if (!reference) throw new Error("The FHIR server did not say where it saved the screen.");
    return reference;
  }

  // "Two clicks" for a patient without red flags: every item not yet answered becomes No (a Yes
  // already chosen stays), then Save.
  function setup(form) {
    $("rest-no").addEventListener("click", () => {
      form.unanswered().forEach((item) => {
        document.getElementById(`a-${item.linkId}-false`).checked = true;
      });
      form.refresh();
      $("save").focus();
    });
  }

  QuestionnaireForm.start({
    path: location.pathname.replace(/\/+$/, ""),
    statePrefix: "red-flags-smart:",
    choices: () => ANSWERS,
    optionsClass: () => "options",
    answerValue: (value) => value === "true",
    read: { path: "response", failed: "The answers could not be read" },
    withAuthor: true,
    showResult,
    save,
    texts: {
      missing: (numbers) => `Please answer every item, yes or no (missing: ${numbers}).`,
      noRecord: "No patient record is open: the screen can be filled in but not saved. Launch the app from the EHR.",
      startFailed: "The screen could not start.",
    },
    onProgress: (missing) => { $("rest-no").disabled = missing.length === 0; },
    onSaved: () => { $("rest-no").hidden = true; },
    setup,
  });
})();
