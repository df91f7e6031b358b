/**
 * Debian's Chromium as the browser tests start it. Without the background-networking flags it
 * tries to reach Google's hosts at every start, which this machine's closed network refuses.
 */
import { existsSync } from 'node:fs';

export const CHROMIUM = '/usr/bin/chromium';

export const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

/** A tap `skip` value: false, or why the browser tests cannot run here. */
export const noChromium: false | string = existsSync(CHROMIUM)
  ? false
  : `${CHROMIUM} is not installed (apt-get install -y chromium); CI installs it`;
