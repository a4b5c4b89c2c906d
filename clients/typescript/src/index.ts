/**
 * The shopstack API client: openapi-fetch typed by the schema that `make clients`
 * generates from the gateway's merged OpenAPI document (./schema.d.ts), plus the few
 * helpers every caller needs (bearer token, cursors, problem+json, Retry-After).
 */
import createClient, { type Client, type ClientOptions, type Middleware } from "openapi-fetch";

import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };
export type Schemas = components["schemas"];
export type Problem = components["schemas"]["Problem"];
export type ShopstackClient = Client<paths>;
/** fetch as openapi-fetch calls it: with one Request. */
export type Fetch = (input: Request) => Promise<Response>;

export interface ShopstackOptions extends ClientOptions {
  /** The gateway, e.g. http://localhost:8000 (no trailing /api/v1). */
  baseUrl: string;
  /** The current access token, if any; asked before every request. */
  accessToken?: () => string | undefined | Promise<string | undefined>;
  /** Retries of a request answered 429 or 503 (after Retry-After); 0 disables. */
  retries?: number;
  /** The longest wait honoured between two tries, in seconds. */
  maxRetryAfterSeconds?: number;
}

/** A client for every operation of every service behind the gateway. */
export function createShopstackClient(options: ShopstackOptions): ShopstackClient {
  const { accessToken, retries = 2, maxRetryAfterSeconds = 30, ...rest } = options;
  const baseFetch: Fetch = rest.fetch ?? ((request) => globalThis.fetch(request));
  const client = createClient<paths>({
    ...rest,
    fetch: retries > 0 ? retryingFetch(baseFetch, retries, maxRetryAfterSeconds) : baseFetch,
  });
  if (accessToken) client.use(bearer(accessToken));
  return client;
}

function bearer(token: () => string | undefined | Promise<string | undefined>): Middleware {
  return {
    async onRequest({ request }) {
      const value = await token();
      if (value && !request.headers.has("Authorization")) {
        request.headers.set("Authorization", `Bearer ${value}`);
      }
      return request;
    },
  };
}

/**
 * fetch that waits and tries again on 429 and 503, as long as the answer says when
 * (Retry-After) and that wait is short enough.
 */
export function retryingFetch(inner: Fetch, retries: number, maxRetryAfterSeconds: number): Fetch {
  return async (request: Request): Promise<Response> => {
    for (let attempt = 0; ; attempt++) {
      const response = await inner(request.clone());
      if (attempt >= retries || (response.status !== 429 && response.status !== 503)) {
        return response;
      }
      const wait = retryAfterSeconds(response);
      if (wait === undefined || wait > maxRetryAfterSeconds) return response;
      await response.body?.cancel();
      // Full jitter on top of the server's hint: many clients told the same second
      // must not all come back in the same millisecond.
      const jitter = Math.random() * Math.min(1, wait / 2 + 0.1);
      await new Promise((resolve) => setTimeout(resolve, (wait + jitter) * 1000));
    }
  };
}

/** Retry-After in seconds (delta-seconds or an HTTP date), or undefined. */
export function retryAfterSeconds(response: Response): number | undefined {
  const value = response.headers.get("Retry-After");
  if (value === null) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim());
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, (date - Date.now()) / 1000);
}

/** The URL of a relation (`next`, `prev`) in an RFC 8288 Link header, or undefined. */
export function linkUrl(response: Response, rel: string): string | undefined {
  const header = response.headers.get("Link");
  if (!header) return undefined;
  // Cursors and query values are URL-encoded: a comma only separates links.
  for (const part of header.split(",")) {
    const link = /^\s*<([^>]*)>(.*)$/.exec(part);
    const rels = link && /;\s*rel="?([^";]+)"?/i.exec(link[2] ?? "");
    if (link?.[1] !== undefined && rels?.[1]?.trim().split(/\s+/).includes(rel)) return link[1];
  }
  return undefined;
}

/** Whether a value is an RFC 9457 problem document, as every error of the API is. */
export function isProblem(value: unknown): value is Problem {
  return (
    typeof value === "object" &&
    value !== null &&
    typeof (value as Problem).status === "number" &&
    typeof (value as Problem).title === "string"
  );
}

/** An error carrying the problem document the API answered with. */
export class ApiError extends Error {
  readonly problem: Problem;
  readonly response: Response;

  constructor(problem: Problem, response: Response) {
    super(`${problem.status} ${problem.title}${problem.detail ? `: ${problem.detail}` : ""}`);
    this.name = "ApiError";
    this.problem = problem;
    this.response = response;
  }
}

/** The data of an openapi-fetch answer, or an ApiError with its problem document. */
export function unwrap<T>(result: { data?: T; error?: unknown; response: Response }): T {
  if (result.error !== undefined || !result.response.ok) {
    const problem = isProblem(result.error)
      ? result.error
      : { type: "about:blank", title: result.response.statusText, status: result.response.status };
    throw new ApiError(problem, result.response);
  }
  return result.data as T;
}

/**
 * Every item of a cursor-paginated list, page by page: `fetchPage(cursor)` asks for
 * one page (undefined: the first) and the loop follows `next_cursor` until it is null.
 */
export async function* paginate<T>(
  fetchPage: (
    cursor: string | undefined,
  ) => Promise<{ items: T[]; next_cursor?: string | null }>,
): AsyncGenerator<T[], void, undefined> {
  let cursor: string | undefined;
  do {
    const page = await fetchPage(cursor);
    yield page.items;
    cursor = page.next_cursor ?? undefined;
  } while (cursor);
}
