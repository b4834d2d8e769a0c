// The stats header's scope in words: the period, then each filter that
// narrows the list ("Last 30 days · WhatsApp · “parking”").

const PRESETS = {
  '': 'All time',
  today: 'Today',
  '7d': 'Last 7 days',
  '30d': 'Last 30 days',
  month: 'This month',
};

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

// "2026-12-01" → "1 Dec 2026".
function day(value) {
  const [y, m, d] = value.split('-').map(Number);
  return `${d} ${MONTHS[m - 1]} ${y}`;
}

// `preset` and the `from`/`to` days (YYYY-MM-DD, both included) as the
// date inputs hold them.
export function describePeriod(preset, from, to) {
  if (preset in PRESETS && preset !== '') return PRESETS[preset];
  if (from && to) return from === to ? day(from) : `${day(from)} – ${day(to)}`;
  if (from) return `Since ${day(from)}`;
  if (to) return `Until ${day(to)}`;
  return PRESETS[''];
}

// Each part of `filter` (the list's) in words; `names` turns channels and
// badge kinds into what the page calls them.
export function describeFilter(filter, names) {
  const parts = [];
  if (filter.channels?.length) parts.push(filter.channels.map(names.channel).join(' or '));
  if (filter.search) parts.push(`“${filter.search}”`);
  if (filter.badges?.length) parts.push(filter.badges.map(names.badge).join(' or '));
  if (filter.converted === true) parts.push('Converted');
  if (filter.converted === false) parts.push('Not converted');
  if (filter.labels?.length) parts.push(filter.labels.map((l) => `${l.key}=${l.value}`).join(', '));
  if (filter.sessionId) parts.push(`Session ${filter.sessionId.slice(0, 12)}…`);
  return parts;
}
