/**
 * Drives the live gateway through the generated TypeScript client, as a frontend
 * would: register, verify (the token comes from the test on stdin: it reads the mail
 * the stack sent), log in, refresh, read /users/me; an admin creates a category and
 * products; an anonymous caller pages through them with the cursor; an unknown
 * product answers problem+json. Run by tests/e2e/test_typescript_client.py; prints
 * one JSON line per step on stdout.
 */
import assert from "node:assert/strict";
import { randomUUID } from "node:crypto";
import { createInterface } from "node:readline";

import {
  createShopstackClient,
  isProblem,
  linkUrl,
  paginate,
  unwrap,
  type Schemas,
} from "../typescript/src/index.js";

const env = (name: string): string => {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set`);
  return value;
};
const baseUrl = env("GATEWAY_URL");
const email = env("USER_EMAIL");
const password = env("USER_PASSWORD");
const lines = createInterface({ input: process.stdin })[Symbol.asyncIterator]();
const step = (name: string, detail: Record<string, unknown> = {}): void => {
  process.stdout.write(`${JSON.stringify({ step: name, ...detail })}\n`);
};
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

let accessToken: string | undefined;
const api = createShopstackClient({ baseUrl, accessToken: () => accessToken });
const anonymous = createShopstackClient({ baseUrl });

// register -> the verification mail -> verify
const registered = await api.POST("/api/v1/auth/register", { body: { email, password } });
assert.equal(registered.response.status, 202);
step("registered", { email });
const token = (await lines.next()).value as string | undefined;
assert.ok(token, "no verification token on stdin");
const verified = await api.POST("/api/v1/auth/verify-email", { body: { token } });
assert.equal(verified.response.status, 204);
step("verified");

// log in, refresh (the old refresh token is spent), read my profile
const login: Schemas["TokenResponse"] = unwrap(
  await api.POST("/api/v1/auth/login", { body: { email, password } }),
);
assert.equal(login.token_type, "bearer");
const refreshed = unwrap(
  await api.POST("/api/v1/auth/refresh", { body: { refresh_token: login.refresh_token } }),
);
assert.notEqual(refreshed.refresh_token, login.refresh_token);
accessToken = refreshed.access_token;
step("logged in and refreshed");

// The profile is built from the user.registered event: it may take a moment.
let me: Schemas["ProfileOut"] | undefined;
for (let tries = 0; me === undefined && tries < 100; tries++) {
  const answer = await api.GET("/api/v1/users/me");
  if (answer.response.status === 200) me = answer.data;
  else await sleep(100);
}
assert.ok(me, "GET /api/v1/users/me never answered 200");
assert.equal(me.email, email);
assert.equal(me.role, "user");
step("read /users/me", { role: me.role });

// An admin fills a category of its own, so the pages below are exactly ours.
const admin = unwrap(
  await anonymous.POST("/api/v1/auth/login", {
    body: { email: env("ADMIN_EMAIL"), password: env("ADMIN_PASSWORD") },
  }),
);
const asAdmin = createShopstackClient({ baseUrl, accessToken: () => admin.access_token });
const suffix = randomUUID().slice(0, 8);
const category = unwrap(
  await asAdmin.POST("/api/v1/catalog/categories", {
    body: { slug: `ts-client-${suffix}`, name: `TypeScript client ${suffix}` },
  }),
);
const created = new Set<string>();
for (let i = 0; i < 7; i++) {
  const product = unwrap(
    await asAdmin.POST("/api/v1/catalog/products", {
      params: { header: { "Idempotency-Key": `ts-${suffix}-${i}` } },
      body: {
        sku: `TS-${suffix}-${i}`,
        name: `Typed product ${i}`,
        price: "9.50",
        currency: "EUR",
        stock: i,
        status: "active",
        category_id: category.id,
      },
    }),
  );
  created.add(product.id);
}
step("admin created products", { count: created.size });

// Anonymous pages of 3, following the cursor; the Link header agrees with the body.
const sizes: number[] = [];
const seen: string[] = [];
for await (const items of paginate(async (cursor) => {
  const answer = await anonymous.GET("/api/v1/catalog/products", {
    params: { query: { category: category.id, limit: 3, sort: "newest", cursor } },
  });
  const page = unwrap(answer);
  const next = linkUrl(answer.response, "next");
  if (page.next_cursor) {
    assert.ok(next, "a next page without a Link rel=next");
    const linked = new URL(next, baseUrl).searchParams.get("cursor");
    assert.equal(linked, page.next_cursor);
  } else {
    assert.equal(next, undefined);
  }
  return page;
})) {
  sizes.push(items.length);
  seen.push(...items.map((p) => p.id));
}
assert.deepEqual(sizes, [3, 3, 1]);
assert.deepEqual(new Set(seen), created);
step("paged through products", { pages: sizes });

// Errors are problem+json, typed.
const missing = await anonymous.GET("/api/v1/catalog/products/{product_id}", {
  params: { path: { product_id: randomUUID() } },
});
assert.equal(missing.response.status, 404);
assert.match(missing.response.headers.get("Content-Type") ?? "", /application\/problem\+json/);
assert.ok(isProblem(missing.error), "a 404 without a problem document");
assert.equal(missing.error.status, 404);
step("problem+json", { type: missing.error.type });

step("done");
process.exit(0);
