// STarT Back questionnaire app: the 9 items rendered from the service's Questionnaire, scoring by
// the service, and the write of a QuestionnaireResponse plus three Observations to the FHIR
// server, straight from the browser. The SMART launch (EHR launch with PKCE, or development mode)
// is smart-launch.js and the page's flow questionnaire-form.js, both shared with the red-flag
// screen.
"use strict";

(() => {
  const { $ } = QuestionnaireForm;

  function showResult(result) {
    const riskNames = { low: "Low risk", medium: "Medium risk", high: "High risk" };
    $("result-risk").textContent = riskNames[result.risk];
    $("result-risk").dataset.risk = result.risk;
    $("result-total").textContent = `${result.total} of 9`;
    $("result-subscale").textContent = `${result.subscale} of 5`;
    $("result-care").textContent = `Matched care: ${result.care}`;
    $("result").hidden = false;
  }

  async function saveOneByOne(bundle, fhir) {
    // For servers without transactions: POST in order, swapping each urn:uuid for the new id.
    const created = {};
    const references = [];
    for (const entry of bundle.entry) {
      let text = JSON.stringify(entry.resource);
      Object.entries(created).forEach(([urn, ref]) => { text = text.split(`"${urn}"`).join(`"${ref}"`); });
      const response = await fetch(`${fhir.base}/${entry.resource.resourceType}`, {
        method: "POST",
        headers: SmartLaunch.authHeaders(fhir, { "Content-Type": "application/fhir+json" }),
        body: text,
      });
      if (!response.ok) throw new Error(`Saving the ${entry.resource.resourceType} failed (HTTP ${response.status}).`);
      const body = await SmartLaunch.jsonOrNull(response);
      const reference = SmartLaunch.savedReference(response, body);
      if (!reference) throw new Error(`The FHIR server did not say where it saved the ${entry.resource.resourceType}.`);
      created[entry.fullUrl] = reference;
      references.push(reference);
    }
    return references;
  }

  // The transaction Bundle in one POST; a server without transactions gets the resources one by
  // one. What was saved, as references.
  async function save(result, fhir) {
    const bundle = result.bundle;
    const response = await fetch(fhir.base, {
      method: "POST",
      headers: SmartLaunch.authHeaders(fhir, { "Content-Type": "application/fhir+json" }),
      body: JSON.stringify(bundle),
    });
    let references;
    if (response.ok) {
      const answer = await response.json();
      references = (answer.entry || []).map((e) => {
        const location = (e.response || {}).location || "";
        const match = location.match(/([A-Za-z]+\/[A-Za-z0-9\-.]{1,64})(\/_history\/[^/]+)?$/);
        return match ? match[1] : location;
      });
    } else if (response.status === 401 || response.status === 403) {
      throw new Error(`The FHIR server refused the write (HTTP ${response.status}).`);
    } else {
      references = await saveOneByOne(bundle, fhir);
    }
    return references.join(", ");
  }

  QuestionnaireForm.start({
    path: location.pathname.replace(/\/+$/, ""),
    statePrefix: "startback-smart:",
    choices: (item) => item.answerOption.map(({ valueCoding }) => ({ value: valueCoding.code, text: valueCoding.display })),
    optionsClass: (item) => (item.answerOption.length > 2 ? "options options-scale" : "options"),
    answerValue: (value) => value,
    read: { path: "score", failed: "Scoring failed" },
    withAuthor: false,
    showResult,
    save,
    texts: {
      missing: (numbers) => `Please answer every statement (missing: ${numbers}).`,
      noRecord: "No patient record is open: answers can be scored but not saved. Launch the app from the EHR.",
      startFailed: "The questionnaire could not start.",
    },
  });
})();
