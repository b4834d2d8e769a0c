// Times as the operator reads them: in the browser's time zone, named,
// or in UTC at the flip of a switch; date presets computed in that zone.

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];
const UTC_STORAGE = 'convtrack.utc';
const pad2 = (n) => String(n).padStart(2, '0');

export const clock = {
  utc: localStorage.getItem(UTC_STORAGE) === '1',
};

export function setUtc(utc) {
  clock.utc = utc;
  localStorage.setItem(UTC_STORAGE, utc ? '1' : '0');
}

// The zone times are shown in, by name ("Europe/Lisbon", "UTC").
export function zoneName() {
  if (clock.utc) return 'UTC';
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'local time';
}

function parts(date) {
  return clock.utc
    ? [date.getUTCFullYear(), date.getUTCMonth(), date.getUTCDate(), date.getUTCHours(), date.getUTCMinutes()]
    : [date.getFullYear(), date.getMonth(), date.getDate(), date.getHours(), date.getMinutes()];
}

// "7 Dec 2026, 14:05" in the zone shown.
export function formatTime(ms) {
  const date = new Date(ms);
  if (Number.isNaN(date.getTime())) return '';
  const [y, m, d, h, min] = parts(date);
  return `${d} ${MONTHS[m]} ${y}, ${pad2(h)}:${pad2(min)}`;
}

const DATE_INPUT = /^\d{4}-\d{2}-\d{2}$/;

// The instant a day (YYYY-MM-DD, plus `plusDays`) starts in the zone shown,
// as RFC 3339; null for anything else.
export function dayStart(value, plusDays = 0) {
  if (!DATE_INPUT.test(value)) return null;
  const [y, m, d] = value.split('-').map(Number);
  const date = clock.utc ? new Date(Date.UTC(y, m - 1, d + plusDays)) : new Date(y, m - 1, d + plusDays);
  return Number.isNaN(date.getTime()) ? null : date.toISOString().replace('.000Z', 'Z');
}

function day(date) {
  const [y, m, d] = parts(date);
  return `${y}-${pad2(m + 1)}-${pad2(d)}`;
}

// A preset's first and last day (both included), in the zone shown, for
// `now`; null for none or custom.
export function presetDays(preset, now = new Date()) {
  const [y, m, d] = parts(now);
  const shifted = (days) => day(clock.utc ? new Date(Date.UTC(y, m, d + days)) : new Date(y, m, d + days));
  switch (preset) {
    case 'today': return { from: shifted(0), to: shifted(0) };
    case '7d': return { from: shifted(-6), to: shifted(0) };
    case '30d': return { from: shifted(-29), to: shifted(0) };
    case 'month': return { from: shifted(1 - d), to: shifted(0) };
    default: return null;
  }
}
