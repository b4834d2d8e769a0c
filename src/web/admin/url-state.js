// The view in the URL: the filter as typed, the tab and the open
// conversation, so a reload, back/forward or a copied link shows exactly
// that view. The API key never goes in it.

// URL parameter → the control holding it.
const CONTROLS = [
  ['q', 'search'],
  ['session', 'session-filter'],
  ['channel', 'channel-filter'],
  ['badge', 'badge-filter'],
  ['converted', 'converted-filter'],
  ['labels', 'label-filter'],
  ['range', 'date-preset'],
  ['from', 'date-from'],
  ['to', 'date-to'],
];

// The query string for what the controls hold, the tab and the open
// conversation (empty parts left out).
export function viewQuery($, { tab, open }) {
  const params = new URLSearchParams();
  for (const [name, id] of CONTROLS) {
    const value = $(id).value;
    if (value.trim() !== '') params.set(name, value);
  }
  if (tab && tab !== 'conversations') params.set('tab', tab);
  if (open) params.set('open', open);
  const query = params.toString();
  return query ? `?${query}` : '';
}

// Sets the controls from `search` (a location's query string); returns
// the tab and the conversation to open.
export function restoreView($, search) {
  const params = new URLSearchParams(search);
  for (const [name, id] of CONTROLS) {
    const control = $(id);
    const value = params.get(name) ?? '';
    // A select keeps its value only if it is one of its options.
    control.value = value;
    if (control.value !== value) control.value = '';
  }
  const tab = params.get('tab');
  return {
    tab: ['conversations', 'unattributed', 'webhooks'].includes(tab) ? tab : 'conversations',
    open: params.get('open') || null,
  };
}
