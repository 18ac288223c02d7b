// Drives the live dashboard in Debian's headless Chromium (playwright-core,
// from scripts/browser-env.sh, found through NODE_PATH) against a running
// engine, for engine/tests/dashboard.rs:
//
//   node drive.cjs URL VIEW QUERY SCREENSHOT USER_DATA_DIR
//
// It loads the page, chooses VIEW, and checks, in order: rows appear; the
// connection is compressed (permessage-deflate, which Chromium offers); they
// change while the query runs (a later sequence number and a different
// table); the chart has drawn points on its canvas; the page's MessagePack
// codec gives the bytes of the specification; the query list shows QUERY.
// The screenshot is saved once the view is live, whatever the query list
// does. Each check prints "ok - ..." or "FAIL - ..."; the exit code is 1
// when any failed.
"use strict";

const { chromium } = require("playwright-core");

const [url, view, query, screenshot, userDataDir] = process.argv.slice(2);
if (!userDataDir) {
  console.error("usage: node drive.cjs URL VIEW QUERY SCREENSHOT USER_DATA_DIR");
  process.exit(2);
}

const CHROMIUM_FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

let failures = 0;
const ok = (what) => console.log(`ok - ${what}`);
const fail = (what, why) => {
  failures += 1;
  console.log(`FAIL - ${what}: ${why}`);
};

async function check(what, run) {
  try {
    const detail = await run();
    ok(detail ? `${what} (${detail})` : what);
    return true;
  } catch (error) {
    fail(what, error.message.split("\n")[0]);
    return false;
  }
}

function liveState(page) {
  return page.evaluate(() => ({
    seq: Number(document.getElementById("view-status").dataset.seq),
    rows: document.querySelectorAll("#rows tbody tr").length,
    table: document.querySelector("#rows tbody").innerText,
    header: [...document.querySelectorAll("#rows thead th")].map((th) => th.textContent),
    status: document.getElementById("view-status").textContent,
  }));
}

// Values and their MessagePack bytes as the specification defines the
// formats (the page writes integers beyond a fixint as 64 bits).
const CODEC_VECTORS = [
  { value: { type: "ping" }, bytes: [0x81, 0xa4, 0x74, 0x79, 0x70, 0x65, 0xa4, 0x70, 0x69, 0x6e, 0x67] },
  { value: [1, -1, null, true, false], bytes: [0x95, 0x01, 0xff, 0xc0, 0xc3, 0xc2] },
  { value: 1795602512821752, bytes: [0xcf, 0x00, 0x06, 0x61, 0x17, 0x49, 0xef, 0x3d, 0xf8] },
  { value: -200, bytes: [0xd3, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x38] },
  { value: 64.75, bytes: [0xcb, 0x40, 0x50, 0x30, 0x00, 0x00, 0x00, 0x00, 0x00] },
  { value: "PJM-WESTERN HUB, hourly average", bytes: [0xbf, ...Buffer.from("PJM-WESTERN HUB, hourly average")] },
  { value: "x".repeat(40), bytes: [0xd9, 40, ...Buffer.from("x".repeat(40))] },
];
// Encodings other writers choose (rmp-serde picks the smallest): the decoder must read them all.
const DECODE_ONLY = [
  { bytes: [0xcc, 0xff], value: 255 },
  { bytes: [0xcd, 0x01, 0x00], value: 256 },
  { bytes: [0xce, 0x00, 0x01, 0x00, 0x00], value: 65536 },
  { bytes: [0xd0, 0x80], value: -128 },
  { bytes: [0xd1, 0xff, 0x00], value: -256 },
  { bytes: [0xd2, 0xff, 0xff, 0x00, 0x00], value: -65536 },
  { bytes: [0xca, 0x3f, 0xc0, 0x00, 0x00], value: 1.5 },
  { bytes: [0xdc, 0x00, 0x02, 0x01, 0x02], value: [1, 2] },
  { bytes: [0xde, 0x00, 0x01, 0xa1, 0x6b, 0xa0], value: { k: "" } },
  { bytes: [0xcf, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff], value: 2 ** 63 },
];

async function main() {
  const context = await chromium.launchPersistentContext(userDataDir, {
    executablePath: "/usr/bin/chromium",
    headless: true,
    args: CHROMIUM_FLAGS,
    viewport: { width: 1400, height: 900 },
  });
  const page = context.pages()[0] || (await context.newPage());
  page.on("pageerror", (error) => fail("the page runs without script errors", error.message));
  try {
    const live = await check(`the page loads and lists view ${view}`, async () => {
      await page.goto(url);
      await page.waitForSelector(`#view option[value="${view}"]`, { state: "attached", timeout: 20000 });
      await page.selectOption("#view", view);
    });
    const appeared = live && await check("rows appear", async () => {
      await page.waitForFunction(() => document.querySelectorAll("#rows tbody tr").length > 0, null, { timeout: 20000 });
      const state = await liveState(page);
      if (state.header.join(",") !== "market,node,ts,price") throw new Error(`columns ${state.header}`);
      return `${state.rows} rows: ${state.status}`;
    });
    appeared && await check("the browser and the server agreed permessage-deflate", async () => {
      const extensions = await page.evaluate(() => document.getElementById("connection").dataset.extensions);
      if (!extensions.startsWith("permessage-deflate")) throw new Error(`extensions '${extensions}'`);
      return extensions;
    });
    const before = appeared && await liveState(page);
    const changed = appeared && await check("rows change live", async () => {
      await page.waitForFunction(
        ([seq, table]) => Number(document.getElementById("view-status").dataset.seq) > seq &&
          document.querySelector("#rows tbody").innerText !== table,
        [before.seq, before.table],
        { timeout: 20000 },
      );
      const after = await liveState(page);
      return `seq ${before.seq} -> ${after.seq}, ${before.rows} -> ${after.rows} rows shown`;
    });
    if (changed) {
      await check("the chart has drawn", async () => {
        await page.waitForFunction(() => Number(document.getElementById("chart").dataset.points) > 1, null, { timeout: 10000 });
        const drawn = await page.evaluate(() => {
          const canvas = document.getElementById("chart");
          const pixels = canvas.getContext("2d").getImageData(0, 0, canvas.width, canvas.height).data;
          let colored = 0;
          for (let i = 0; i < pixels.length; i += 4) {
            const [r, g, b] = [pixels[i], pixels[i + 1], pixels[i + 2]];
            if (Math.max(r, g, b) - Math.min(r, g, b) > 60) colored += 1;
          }
          return { points: Number(canvas.dataset.points), colored };
        });
        if (drawn.colored < 200) throw new Error(`only ${drawn.colored} colored pixels for ${drawn.points} points`);
        return `${drawn.points} points, ${drawn.colored} colored pixels`;
      });
    }
    await check("the page's MessagePack codec follows the specification", async () => {
      const wrong = await page.evaluate(([vectors, decodeOnly]) => {
        const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);
        const problems = [];
        for (const { value, bytes } of vectors) {
          const encoded = [...encodeMsgpack(value)];
          if (!same(encoded, bytes)) problems.push(`encode ${JSON.stringify(value)} gave ${encoded}`);
          if (!same(decodeMsgpack(new Uint8Array(bytes).buffer), value)) problems.push(`decode of ${JSON.stringify(value)}`);
        }
        for (const { value, bytes } of decodeOnly) {
          const decoded = decodeMsgpack(new Uint8Array(bytes).buffer);
          if (!same(decoded, value)) problems.push(`decode ${bytes} gave ${JSON.stringify(decoded)}`);
        }
        return problems;
      }, [CODEC_VECTORS, DECODE_ONLY]);
      if (wrong.length) throw new Error(wrong.join("; "));
      return `${CODEC_VECTORS.length + DECODE_ONLY.length} vectors`;
    });
    if (live) {
      await check(`the query list shows ${query}`, async () => {
        await page.waitForFunction(
          (name) => [...document.querySelectorAll("#queries tbody tr")].some((row) => row.dataset.query === name),
          query,
          { timeout: 10000 },
        ).catch(async () => {
          throw new Error(`not listed; the page says: ${await page.textContent("#queries-note")}`);
        });
      });
      await page.screenshot({ path: screenshot, fullPage: true });
      console.log(`screenshot: ${screenshot}`);
    }
  } finally {
    await context.close();
  }
}

main().then(
  () => process.exit(failures ? 1 : 0),
  (error) => {
    console.log(`FAIL - the browser session: ${error.stack || error}`);
    process.exit(1);
  },
);
