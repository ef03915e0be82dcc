// What the questionnaire apps' pages share (the STarT Back questionnaire, the red-flag screen): the
// status line and the error box, and the Questionnaire's items rendered as one fieldset each (its
// legend: number and text) of radio buttons, so keyboard and screen-reader use is the same in both.
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

  return { $, setStatus, showError, clearError, render, checkedInput, unanswered, focusFirst };
})();
