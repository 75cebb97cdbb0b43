// The entry page: choose a display name, become a guest player (the API signs the browser in).

import { api, browserUrl, showMessage } from "./api.js";

const form = document.getElementById("guest-form");
const input = document.getElementById("display-name");
const fieldError = document.getElementById("display-name-error");
const formError = document.getElementById("guest-error");
const submit = form.querySelector("button[type=submit]");

function fieldProblem(text) {
  showMessage(fieldError, text);
  if (text) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  fieldProblem("");
  showMessage(formError, "");
  const name = input.value.trim().replace(/\s+/g, " ");
  if (!name) {
    fieldProblem("Choose a display name: it is how other players see you.");
    input.focus();
    return;
  }
  submit.disabled = true;
  submit.textContent = "Joining…";
  try {
    await api("POST", "/api/v1/players/guest", { display_name: name });
    window.location.assign(form.dataset.next || browserUrl);
  } catch (error) {
    if (error.fields && error.fields.display_name) {
      fieldProblem(error.message.replace(/^Display name: /, ""));
      input.focus();
    } else {
      showMessage(formError, error.message);
    }
    submit.disabled = false;
    submit.textContent = "Play as guest";
  }
});
