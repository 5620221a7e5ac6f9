// The @deno/kv npm client against `valkeyrie serve`. `.ci/run` starts the server and passes
// its address in KV_URL and the token in KV_TOKEN; every test uses its own key prefix.
import { test, after } from "node:test";
import assert from "node:assert/strict";
import { openKv } from "@deno/kv";

const url = process.env.KV_URL;
const accessToken = process.env.KV_TOKEN;
assert.ok(url && accessToken, "set KV_URL and KV_TOKEN");

const kv = await openKv(url, { accessToken });
after(() => kv.close());

test("set, get and delete keep V8 values", async () => {
  const value = { name: "ada", tags: ["x", 1n], when: new Date(0), bytes: new Uint8Array([1, 2]) };
  const res = await kv.set(["basic", "a"], value);
  assert.ok(res.ok);
  assert.equal(typeof res.versionstamp, "string");
  const got = await kv.get(["basic", "a"]);
  assert.deepEqual(got.value, value);
  assert.equal(got.versionstamp, res.versionstamp);
  await kv.delete(["basic", "a"]);
  const gone = await kv.get(["basic", "a"]);
  assert.equal(gone.value, null);
  assert.equal(gone.versionstamp, null);
});

test("getMany", async () => {
  await kv.set(["many", 1], "one");
  await kv.set(["many", 2], "two");
  const got = await kv.getMany([["many", 1], ["many", 2], ["many", 3]]);
  assert.deepEqual(got.map((e) => e.value), ["one", "two", null]);
});

test("list with cursors, limits and reverse", async () => {
  for (let i = 0; i < 7; i++) await kv.set(["list", i], i * 10);
  const all = [];
  for await (const e of kv.list({ prefix: ["list"] })) all.push(e.key[1]);
  assert.deepEqual(all, [0, 1, 2, 3, 4, 5, 6]);

  const first = kv.list({ prefix: ["list"] }, { limit: 3 });
  const page1 = [];
  for await (const e of first) page1.push(e.key[1]);
  assert.deepEqual(page1, [0, 1, 2]);
  const rest = [];
  for await (const e of kv.list({ prefix: ["list"] }, { cursor: first.cursor })) rest.push(e.key[1]);
  assert.deepEqual(rest, [3, 4, 5, 6]);

  const rev = [];
  for await (const e of kv.list({ prefix: ["list"] }, { reverse: true, limit: 2 })) rev.push(e.key[1]);
  assert.deepEqual(rev, [6, 5]);

  const range = [];
  for await (const e of kv.list({ start: ["list", 2], end: ["list", 5] })) range.push(e.key[1]);
  assert.deepEqual(range, [2, 3, 4]);

  const small = [];
  for await (const e of kv.list({ prefix: ["list"] }, { batchSize: 2 })) small.push(e.key[1]);
  assert.deepEqual(small, [0, 1, 2, 3, 4, 5, 6]);
});

test("atomic checks commit or fail together", async () => {
  const key = ["atomic", "balance"];
  const ok = await kv.atomic().check({ key, versionstamp: null }).set(key, 100).commit();
  assert.ok(ok.ok);
  const stale = await kv.atomic().check({ key, versionstamp: null }).set(key, 1).commit();
  assert.equal(stale.ok, false);
  const cur = await kv.get(key);
  assert.equal(cur.value, 100);
  const again = await kv.atomic().check(cur).set(key, 200).delete(["atomic", "other"]).commit();
  assert.ok(again.ok);
  assert.equal((await kv.get(key)).value, 200);
});

test("sum, min and max on KvU64", async () => {
  const key = ["counter", "c"];
  await kv.atomic().sum(key, 5n).commit();
  await kv.atomic().sum(key, 7n).commit();
  assert.equal((await kv.get(key)).value.value, 12n);
  await kv.atomic().min(key, 3n).commit();
  assert.equal((await kv.get(key)).value.value, 3n);
  await kv.atomic().max(key, 40n).commit();
  assert.equal((await kv.get(key)).value.value, 40n);
  // The client does not export KvU64; a read counter's constructor is it (sent as LE64).
  const KvU64 = (await kv.get(key)).value.constructor;
  await kv.set(["counter", "d"], new KvU64(9n));
  assert.equal((await kv.get(["counter", "d"])).value.value, 9n);
});

test("expireIn hides the entry after the deadline", async () => {
  await kv.set(["expiring"], "soon", { expireIn: 300 });
  assert.equal((await kv.get(["expiring"])).value, "soon");
  await new Promise((r) => setTimeout(r, 700));
  assert.equal((await kv.get(["expiring"])).value, null);
});

test("versionstamps of commits increase and match the stored entries", async () => {
  // @deno/kv 0.12 has no API for suffix-versionstamped keys (the Rust tests cover
  // M_SET_SUFFIX_VERSIONSTAMPED_KEY); its versionstamps are checked here.
  const a = await kv.set(["stamps", "a"], 1);
  const b = await kv.atomic().set(["stamps", "b"], 2).commit();
  assert.ok(a.versionstamp < b.versionstamp);
  assert.equal(a.versionstamp.length, 20);
  assert.equal((await kv.get(["stamps", "a"])).versionstamp, a.versionstamp);
  assert.equal((await kv.get(["stamps", "b"])).versionstamp, b.versionstamp);
});

test("watch streams the current value, then changes", async () => {
  const key = ["watched"];
  await kv.set(key, 1);
  const stream = kv.watch([key]);
  const reader = stream.getReader();
  const first = await reader.read();
  assert.equal(first.value[0].value, 1);
  const started = Date.now();
  await kv.set(key, 2);
  let next = await reader.read();
  while (next.value[0].value !== 2) next = await reader.read();
  assert.ok(Date.now() - started < 5000);
  await reader.cancel();
});

test("a wrong token is refused", async () => {
  await assert.rejects(async () => {
    const bad = await openKv(url, { accessToken: "wrong-token-123456" });
    try {
      await bad.get(["basic", "a"]);
    } finally {
      bad.close();
    }
  });
});
