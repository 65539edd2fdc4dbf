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

/**
 * The parts of an axios (>= 1) instance this binding uses: an `AxiosInstance` fits, with
 * `C` its request config and `R` its response type.
 * @template {RequestConfig} C
 * @template {ResponseLike} R
 * @typedef {object} AxiosLike
 * @property {{ request: Interceptors<C>, response: Interceptors<R> }} interceptors
 * @property {(config?: C) => string} getUri
 * @property {(config: C) => Promise<unknown>} request
 */
/**
 * @template V
 * @typedef {object} Interceptors
 * @property {(onFulfilled: (value: V) => V | Promise<V>, onRejected?: (error: any) => any) => number} use
 * @property {(id: number) => void} eject
 */
/**
 * @typedef {{ url?: string, baseURL?: string, signal?: unknown, headers?: unknown,
 *   silentauthToken?: string | null, silentauthRetried?: boolean }} RequestConfig
 * @typedef {{ status: number, headers?: unknown, config?: RequestConfig,
 *   request?: { responseURL?: string } }} ResponseLike
 * @typedef {import("./silentauth.js").AuthClient} AuthClient
 */

// String keys: axios copies config by Object.keys on a retry, symbols would be lost.
const USED = "silentauthToken";
const RETRIED = "silentauthRetried";

/**
 * A header of an axios response: AxiosHeaders or a plain object.
 * @param {unknown} headers
 * @param {string} name
 * @returns {string | null}
 */
function header(headers, name) {
  if (!headers || typeof headers !== "object") return null;
  const h = /** @type {{ get?: (name: string) => unknown, [key: string]: unknown }} */ (headers);
  const value = typeof h.get === "function" ? h.get(name) : (h[name.toLowerCase()] ?? h[name]);
  return typeof value === "string" ? value : null;
}

/**
 * Where the response came from: the XHR's URL after redirects, else the request's.
 * @template {RequestConfig} C
 * @template {ResponseLike} R
 * @param {AxiosLike<C, R>} axiosInstance
 * @param {ResponseLike} response
 * @returns {string}
 */
function finalUrl(axiosInstance, response) {
  return response.request?.responseURL || axiosInstance.getUri(/** @type {C | undefined} */ (response.config));
}

/**
 * Attach `auth` (from createAuthClient) to an axios instance: bearer token on every
 * request to the issuer's origin or an `apiOrigins` one, one refresh and one retry on a
 * 401 invalid_token, `New-Access-Token` adopted from those origins only, step-up
 * challenges rejected as StepUpRequiredError. Returns a detach function.
 * @template {RequestConfig} C
 * @template {ResponseLike} R
 * @param {AxiosLike<C, R>} axiosInstance
 * @param {AuthClient} auth
 * @returns {() => void}
 */
export function attachSilentAuth(axiosInstance, auth) {
  const hooks = bindingHooks(auth);
  const onRequest = axiosInstance.interceptors.request.use(async (config) => {
    config[USED] = null;
    // The full URL, as axios will build it (baseURL, allowAbsoluteUrls, params).
    if (!hooks.sendsTokenTo(axiosInstance.getUri(config))) return config;
    const signal = config.signal instanceof AbortSignal ? config.signal : undefined;
    const token = await auth.getAccessToken(signal);
    const headers = /** @type {{ set?: (name: string, value: string) => void } | undefined} */ (config.headers);
    if (typeof headers?.set === "function") {
      headers.set("Authorization", `Bearer ${token}`);
    } else {
      /** @type {RequestConfig} */ (config).headers = {
        ...(/** @type {object} */ (config.headers ?? {})), Authorization: `Bearer ${token}`,
      };
    }
    config[USED] = token;
    return config;
  });

  const onResponse = axiosInstance.interceptors.response.use(
    (response) => {
      const pushed = header(response.headers, "New-Access-Token");
      if (!pushed) return response;
      const url = finalUrl(axiosInstance, response);
      const used = response.config?.[USED];
      if (used && hooks.sendsTokenTo(url)) {
        hooks.adoptPushedToken(pushed, used);
      } else {
        hooks.ignoreRenewal(url);
      }
      return response;
    },
    /** @param {{ response?: ResponseLike, config?: C } | undefined} error an AxiosError, or anything thrown */
    async (error) => {
      const { response, config } = error ?? {};
      const used = config?.[USED];
      if (!response || response.status !== 401 || !config || !used) throw error;
      if (!hooks.sendsTokenTo(finalUrl(axiosInstance, response))) throw error; // redirected away
      const challenge = parseBearerChallenge(header(response.headers, "WWW-Authenticate"));
      if (challenge.error === "insufficient_user_authentication") {
        throw new StepUpRequiredError(challenge.maxAge, response);
      }
      if (config[RETRIED]) throw error; // one retry, never a loop
      await hooks.refreshAfterRejection(used);
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
