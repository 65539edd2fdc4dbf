// Generated from the JSDoc of the .js file beside it by tests/web/types.mjs: do not edit.
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
export function attachSilentAuth<C extends RequestConfig, R extends ResponseLike>(axiosInstance: AxiosLike<C, R>, auth: AuthClient): () => void;
/**
 * The parts of an axios (>= 1) instance this binding uses: an `AxiosInstance` fits, with
 * `C` its request config and `R` its response type.
 */
export type AxiosLike<C extends RequestConfig, R extends ResponseLike> = {
    interceptors: {
        request: Interceptors<C>;
        response: Interceptors<R>;
    };
    getUri: (config?: C) => string;
    request: (config: C) => Promise<unknown>;
};
export type Interceptors<V> = {
    use: (onFulfilled: (value: V) => V | Promise<V>, onRejected?: (error: any) => any) => number;
    eject: (id: number) => void;
};
export type RequestConfig = {
    url?: string;
    baseURL?: string;
    signal?: unknown;
    headers?: unknown;
    silentauthToken?: string | null;
    silentauthRetried?: boolean;
};
export type ResponseLike = {
    status: number;
    headers?: unknown;
    config?: RequestConfig;
    request?: {
        responseURL?: string;
    };
};
export type AuthClient = import("./silentauth.js").AuthClient;
