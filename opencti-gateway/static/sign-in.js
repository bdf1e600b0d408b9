// The sign-in page: the agent's id and password go to POST /api/sign-in; the token it
// answers opens the panel, or a supervisor's wallboard (which take it out of the address
// bar at once).

import { signIn } from "./sign-in-request.js";

const form = document.getElementById("sign-in");
const problem = document.getElementById("sign-in-error");

form.addEventListener("submit", async (event) => {
  event.preventDefault();
  problem.textContent = "";
  try {
    const answer = await signIn(
      "api/sign-in",
      document.getElementById("agent").value,
      document.getElementById("password").value,
    );
    // A supervisor goes to the wallboard, an agent to their desk.
    const page = answer.role === "supervisor" ? "./wallboard" : "./";
    location.replace(page + "#token=" + encodeURIComponent(answer.token));
  } catch (error) {
    // Shown as text, never as markup.
    problem.textContent = error.message;
  }
});
