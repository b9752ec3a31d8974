/**
 * One driver per browser engine. Each opens the compat page, calls `window.compatRun(cfg)`
 * and returns its JSON result; `close()` ends the browser and everything it started.
 *   chromium: Debian's Chromium over CDP (playwright-core, as e2e/harness.ts)
 *   firefox:  Debian's firefox-esr over WebDriver BiDi (puppeteer-core; it downloads nothing)
 *   webkit:   Debian's WebKitGTK MiniBrowser under Xvfb over classic WebDriver
 *             (WebKitWebDriver), with plain HTTP calls
 */
import { spawn } from "node:child_process";
import { mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { freePort } from "../lib/ports.mjs";

export const BROWSER_PATHS = {
  chromium: "/usr/bin/chromium",
  firefox: "/usr/bin/firefox-esr",
  webkitDriver: "/usr/bin/WebKitWebDriver",
  webkitBrowser: "/usr/lib/x86_64-linux-gnu/webkit2gtk-4.1/MiniBrowser",
  xvfb: "/usr/bin/Xvfb",
};

const READY_TIMEOUT_MS = 15_000;
const RUN_TIMEOUT_MS = 90_000;

/** Rejects after `ms` with `what`, so a stuck driver call fails the runtime instead of the run. */
function deadline(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`${what}: no answer within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

export async function runChromium(pageUrl, cfg) {
  const { chromium } = await import("playwright-core");
  const browser = await chromium.launch({
    executablePath: BROWSER_PATHS.chromium,
    headless: true, // playwright also gives every launch a fresh temporary profile (--user-data-dir)
    args: ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync", "--disable-quic"],
  });
  try {
    const page = await browser.newPage();
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(pageUrl);
    await page.waitForFunction(() => window.compatReady === true, null, { timeout: READY_TIMEOUT_MS }).catch((e) => {
      throw new Error(`page never became ready (${pageErrors.join("; ") || e.message})`);
    });
    const result = await deadline(page.evaluate((c) => window.compatRun(c), cfg), RUN_TIMEOUT_MS, "chromium scenario");
    return { ...result, version: `Chromium ${browser.version()}`, extra: "CDP", pageErrors };
  } finally {
    await browser.close();
  }
}

export async function runFirefox(pageUrl, cfg) {
  const { default: puppeteer } = await import("puppeteer-core");
  const profile = mkdtempSync(join(tmpdir(), "roomcast-compat-firefox-"));
  const browser = await puppeteer.launch({
    browser: "firefox",
    protocol: "webDriverBiDi",
    executablePath: BROWSER_PATHS.firefox,
    headless: true,
    userDataDir: profile,
    // Keep Firefox off the network: no captive-portal probe, updates, telemetry or safe browsing.
    extraPrefsFirefox: {
      "network.captive-portal-service.enabled": false,
      "network.connectivity-service.enabled": false,
      "app.update.enabled": false,
      "app.update.auto": false,
      "browser.safebrowsing.malware.enabled": false,
      "browser.safebrowsing.phishing.enabled": false,
      "browser.safebrowsing.downloads.enabled": false,
      "datareporting.healthreport.uploadEnabled": false,
      "datareporting.policy.dataSubmissionEnabled": false,
      "toolkit.telemetry.enabled": false,
      "extensions.update.enabled": false,
      "browser.search.update": false,
      "network.dns.disablePrefetch": true,
      "network.prefetch-next": false,
      // Remote settings, region and geolocation lookups would resolve Mozilla's hosts at start-up:
      // point them at a closed loopback port (refused at once) or nowhere.
      "services.settings.server": "http://127.0.0.1:9/v1",
      "browser.region.network.url": "",
      "browser.region.update.enabled": false,
      "geo.provider.network.url": "",
      "network.trr.mode": 5,
      "extensions.blocklist.enabled": false,
      "extensions.getAddons.cache.enabled": false,
      "browser.ping-centre.telemetry": false,
      "browser.newtabpage.enabled": false,
    },
  });
  try {
    const page = await browser.newPage();
    const pageErrors = [];
    page.on("pageerror", (e) => pageErrors.push(e.message));
    await page.goto(pageUrl);
    await page.waitForFunction("window.compatReady === true", { timeout: READY_TIMEOUT_MS }).catch((e) => {
      throw new Error(`page never became ready (${pageErrors.join("; ") || e.message})`);
    });
    const result = await deadline(page.evaluate((c) => window.compatRun(c), cfg), RUN_TIMEOUT_MS, "firefox scenario");
    return { ...result, version: (await browser.version()).replace("firefox/", "Firefox "), extra: "WebDriver BiDi", pageErrors };
  } finally {
    await browser.close();
    rmSync(profile, { recursive: true, force: true });
  }
}

/** Spawns a command in its own process group; `stop()` ends the whole group. */
function spawnGroup(cmd, args, options) {
  const proc = spawn(cmd, args, { ...options, detached: true });
  let output = "";
  proc.stdout?.on("data", (d) => (output += d));
  proc.stderr?.on("data", (d) => (output += d));
  const exited = new Promise((resolve) => proc.once("exit", resolve));
  return {
    proc,
    output: () => output,
    stop: async () => {
      if (proc.exitCode !== null || proc.signalCode !== null) return;
      try {
        process.kill(-proc.pid, "SIGTERM");
      } catch {
        return;
      }
      const done = await Promise.race([exited.then(() => true), new Promise((r) => setTimeout(() => r(false), 3_000))]);
      if (!done) {
        try {
          process.kill(-proc.pid, "SIGKILL");
        } catch {
          // already gone
        }
      }
    },
  };
}

/** Xvfb on a display it picks itself (-displayfd), so parallel runs do not collide. */
async function startXvfb() {
  const xvfb = spawnGroup(BROWSER_PATHS.xvfb, ["-displayfd", "3", "-screen", "0", "1280x800x24", "-nolisten", "tcp"], {
    stdio: ["ignore", "pipe", "pipe", "pipe"],
  });
  const display = await deadline(
    new Promise((resolve, reject) => {
      let text = "";
      xvfb.proc.stdio[3].on("data", (d) => {
        text += d;
        if (text.includes("\n")) resolve(`:${text.trim()}`);
      });
      xvfb.proc.once("exit", (code) => reject(new Error(`Xvfb exited (${code}): ${xvfb.output().slice(-500)}`)));
    }),
    10_000,
    "Xvfb start",
  ).catch(async (e) => {
    await xvfb.stop();
    throw e;
  });
  return { display, stop: xvfb.stop };
}

export async function runWebKit(pageUrl, cfg) {
  const xvfb = await startXvfb();
  const port = await freePort();
  const driver = spawnGroup(BROWSER_PATHS.webkitDriver, [`--port=${port}`, "--host=127.0.0.1"], {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, DISPLAY: xvfb.display },
  });
  const base = `http://127.0.0.1:${port}`;
  /** One classic WebDriver command; a WebDriver error becomes an Error with its message. */
  const wd = async (method, path, body, ms = 30_000) => {
    const res = await deadline(
      fetch(base + path, { method, headers: { "Content-Type": "application/json" }, body: body === undefined ? undefined : JSON.stringify(body) }),
      ms,
      `WebDriver ${method} ${path.replace(/[0-9a-f-]{36}/, ":session")}`,
    );
    const json = await res.json();
    // Errors come with a non-2xx status (W3C WebDriver §6.6); a script's own result may hold an `error` field.
    if (!res.ok) throw new Error(`WebDriver ${method} ${path}: ${json.value?.error} ${json.value?.message ?? ""}`);
    return json.value;
  };
  let session;
  try {
    for (let t0 = Date.now(); ; ) {
      const up = await fetch(`${base}/status`).then((r) => r.ok, () => false);
      if (up) break;
      if (driver.proc.exitCode !== null) throw new Error(`WebKitWebDriver exited: ${driver.output().slice(-500)}`);
      if (Date.now() - t0 > 10_000) throw new Error("WebKitWebDriver did not answer /status within 10 s");
      await new Promise((r) => setTimeout(r, 50));
    }
    const created = await wd("POST", "/session", {
      capabilities: { alwaysMatch: { "webkitgtk:browserOptions": { binary: BROWSER_PATHS.webkitBrowser, args: ["--automation"] } } },
    });
    session = created.sessionId;
    const version = `${created.capabilities.browserName} ${created.capabilities.browserVersion}`;
    await wd("POST", `/session/${session}/timeouts`, { script: RUN_TIMEOUT_MS, pageLoad: 30_000 });
    await wd("POST", `/session/${session}/url`, { url: pageUrl });
    for (let t0 = Date.now(); ; ) {
      if (await wd("POST", `/session/${session}/execute/sync`, { script: "return window.compatReady === true", args: [] })) break;
      if (Date.now() - t0 > READY_TIMEOUT_MS) throw new Error("page never became ready");
      await new Promise((r) => setTimeout(r, 100));
    }
    // A W3C WebDriver script that returns a promise is awaited by the driver.
    const result = await wd("POST", `/session/${session}/execute/sync`, { script: "return window.compatRun(arguments[0])", args: [cfg] }, RUN_TIMEOUT_MS + 5_000);
    return { ...result, version, extra: "classic WebDriver", pageErrors: [] };
  } finally {
    if (session) await wd("DELETE", `/session/${session}`, undefined, 10_000).catch(() => {});
    await driver.stop();
    await xvfb.stop();
  }
}
