// What the questionnaire apps' pages share (the STarT Back questionnaire, the red-flag screen): the
// status line and the error box, the Questionnaire's items rendered as one fieldset each (its
// legend: number and text) of radio buttons, so keyboard and screen-reader use is the same in both,
// and the page's flow (`start`): progress, the service's reading of the complete answers, Save.
"use strict";

const QuestionnaireForm = (() => {
  const $ = (id) => document.getElementById(id);

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

  // choices(item): the item's answers as [{ value, text }]; optionsClass(item): the class of
  // the box that holds them. Each radio's id is `a-<linkId>-<value>`.
  function render(questionnaire, choices, optionsClass) {
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
      options.className = optionsClass(item);
      choices(item).forEach(({ value, text }) => {
        const id = `a-${item.linkId}-${value}`;
        const input = document.createElement("input");
        input.type = "radio";
        input.name = item.linkId;
        input.value = value;
        input.id = id;
        input.required = true;
        const label = document.createElement("label");
        label.htmlFor = id;
        label.className = "option";
        label.append(input, document.createTextNode(` ${text}`));
        options.append(label);
      });
      fieldset.append(options);
      container.append(fieldset);
    });
    $("form").hidden = false;
  }

  function checkedInput(item) {
    return document.querySelector(`input[name="${CSS.escape(item.linkId)}"]:checked`);
  }

  function unanswered(questionnaire) {
    return questionnaire.item.filter((item) => !checkedInput(item));
  }

  // Moves the keyboard to the first unanswered item.
  function focusFirst(missing) {
    const first = document.querySelector(`#item-${CSS.escape(missing[0].linkId)} input`);
    if (first) first.focus();
  }

  // The page's flow, the same in every app. `app` describes what differs:
  //   path, statePrefix: the page's path and its SMART state key prefix;
  //   choices(item), optionsClass(item): as for render;
  //   answerValue(value): the answer a checked radio's value stands for;
  //   read: { path, failed }: the service route that reads the answers ("score", "response") and
  //     the text when it fails without saying why; withAuthor: send the signed-in user as author;
  //   showResult(result): what the service read;
  //   save(result, fhir): writes to the FHIR server, resolves to what was saved (references);
  //   texts: { missing, noRecord, startFailed };
  //   onProgress(missing), onSaved(), setup(form): optional, for the app's own controls
  //     (form: { unanswered, refresh }).
  function start(app) {
    let config = null; // { clientId, scope, questionnaire }
    let fhir = null; // { base, patient, token, encounter, user }
    let saved = false;

    function answers() {
      const out = {};
      config.questionnaire.item.forEach((item) => {
        const checked = checkedInput(item);
        if (checked) out[item.linkId] = app.answerValue(checked.value);
      });
      return out;
    }

    const missingItems = () => unanswered(config.questionnaire);

    // The service reads the answers as the cards will; with the patient, it also builds the
    // resources to write.
    async function read(withPatient) {
      const body = { answers: answers() };
      if (withPatient) {
        body.patient = fhir.patient;
        body.authored = new Date().toISOString();
        if (fhir.encounter) body.encounter = fhir.encounter;
        if (app.withAuthor && fhir.user) body.author = fhir.user;
      }
      const response = await fetch(`${app.path}/${app.read.path}`, {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify(body),
      });
      const data = await SmartLaunch.jsonOrNull(response);
      if (!response.ok) {
        throw new Error(SmartLaunch.outcomeText(data) || `${app.read.failed} (HTTP ${response.status}).`);
      }
      return data;
    }

    async function refresh() {
      if (saved) return;
      const missing = missingItems();
      const count = config.questionnaire.item.length;
      $("progress").textContent = `${count - missing.length} of ${count} answered`;
      $("progress").classList.toggle("done", missing.length === 0);
      if (app.onProgress) app.onProgress(missing);
      if (missing.length === 0) {
        try {
          clearError();
          app.showResult(await read(false));
        } catch (error) {
          showError(error.message);
        }
      } else {
        $("result").hidden = true;
      }
    }

    async function onSubmit(event) {
      event.preventDefault();
      clearError();
      const missing = missingItems();
      if (missing.length > 0) {
        showError(app.texts.missing(missing.map((item) => item.prefix).join(", ")));
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
        const result = await read(true);
        app.showResult(result);
        const what = await app.save(result, fhir);
        saved = true;
        document.querySelectorAll("#items input").forEach((input) => { input.disabled = true; });
        button.hidden = true;
        if (app.onSaved) app.onSaved();
        const line = $("saved");
        line.textContent = `Saved to the record: ${what}.`;
        line.hidden = false;
        setStatus("Saved.");
        line.focus();
      } catch (error) {
        button.disabled = false;
        setStatus("Not saved.");
        showError(error.message);
      }
    }

    async function main() {
      const launched = await SmartLaunch.begin({ app: app.path, statePrefix: app.statePrefix, setStatus });
      if (!launched) return; // on the way to the EHR's sign-in
      config = launched.config;
      fhir = launched.fhir;
      render(config.questionnaire, app.choices, app.optionsClass);
      $("form").addEventListener("change", refresh);
      $("form").addEventListener("submit", onSubmit);
      if (app.setup) app.setup({ unanswered: missingItems, refresh });
      $("saved").tabIndex = -1;
      if (fhir) {
        setStatus(fhir.token ? "Signed in through the EHR." : "Development mode: open FHIR server, no sign-in.");
        await SmartLaunch.showPatient(fhir, $("patient"));
      } else {
        setStatus(app.texts.noRecord);
        $("save").disabled = true;
      }
      refresh();
    }

    document.addEventListener("DOMContentLoaded", () => {
      main().catch((error) => {
        setStatus(app.texts.startFailed);
        showError(error.message);
      });
    });
  }

  return { $, start };
})();
