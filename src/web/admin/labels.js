// Labels on the admin page: the filter's `key=value` text, chips on rows
// and in the detail, and the side-by-side comparison of one key's values
// with their 95% intervals.

export const LABEL_FIELDS = 'labels { key value }';

export const Q_BY_LABEL = `query ByLabel($key: String!, $filter: ConversationFilter) {
  conversionStats(filter: $filter) {
    byLabel(key: $key) { value conversations converted rate rateLow rateHigh revenue { amount currency } }
  }
}`;

const KEY = /^[a-z0-9_.-]{1,40}$/;

// "prompt=v7, model=m1" → [{ key, value }]; throws a message a person can act on.
export function parseLabelFilter(text) {
  const labels = [];
  for (const part of text.split(',')) {
    const trimmed = part.trim();
    if (trimmed === '') continue;
    const at = trimmed.indexOf('=');
    const key = at < 0 ? trimmed : trimmed.slice(0, at).trim();
    const value = at < 0 ? '' : trimmed.slice(at + 1).trim();
    if (!KEY.test(key) || value === '') {
      throw new Error(`Write labels as key=value, separated by commas (keys: a-z, 0-9, _ . -): "${trimmed}"`);
    }
    labels.push({ key, value });
  }
  return labels;
}

function chip(el, label) {
  return el('span', {
    className: 'label-chip',
    testid: 'label-chip',
    text: `${label.key}=${label.value}`,
  });
}

export function renderLabels(el, labels) {
  return el('span', { className: 'label-chips', testid: 'labels' }, (labels ?? []).map((l) => chip(el, l)));
}

const percent = (rate) => `${(Number(rate) * 100).toFixed(1)}%`;

// Whether two 95% intervals share no point.
const apart = (a, b) => a.rateHigh < b.rateLow || b.rateHigh < a.rateLow;

// What the comparison says about the two largest values, in words.
export function verdict(rows) {
  if (rows.length < 2) return rows.length === 1 ? 'Only one value so far: nothing to compare yet.' : '';
  const [a, b] = [...rows].sort((x, y) => y.conversations - x.conversations).slice(0, 2);
  const [high, low] = a.rate >= b.rate ? [a, b] : [b, a];
  if (apart(a, b)) {
    return `${high.value} converts better than ${low.value} (${percent(high.rate)} vs ${percent(low.rate)}): `
      + 'their 95% intervals do not overlap, so the difference is unlikely to be chance.';
  }
  return `${high.value} and ${low.value} (${percent(high.rate)} vs ${percent(low.rate)}): their 95% intervals `
    + 'overlap, so the data do not yet show that either converts better.';
}

function intervalBar(el, row) {
  const bar = el('span', { className: 'interval', attrs: { 'aria-hidden': 'true' } }, [
    el('span', { className: 'interval-range' }),
    el('span', { className: 'interval-rate' }),
  ]);
  bar.firstChild.style.left = percent(row.rateLow);
  bar.firstChild.style.width = percent(row.rateHigh - row.rateLow);
  bar.lastChild.style.left = percent(row.rate);
  return bar;
}

export function renderComparison(el, key, rows) {
  const head = el('thead', {}, [el('tr', {}, ['Value', 'Conversations', 'Converted', 'Rate', '95% interval', '', 'Revenue']
    .map((text) => el('th', { text, attrs: { scope: 'col' } })))]);
  const body = el('tbody', {}, rows.map((row) => el('tr', { testid: 'label-row', data: { value: row.value } }, [
    el('th', { text: row.value, attrs: { scope: 'row' } }),
    el('td', { text: row.conversations }),
    el('td', { text: row.converted }),
    el('td', { testid: 'label-rate', text: percent(row.rate) }),
    el('td', { testid: 'label-interval', text: `${percent(row.rateLow)} – ${percent(row.rateHigh)}` }),
    el('td', {}, [intervalBar(el, row)]),
    el('td', { text: row.revenue.map((m) => `${m.amount} ${m.currency}`).join(', ') }),
  ])));
  const parts = [el('table', { className: 'compare', testid: 'label-table' }, [
    el('caption', { text: `By label “${key}”` }), head, body,
  ])];
  if (rows.length === 0) parts.push(el('p', { className: 'muted', text: `No conversation in range has the label “${key}”.` }));
  else parts.push(el('p', { className: 'compare-verdict', testid: 'label-verdict', text: verdict(rows) }));
  return parts;
}
