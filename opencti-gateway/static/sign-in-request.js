// Signs an agent in to the gateway: POST api/sign-in with the agent's id and password,
// answering the token or throwing an Error whose message is for the agent (as text).

/**
 * @param {string|URL} url   the gateway's api/sign-in endpoint
 * @param {string} agent
 * @param {string} password
 * @returns {Promise<string>} the agent's token
 */
export async function requestToken(url, agent, password) {
  return (await signIn(url, agent, password)).token;
}

/**
 * The same, answering what the gateway said: `{token, agent, role, expires_in}`, where
 * `role` is "agent" or "supervisor".
 * @param {string|URL} url
 * @param {string} agent
 * @param {string} password
 */
export async function signIn(url, agent, password) {
  let answer;
  try {
    const response = await fetch(url, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ agent, password }),
    });
    answer = await response.json();
  } catch (e) {
    throw new Error("The gateway did not answer: " + e);
  }
  if (answer && typeof answer.token === "string") return answer;
  throw new Error((answer && answer.error && answer.error.message) || "Sign-in refused");
}
