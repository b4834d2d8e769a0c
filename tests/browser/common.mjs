// What the browser tests share: their settings from the environment and
// Debian's Chromium, started the same way.
import { chromium } from 'playwright-core';

// The named environment variable; exits 2 when it is missing.
export function env(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`missing environment variable ${name}`);
    process.exit(2);
  }
  return value;
}

// Headless Chromium without the background traffic a desktop browser makes.
export function launchChromium() {
  return chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
}
