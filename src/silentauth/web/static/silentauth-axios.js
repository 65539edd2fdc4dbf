/**
 * silentauth-axios.js: the silentauth client as axios interceptors.
 *
 *   import axios from "axios";
 *   import { createAuthClient } from "/static/silentauth.js";
 *   import { attachSilentAuth } from "/static/silentauth-axios.js";
 *   const api = axios.create();
 *   const detach = attachSilentAuth(api, createAuthClient());
 *
 * Unlike the common `isRefreshing` recipe, the refresh itself is the auth client's: one
 * refresh per tab and across tabs, a late 401 for an already replaced token only
 * retries, and the refresh call never passes through these interceptors, so it cannot
 * queue behind itself.
 */

import { bindingHooks, parseBearerChallenge, StepUpRequiredError } from "./silentauth.js";

// String keys: axios copies config by Object.keys on a retry, symbols would be lost.
const USED = "silentauthToken";
const RETRIED = "silentauthRetried";

function header(headers, name) {
  if (!headers) return null;
  if (typeof headers.get === "function") return headers.get(name) ?? null;
  return headers[name.toLowerCase()] ?? headers[name] ?? null;
}

/** Where the response came from: the XHR's URL after redirects, else the request's. */
function finalUrl(axiosInstance, response) {
  return response.request?.responseURL || axiosInstance.getUri(response.config ?? {});
}

/**
 * Attach `auth` (from createAuthClient) to an axios instance: bearer token on every
 * request to the issuer's origin or an `apiOrigins` one, one refresh and one retry on a
 * 401 invalid_token, `New-Access-Token` adopted from those origins only, step-up
 * challenges rejected as StepUpRequiredError. Returns a detach function.
 */
export function attachSilentAuth(axiosInstance, auth) {
  const hooks = bindingHooks(auth);
  const onRequest = axiosInstance.interceptors.request.use(async (config) => {
    config[USED] = null;
    // The full URL, as axios will build it (baseURL, allowAbsoluteUrls, params).
    if (!hooks.sendsTokenTo(axiosInstance.getUri(config))) return config;
    const token = await auth.getAccessToken(config.signal);
    if (typeof config.headers?.set === "function") {
      config.headers.set("Authorization", `Bearer ${token}`);
    } else {
      config.headers = { ...config.headers, Authorization: `Bearer ${token}` };
    }
    config[USED] = token;
    return config;
  });

  const onResponse = axiosInstance.interceptors.response.use(
    (response) => {
      const pushed = header(response.headers, "New-Access-Token");
      if (!pushed) return response;
      const url = finalUrl(axiosInstance, response);
      if (response.config?.[USED] && hooks.sendsTokenTo(url)) {
        auth.adoptPushedToken(pushed, response.config[USED]);
      } else {
        hooks.ignoreRenewal(url);
      }
      return response;
    },
    async (error) => {
      const { response, config } = error ?? {};
      if (!response || response.status !== 401 || !config?.[USED]) throw error;
      if (!hooks.sendsTokenTo(finalUrl(axiosInstance, response))) throw error; // redirected away
      const challenge = parseBearerChallenge(header(response.headers, "WWW-Authenticate"));
      if (challenge.error === "insufficient_user_authentication") {
        throw new StepUpRequiredError(challenge.maxAge, response);
      }
      if (config[RETRIED]) throw error; // one retry, never a loop
      await auth.refreshAfterRejection(config[USED]);
      config[RETRIED] = true;
      // Through the request interceptor again: it attaches whatever token is current now.
      return axiosInstance.request(config);
    },
  );

  return () => {
    axiosInstance.interceptors.request.eject(onRequest);
    axiosInstance.interceptors.response.eject(onResponse);
  };
}
