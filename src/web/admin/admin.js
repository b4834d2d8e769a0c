// convtrack admin: the "AI Conversations" page.
//
// A plain ES module with no dependencies and no build step. The page is
// served under a strict Content-Security-Policy (script-src 'self', no inline
// styles), so all styling goes through classes, and every piece of DOM is
// built with createElement + textContent: nothing the server returns, and
// in particular nothing a visitor typed, is ever parsed as HTML.

const KEY_STORAGE = 'convtrack.apiKey';
const PAGE_SIZE = 250;
const MESSAGE_PAGE = 500;
const UNATTRIBUTED_PAGE = 50;
const TYPING_DEBOUNCE_MS = 300;
const STATS_DEBOUNCE_MS = 300;
const ROW_FLASH_MS = 2000;
const LIVE_MAX_BACKOFF_MS = 10000;
const LIVE_REFUSED_RETRY_MS = 60000;

const CHANNEL_LABELS = { CHAT: 'Chat', EMAIL: 'Email', WHATSAPP: 'WhatsApp', VOICE: 'Voice' };
const ACTION_LABELS = {
  DAY_PASS: 'Day pass',
  MEMBERSHIP_SIGNUP: 'Membership sign-up',
  TOUR_REQUEST: 'Tour request',
  BOOKING_CONFIRMATION: 'Booking confirmation',
};
const RECORD_TYPE_LABELS = {
  VISITOR: 'Visitor',
  COWORKER: 'Coworker',
  COWORKER_CONTRACT: 'Contract',
  BOOKING: 'Booking',
  COWORKER_PRODUCT: 'Product',
};
const COLOURS = new Set(['LAVENDER', 'GREEN', 'BLUE', 'TEAL', 'PEACH']);

// ---------------------------------------------------------------------------
// GraphQL documents. Values always travel as variables, never inside the text.

const Q_SIGN_IN = `query SignIn {
  badgeKinds { kind label colour }
  conversations(first: 1) { pageInfo { hasNextPage } }
}`;

const Q_FEED_CURSOR = 'query FeedCursor { feedCursor }';

// What a list row shows of a conversation.
const ROW_FIELDS = 'id sessionId channel startedAt openingMessage contact user { name } labels { key value } badges { kind label colour value { amount currency } }';

const Q_LIST = `query Conversations($first: Int!, $after: String, $filter: ConversationFilter) {
  conversations(first: $first, after: $after, filter: $filter) {
    nodes { ${ROW_FIELDS} }
    pageInfo { hasNextPage endCursor }
  }
}`;

const Q_STATS = `query Stats($filter: ConversationFilter) {
  conversionStats(filter: $filter) {
    conversations convertedConversations conversionRate medianSecondsToConvert unattributed
    byKind { kind count }
    byChannel { channel conversations converted rate }
    bySource { source count }
    funnel { action issued followed converted }
    revenue { currency total convertedConversations perConvertedConversation }
  }
}`;

const BADGE_FIELDS = 'badges { kind label colour recordedAt value { amount currency } record { type id url } }'
  + ` conversions { kind attributed status recordedAt value { amount currency } record { type id url } ${HISTORY_FIELDS} }`;
const MESSAGE_FIELDS = 'nodes { id role label content createdAt } pageInfo { hasNextPage endCursor }';

const Q_DETAIL = `query Conversation($id: ID!, $first: Int!) {
  conversation(id: $id) {
    id sessionId channel startedAt contact user { name } ${LABEL_FIELDS}
    ${BADGE_FIELDS}
    confirmations { id action summary state requestedAt expiresAt confirmedAt cancelledAt cancelReason }
    messages(first: $first) { ${MESSAGE_FIELDS} }
  }
}`;

const Q_MORE_MESSAGES = `query MoreMessages($id: ID!, $first: Int!, $after: String) {
  conversation(id: $id) { id messages(first: $first, after: $after) { ${MESSAGE_FIELDS} } }
}`;

const Q_DETAIL_BADGES = `query ConversationBadges($id: ID!) {
  conversation(id: $id) { id ${BADGE_FIELDS} }
}`;

const Q_UNATTRIBUTED = `query Unattributed($first: Int!, $after: String) {
  unattributedConversions(first: $first, after: $after) {
    nodes { id kind source recordedAt unattributedReason record { type id url } conversation { id sessionId startedAt } }
    pageInfo { hasNextPage endCursor }
  }
  tenantSettings { attributionWindowDays }
}`;

const S_ACTIVITY = `subscription Activity {
  conversationActivity { change conversation { ${ROW_FIELDS} } }
}`;

const S_CONVERSIONS = `subscription Live($after: String) {
  conversionRecorded(after: $after) {
    cursor
    change
    conversion { id kind source attributed recordedAt unattributedReason record { type id url } }
    conversation { id sessionId channel startedAt openingMessage user { name } badges { kind label colour value { amount currency } } }
  }
}`;

// ---------------------------------------------------------------------------
// State. Each independent load carries a generation number so that a slow
// answer to an older request (a filter typed over) never overwrites a newer one.

const state = {
  key: null,
  webhooksGeneration: 0,
  // Bumped on every sign-in and sign-out: answers of an earlier sign-in are dropped.
  signIn: 0,
  badgeKinds: new Map(),
  filter: {},
  // `raced`: live events that arrived while a page of the list was being
  // read; the page may predate them, so they are applied again over it.
  list: { generation: 0, endCursor: null, hasNextPage: false, inFlight: 0, raced: new Map() },
  statsGeneration: 0,
  compareKey: null,
  statsTimer: null,
  detail: { id: null, generation: 0, endCursor: null, hasNextPage: false, returnFocus: null, loading: false, stale: false, badgeTimer: null },
  unattributed: { generation: 0, loaded: false, endCursor: null, hasNextPage: false, inFlight: 0, raced: [] },
  live: { ws: null, cursor: null, attempt: 0, timer: null, connectedAt: 0, unseen: 0 },
};

const $ = (id) => document.getElementById(id);

// The server is asked whether it is back by its readiness route: no key,
// no database work beyond its own check.
async function serverAnswers() {
  const response = await fetch('/readyz', { cache: 'no-store', credentials: 'omit' });
  if (!response.ok) throw new Error(`readyz answered ${response.status}`);
}

function renderOffline({ offline, seconds }) {
  $('offline').hidden = !offline;
  $('app').classList.toggle('is-offline', offline);
  $('offline').textContent = offline
    ? `Offline: the server cannot be reached. Showing what was last loaded; ${
      seconds > 0 ? `trying again in ${seconds} s` : 'trying again now'}…`
    : '';
}

// Back online: everything the page shows, read again for what it shows now.
function refreshAll() {
  if (!state.key) return;
  clearError();
  reload();
  if (state.detail.id && !$('detail').hidden) openDetail(state.detail.id, { refresh: true });
  if (!$('panel-unattributed').hidden) loadUnattributed(false);
  if (!state.live.ws) connectLive();
}

const connectivity = new Reconnector({ probe: serverAnswers, onBack: refreshAll, render: renderOffline });

import { Reconnector, isTransient } from './connectivity.js';
import { downloadExport, formatBytes } from './export.js';
import { restoreView, viewQuery } from './url-state.js';
import { clock, dayStart, formatTime, presetDays, setUtc, zoneName } from './time.js';
import { LABEL_FIELDS, Q_BY_LABEL, parseLabelFilter, renderComparison, renderLabels } from './labels.js';
import { describeFilter, describePeriod } from './scope.js';
import { HISTORY_FIELDS, renderHistory, reviewCell } from './review.js';

// ---------------------------------------------------------------------------
// Small DOM helpers.

function el(tag, options = {}, children = []) {
  const node = document.createElement(tag);
  if (options.className) node.className = options.className;
  if (options.text != null) node.textContent = String(options.text);
  if (options.testid) node.dataset.testid = options.testid;
  for (const [name, value] of Object.entries(options.data ?? {})) {
    if (value != null) node.dataset[name] = String(value);
  }
  for (const [name, value] of Object.entries(options.attrs ?? {})) {
    if (value != null) node.setAttribute(name, String(value));
  }
  for (const child of children) {
    if (child != null) node.append(child);
  }
  return node;
}

// Only absolute http(s) URLs become links; `javascript:`, `data:` and
// anything unparsable stay plain text.
function safeUrl(raw) {
  if (typeof raw !== 'string' || raw === '') return null;
  let url;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  return url.protocol === 'http:' || url.protocol === 'https:' ? url.href : null;
}

// Links leave the admin in a new tab that cannot reach back into it.
const linkAttrs = (href) => ({ href, rel: 'noopener noreferrer', target: '_blank' });

function externalLink(text, href, className) {
  return el('a', { className, text, attrs: linkAttrs(href) });
}


// Milliseconds since the epoch; the API's times may carry microseconds,
// which Date.parse does not take.
function parseTime(iso) {
  return Date.parse(String(iso).replace(/(\.\d{3})\d+/, '$1'));
}

// In the zone shown (time.js): the browser's, or UTC.
function formatDate(iso) {
  if (!iso) return '';
  const ms = parseTime(iso);
  return Number.isNaN(ms) ? String(iso) : formatTime(ms);
}

function formatDuration(seconds) {
  if (seconds == null || !Number.isFinite(seconds)) return '—';
  if (seconds < 60) return `${Math.round(seconds)} s`;
  if (seconds < 3600) return `${Math.round(seconds / 60)} min`;
  if (seconds < 86400) return `${(seconds / 3600).toFixed(1)} h`;
  return `${(seconds / 86400).toFixed(1)} d`;
}

const formatRate = (rate) => `${(Number(rate || 0) * 100).toFixed(1)}%`;
const channelLabel = (channel) => CHANNEL_LABELS[channel] ?? channel ?? '';

// ---------------------------------------------------------------------------
// The API.

class ApiError extends Error {
  constructor(message, code, status, requestId) {
    super(message);
    this.code = code;
    this.status = status;
    this.requestId = requestId;
  }
}

function retryAfterSeconds(response, error) {
  const header = Number.parseInt(response.headers.get('Retry-After') ?? '', 10);
  if (Number.isFinite(header) && header > 0) return header;
  const fromBody = Number(error?.extensions?.retryAfter);
  return Number.isFinite(fromBody) && fromBody > 0 ? fromBody : 1;
}

async function api(query, variables = {}, key = state.key) {
  if (!key) throw new ApiError('Signed out.', 'SIGNED_OUT', 0);
  let response;
  try {
    response = await fetch('/graphql', {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Authorization: `Bearer ${key}` },
      body: JSON.stringify({ query, variables }),
      cache: 'no-store',
      credentials: 'omit',
    });
  } catch {
    throw new ApiError('The server could not be reached. Check the connection and try again.', 'NETWORK_ERROR', 0);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // Not JSON (a proxy's error page, say): judged by the status below.
  }
  const first = Array.isArray(body?.errors) ? body.errors[0] : null;
  const code = first?.extensions?.code;
  const requestId = first?.extensions?.requestId;
  if (response.status === 401 || code === 'UNAUTHENTICATED') {
    throw new ApiError(first?.message ?? 'The API key was not accepted.', 'UNAUTHENTICATED', response.status);
  }
  if (response.status === 429 || code === 'RATE_LIMITED') {
    const wait = retryAfterSeconds(response, first);
    throw new ApiError(`Too many requests for this key. Try again in ${wait} s.`, 'RATE_LIMITED', response.status);
  }
  if (response.status === 503 || code === 'SERVICE_UNAVAILABLE') {
    const wait = retryAfterSeconds(response, first);
    throw new ApiError(`The service is busy right now; nothing was changed. Try again in ${wait} s.`,
      'SERVICE_UNAVAILABLE', response.status);
  }
  if (first) {
    throw new ApiError(first.message || 'The request failed.', code ?? 'UNKNOWN', response.status, requestId);
  }
  if (!response.ok || !body?.data) {
    throw new ApiError(`Unexpected answer from the server (HTTP ${response.status}).`, 'HTTP_ERROR', response.status);
  }
  if (connectivity.offline) connectivity.back();
  return body.data;
}

// ---------------------------------------------------------------------------
// Errors.

function showError(err) {
  const code = err?.code ? ` (${err.code})` : '';
  const request = err?.requestId ? ` Request id: ${err.requestId}.` : '';
  $('error-text').textContent = `${err?.message ?? String(err)}${code}${request}`;
  $('error').hidden = false;
}

function clearError() {
  $('error').hidden = true;
  $('error-text').textContent = '';
}

// A key revoked mid-session ends the session: every later call would fail too.
function handleError(err) {
  // An answer to a request of a sign-in that has ended: nobody to tell.
  if (err?.code === 'SIGNED_OUT' || !state.key) return;
  if (err?.code === 'UNAUTHENTICATED') {
    signOut('Your API key is no longer accepted. Sign in again.');
    return;
  }
  // No answer is not an answer: the page keeps what it shows and retries.
  if (isTransient(err)) {
    connectivity.failed();
    return;
  }
  showError(err);
}

// ---------------------------------------------------------------------------
// Sign-in.

function signInMessage(err) {
  switch (err?.code) {
    case 'UNAUTHENTICATED':
      return 'That API key was not accepted. Check that the whole key was pasted and that it has not been revoked.';
    case 'FORBIDDEN':
      return "That API key's role can't read conversations. Use an ADMIN key (or an INTEGRATOR key for read-only access).";
    default:
      return `${err?.message ?? 'Sign-in failed.'}${err?.code ? ` (${err.code})` : ''}`;
  }
}

function showSignInError(message) {
  const node = $('signin-error');
  node.textContent = message ?? '';
  node.hidden = !message;
}

async function signIn(key) {
  const button = $('signin-submit');
  button.disabled = true;
  showSignInError(null);
  try {
    const data = await api(Q_SIGN_IN, {}, key);
    state.key = key;
    sessionStorage.setItem(KEY_STORAGE, key);
    state.badgeKinds = new Map(data.badgeKinds.map((kind) => [kind.kind, kind]));
    $('api-key').value = '';
    enterApp();
  } catch (err) {
    // A rejected key is forgotten; a busy server keeps it for the next try.
    if (err.code === 'UNAUTHENTICATED' || err.code === 'FORBIDDEN') {
      sessionStorage.removeItem(KEY_STORAGE);
    } else {
      $('api-key').value = key;
    }
    showSignInError(signInMessage(err));
    $('api-key').focus();
  } finally {
    button.disabled = false;
  }
}

// The feed's newest cursor, read before the list: the subscription then
// replays whatever is committed while the list loads instead of missing it.
// Null for a key that may not follow the feed (the live status says so);
// a busy or unreachable server is asked again before giving up.
async function readFeedCursor() {
  for (let attempt = 0; ; attempt++) {
    try {
      return (await api(Q_FEED_CURSOR)).feedCursor;
    } catch (err) {
      if (err.code === 'FORBIDDEN' || err.code === 'SIGNED_OUT' || err.code === 'UNAUTHENTICATED') return null;
      if (attempt >= 3) {
        showError(new ApiError('Live updates could not find where the feed stands; reload the page if badges look stale.',
          err.code, err.status));
        return null;
      }
      await new Promise((resolve) => setTimeout(resolve, 1000 * (attempt + 1)));
    }
  }
}

async function enterApp() {
  clearError();
  $('signin').hidden = true;
  $('app').hidden = false;
  $('session-controls').hidden = false;
  fillBadgeFilter();
  const signIn = ++state.signIn;
  const cursor = await readFeedCursor();
  if (state.signIn !== signIn) return;
  state.live.cursor = cursor;
  state.live.attempt = 0;
  showViewOfUrl();
  connectLive();
}

// ---------------------------------------------------------------------------
// The view in the URL (url-state.js).

let restoringView = false;

function currentTab() {
  return document.querySelector('[role="tab"][aria-selected="true"]')?.dataset.tab ?? 'conversations';
}

// Records the view in the URL: a new history entry for a step the
// operator took (`push`), or in place.
function syncUrl(push = true) {
  if (restoringView || !state.key) return;
  const open = $('detail').hidden ? null : state.detail.id;
  const query = viewQuery($, { tab: currentTab(), open });
  if (query === location.search) return;
  history[push ? 'pushState' : 'replaceState'](null, '', `${location.pathname}${query}${location.hash}`);
}

// Shows the view the URL names: its filter, tab and open conversation.
function showViewOfUrl() {
  restoringView = true;
  try {
    const { tab, open } = restoreView($, location.search);
    state.filter = readFilter();
    selectTab(tab);
    reload();
    if (open) openDetail(open, { refresh: !$('detail').hidden });
    else if (!$('detail').hidden) closeDetail();
  } finally {
    restoringView = false;
  }
}

function signOut(message) {
  state.key = null;
  state.signIn++;
  clearTimeout(typingTimer);
  clearTimeout(state.detail.badgeTimer);
  sessionStorage.removeItem(KEY_STORAGE);
  connectivity.stop();
  stopLive();
  exporting.controller?.abort();
  clearTimeout(state.statsTimer);
  // Bumping generations drops any answer still in flight for the old key.
  state.list.generation++;
  state.statsGeneration++;
  state.unattributed.generation++;
  closeDetail();
  $('rows').replaceChildren();
  $('unattributed-rows').replaceChildren();
  $('stats').replaceChildren();
  state.unattributed.loaded = false;
  clearError();
  $('app').hidden = true;
  $('session-controls').hidden = true;
  $('signin').hidden = false;
  showSignInError(message);
  $('api-key').focus();
}

// ---------------------------------------------------------------------------
// Filters.

function fillBadgeFilter() {
  const select = $('badge-filter');
  const options = [el('option', { text: 'Any badge', attrs: { value: '' } })];
  for (const kind of state.badgeKinds.values()) {
    options.push(el('option', { text: kind.label, attrs: { value: kind.kind } }));
  }
  select.replaceChildren(...options);
}

function resetFilterControls() {
  for (const id of ['search', 'session-filter', 'label-filter', 'date-from', 'date-to']) $(id).value = '';
  for (const id of ['channel-filter', 'badge-filter', 'converted-filter', 'date-preset']) $(id).value = '';
}

// A preset fills the dates in the zone shown; editing a date makes it custom.
function applyPreset() {
  const days = presetDays($('date-preset').value);
  if (days) {
    $('date-from').value = days.from;
    $('date-to').value = days.to;
  } else if ($('date-preset').value === '') {
    $('date-from').value = '';
    $('date-to').value = '';
  }
}

function showZone() {
  $('time-zone').textContent = `Times in ${zoneName()}`;
  $('utc-toggle').checked = clock.utc;
}

function readFilter() {
  const filter = {};
  const search = $('search').value;
  if (search.trim() !== '') filter.search = search;
  const sessionId = $('session-filter').value.trim();
  if (sessionId) filter.sessionId = sessionId;
  const channel = $('channel-filter').value;
  if (channel) filter.channels = [channel];
  const badge = $('badge-filter').value;
  if (badge) filter.badges = [badge];
  const converted = $('converted-filter').value;
  if (converted) filter.converted = converted === 'yes';
  const from = dayStart($('date-from').value);
  if (from) filter.startedAfter = from;
  // `to` is inclusive for the user, so the API gets the start of the next day.
  const to = dayStart($('date-to').value, 1);
  if (to) filter.startedBefore = to;
  try {
    const labels = parseLabelFilter($('label-filter').value);
    if (labels.length > 0) filter.labels = labels;
    $('label-filter-error').hidden = true;
  } catch (err) {
    $('label-filter-error').textContent = err.message;
    $('label-filter-error').hidden = false;
  }
  return filter;
}

const filtersActive = () => Object.keys(state.filter).length > 0;

function applyFilters() {
  const next = readFilter();
  if (JSON.stringify(next) === JSON.stringify(state.filter)) return;
  state.filter = next;
  syncUrl();
  reload();
}

let typingTimer = null;
function applyFiltersSoon() {
  clearTimeout(typingTimer);
  typingTimer = setTimeout(applyFilters, TYPING_DEBOUNCE_MS);
}

function applyFiltersNow() {
  clearTimeout(typingTimer);
  applyFilters();
}

function reload() {
  clearError();
  loadConversations(false);
  loadStats();
}

// ---------------------------------------------------------------------------
// Export: the list as filtered, as a CSV file. The button cancels while one
// runs.

const exporting = { controller: null };

function setExportStatus(text) {
  $('export-status').textContent = text;
}

const exportedCount = (rows, bytes) =>
  `${rows.toLocaleString('en')} conversation${rows === 1 ? '' : 's'} (${formatBytes(bytes)})`;

async function exportList() {
  if (exporting.controller) {
    exporting.controller.abort();
    return;
  }
  applyFiltersNow();
  if (state.filter.search) {
    setExportStatus('Exports take every filter but the search: clear the search to export.');
    return;
  }
  const controller = new AbortController();
  exporting.controller = controller;
  const button = $('export');
  button.textContent = 'Cancel export';
  setExportStatus('Exporting…');
  try {
    const file = await downloadExport({
      key: state.key,
      filter: state.filter,
      signal: controller.signal,
      onProgress: (rows, bytes) => setExportStatus(`Exporting… ${exportedCount(rows, bytes)}`),
    });
    const url = URL.createObjectURL(file.blob);
    const link = el('a', { attrs: { href: url, download: file.filename } });
    document.body.append(link);
    link.click();
    link.remove();
    // The browser has copied the file by then; the memory is let go.
    setTimeout(() => URL.revokeObjectURL(url), 60000);
    setExportStatus(`Exported ${exportedCount(file.rows, file.bytes)}.`);
  } catch (err) {
    if (err?.name === 'AbortError') {
      setExportStatus('Export cancelled.');
    } else {
      setExportStatus('Export failed.');
      handleError(err);
    }
  } finally {
    exporting.controller = null;
    button.textContent = 'Export CSV';
  }
}

// ---------------------------------------------------------------------------
// The conversation list.

function renderBadge(badge, href = null) {
  const colour = COLOURS.has(badge.colour) ? badge.colour.toLowerCase() : 'unknown';
  // What the sale earned, as the API wrote it (never re-formatted through a float).
  const value = badge.value
    ? el('span', { className: 'badge-value', testid: 'badge-value', text: ` · ${badge.value.amount} ${badge.value.currency}` })
    : null;
  return el(href ? 'a' : 'span', {
    className: `badge badge-${colour}`,
    testid: 'badge',
    text: badge.label,
    data: { kind: badge.kind, colour: badge.colour },
    attrs: href ? linkAttrs(href) : {},
  }, [value]);
}

function badgeForKind(kind) {
  return state.badgeKinds.get(kind) ?? { kind, label: kind, colour: null };
}

// Who the person is, as far as the conversation says: the signed-in name
// and the contact; "Anonymous" only when there is neither.
function renderWho(conversation) {
  const name = conversation.user?.name;
  const contact = conversation.contact;
  if (!name && !contact) return [el('span', { className: 'muted', testid: 'who-anonymous', text: 'Anonymous' })];
  return [
    ...(name ? [el('span', { className: 'who-name', testid: 'who-name', text: name })] : []),
    ...(contact ? [el('span', { className: 'who-contact', testid: 'who-contact', text: contact })] : []),
  ];
}

function renderRow(conversation) {
  return el('tr', {
    className: 'row',
    testid: 'conversation-row',
    data: { id: conversation.id, sessionId: conversation.sessionId, startedAt: conversation.startedAt },
    attrs: { tabindex: '0' },
  }, [
    // An empty cell shows a dash from CSS, so its text stays the real (empty) value.
    el('td', { className: 'cell-opening', testid: 'cell-opening', text: conversation.openingMessage ?? '' }),
    el('td', { className: 'cell-badges', testid: 'cell-badges' }, [
      ...conversation.badges.map((b) => renderBadge(b)),
      renderLabels(el, conversation.labels),
    ]),
    el('td', { className: 'cell-user', testid: 'cell-user' }, renderWho(conversation)),
    el('td', { className: 'cell-channel', testid: 'cell-channel', text: channelLabel(conversation.channel) }),
    el('td', {
      className: 'cell-started',
      testid: 'cell-started',
      text: formatDate(conversation.startedAt),
      attrs: { title: conversation.startedAt },
    }),
  ]);
}

function updateListFoot() {
  const shown = $('rows').children.length;
  $('empty').hidden = shown > 0;
  $('count').textContent = shown > 0
    ? `${shown} shown${state.list.hasNextPage ? ' · more available' : ''}`
    : '';
  $('load-more').hidden = !state.list.hasNextPage;
}

function setBusy(tableId, busy) {
  $(tableId).setAttribute('aria-busy', busy ? 'true' : 'false');
}

async function loadConversations(append) {
  const list = state.list;
  const generation = append ? list.generation : ++list.generation;
  if (!append) clearUnseen();
  const variables = {
    first: PAGE_SIZE,
    after: append ? list.endCursor : null,
    filter: filtersActive() ? state.filter : null,
  };
  setBusy('conversation-table', true);
  $('load-more').disabled = true;
  list.inFlight++;
  try {
    const data = await api(Q_LIST, variables);
    if (generation !== list.generation) return;
    const { nodes, pageInfo } = data.conversations;
    const rows = nodes.map(renderRow);
    if (append) $('rows').append(...rows);
    else $('rows').replaceChildren(...rows);
    list.endCursor = pageInfo.endCursor;
    list.hasNextPage = pageInfo.hasNextPage;
    for (const conversation of list.raced.values()) showLiveBadges(conversation);
    markSelectedRow();
    updateListFoot();
  } catch (err) {
    if (generation !== list.generation) return;
    if (!append && !isTransient(err)) {
      // Rows of the previous filter would read as this filter's answer
      // (when offline, the banner says they are from before).
      $('rows').replaceChildren();
      list.hasNextPage = false;
      updateListFoot();
    }
    handleError(err);
  } finally {
    list.inFlight--;
    if (list.inFlight === 0) list.raced.clear();
    if (generation === list.generation) {
      setBusy('conversation-table', false);
      $('load-more').disabled = false;
    }
  }
}

function findRow(id) {
  return $('rows').querySelector(`tr[data-id="${CSS.escape(id)}"]`);
}

function flashRow(row) {
  // Re-adding the class restarts the animation when events come in quick succession.
  row.classList.remove('row-updated');
  void row.offsetWidth;
  row.classList.add('row-updated');
  clearTimeout(row.flashTimer);
  row.flashTimer = setTimeout(() => row.classList.remove('row-updated'), ROW_FLASH_MS);
}

// Keeps the list newest first; a conversation older than the last loaded row
// belongs to a page not loaded yet, and shows up when it is.
function insertRow(conversation) {
  const started = parseTime(conversation.startedAt);
  const row = renderRow(conversation);
  const before = [...$('rows').children].find(
    (tr) => parseTime(tr.dataset.startedAt) <= started,
  );
  if (before) $('rows').insertBefore(row, before);
  else if (!state.list.hasNextPage) $('rows').append(row);
  else return;
  flashRow(row);
  updateListFoot();
}

function markSelectedRow() {
  for (const tr of $('rows').querySelectorAll('tr.row-selected')) tr.classList.remove('row-selected');
  if (state.detail.id) findRow(state.detail.id)?.classList.add('row-selected');
}

// ---------------------------------------------------------------------------
// Stats header.

function statCard(label, value, testid) {
  return el('div', { className: 'stat' }, [
    el('span', { className: 'stat-label', text: label }),
    el('span', { className: 'stat-value', testid, text: value }),
  ]);
}

// One card per currency: amounts in different currencies are never added.
function revenueCard(revenue) {
  const per = `${revenue.perConvertedConversation} ${revenue.currency} per converted conversation`;
  return el('div', { className: 'stat', testid: 'stat-revenue', data: { currency: revenue.currency } }, [
    el('span', { className: 'stat-label', text: `Revenue (${revenue.currency})` }),
    el('span', { className: 'stat-value', testid: 'stat-revenue-total', text: `${revenue.total} ${revenue.currency}` }),
    el('span', { className: 'stat-note', testid: 'stat-revenue-per', text: per }),
  ]);
}

function renderFunnel(funnel) {
  const head = el('thead', {}, [el('tr', {}, ['Call to action', 'Issued', 'Followed', 'Converted']
    .map((title) => el('th', { text: title, attrs: { scope: 'col' } })))]);
  // Only the calls to action that issued links: the others would be rows of zeros.
  const used = funnel.filter((step) => step.issued > 0);
  const body = el('tbody', {}, used.map((step) => el('tr', { testid: 'funnel-step', data: { action: step.action } }, [
    el('th', { text: ACTION_LABELS[step.action] ?? step.action, attrs: { scope: 'row' } }),
    el('td', { text: step.issued }),
    el('td', { className: 'funnel-arrow', text: step.followed }),
    el('td', { className: 'funnel-arrow', text: step.converted }),
  ])));
  return el('table', { className: 'funnel', testid: 'funnel' }, [
    el('caption', { text: 'Link funnel' }), head, body,
  ]);
}

const SOURCE_LABELS = { LINK: 'through a link', DIRECT: 'by session', CONFIRMATION: 'by confirmation' };

// Every conversion once: the attributed ones by how they came (they add up
// to the badges below), then the unattributed ones.
function renderSources(stats) {
  const attributed = stats.bySource.reduce((sum, s) => sum + s.count, 0);
  const parts = stats.bySource.filter((s) => s.count > 0).map((s) => el('span', {
    className: 'stat-source', testid: 'stat-source', data: { source: s.source }, text: `${s.count} ${SOURCE_LABELS[s.source] ?? s.source}`,
  }));
  parts.push(el('span', { className: 'stat-source', testid: 'stat-source', data: { source: 'UNATTRIBUTED' }, text: `${stats.unattributed} unattributed` }));
  const joined = parts.flatMap((part, i) => (i === 0 ? [part] : [' · ', part]));
  return el('p', { className: 'stat-sources', testid: 'stat-sources' }, [
    el('strong', { testid: 'stat-conversions', text: `${attributed + stats.unattributed} conversions: ` }), ...joined,
  ]);
}

function renderChannels(byChannel) {
  const head = el('thead', {}, [el('tr', {}, ['Channel', 'Conversations', 'Converted', 'Rate']
    .map((title) => el('th', { text: title, attrs: { scope: 'col' } })))]);
  const body = el('tbody', {}, byChannel.map((c) => el('tr', { testid: 'channel-stat', data: { channel: c.channel } }, [
    el('th', { text: channelLabel(c.channel), attrs: { scope: 'row' } }),
    el('td', { text: c.conversations }),
    el('td', { text: c.converted }),
    el('td', { text: formatRate(c.rate) }),
  ])));
  return el('table', { className: 'channel-stats', testid: 'channel-stats' }, [
    el('caption', { text: 'By channel' }), head, body,
  ]);
}

// The period and the filter the figures are for, in words.
function statsScope(filter) {
  const period = describePeriod($('date-preset').value, $('date-from').value, $('date-to').value);
  const names = { channel: channelLabel, badge: (kind) => badgeForKind(kind).label };
  return [period, ...describeFilter(filter, names)].join(' · ');
}

function renderStats(stats, scope) {
  const cards = el('div', { className: 'stat-cards' }, [
    statCard('Conversations', stats.conversations, 'stat-conversations'),
    statCard('Converted', stats.convertedConversations, 'stat-converted'),
    statCard('Conversion rate', formatRate(stats.conversionRate), 'stat-rate'),
    statCard('Median time to convert', formatDuration(stats.medianSecondsToConvert), 'stat-median'),
    statCard('Unattributed', stats.unattributed, 'stat-unattributed'),
    ...stats.revenue.map(revenueCard),
  ]);
  const kinds = el('div', { className: 'stat-kinds', attrs: { 'aria-label': 'Conversions per outcome' } },
    stats.byKind.map((entry) => el('span', { className: 'stat-kind', testid: 'stat-kind', data: { kind: entry.kind } }, [
      renderBadge(badgeForKind(entry.kind)),
      el('span', { className: 'stat-kind-count', testid: 'stat-kind-count', text: entry.count }),
    ])));
  const scopeLine = el('p', { className: 'stats-scope', testid: 'stats-scope', text: scope });
  const parts = [scopeLine, cards, renderSources(stats), kinds];
  const tables = [];
  if (stats.byChannel.length > 0) tables.push(renderChannels(stats.byChannel));
  if (stats.funnel.some((step) => step.issued > 0)) tables.push(renderFunnel(stats.funnel));
  if (tables.length > 0) parts.push(el('div', { className: 'stat-tables' }, tables));
  $('stats').replaceChildren(...parts);
}

// The stats follow the list's whole filter.
const statsVariables = () => ({ filter: state.filter });

async function loadStats() {
  const generation = ++state.statsGeneration;
  const variables = statsVariables();
  const scope = statsScope(state.filter);
  if (state.compareKey) loadComparison();
  $('stats').setAttribute('aria-busy', 'true');
  try {
    const data = await api(Q_STATS, variables);
    if (generation === state.statsGeneration) renderStats(data.conversionStats, scope);
  } catch (err) {
    if (generation === state.statsGeneration) handleError(err);
  } finally {
    if (generation === state.statsGeneration) $('stats').setAttribute('aria-busy', 'false');
  }
}

// The values of one label key side by side, for the stats' range.
async function loadComparison() {
  const key = state.compareKey;
  try {
    const data = await api(Q_BY_LABEL, { ...statsVariables(), key });
    if (key === state.compareKey) $('label-compare').replaceChildren(...renderComparison(el, key, data.conversionStats.byLabel));
  } catch (err) {
    handleError(err);
  }
}

// A burst of live events refreshes the figures once.
function loadStatsSoon() {
  clearTimeout(state.statsTimer);
  state.statsTimer = setTimeout(loadStats, STATS_DEBOUNCE_MS);
}

// ---------------------------------------------------------------------------
// Message formatting: **bold**, [text](url), bare http(s) URLs. One pass of
// a tokenizer; what it does not recognise stays a text node, so markup in a
// message is shown, never interpreted.

const INLINE = /\*\*([^\n]+?)\*\*|\[([^\]\n]+)\]\(([^()\s]+)\)|\bhttps?:\/\/[^\s<>"]+/gi;

// Trailing punctuation usually ends the sentence, not the URL; a closing
// parenthesis stays when it closes one inside the URL.
function trimUrl(candidate) {
  let url = candidate;
  while (/[.,;:!?'")\]]$/.test(url)) {
    if (url.endsWith(')')) {
      const opens = (url.match(/\(/g) ?? []).length;
      const closes = (url.match(/\)/g) ?? []).length;
      if (opens >= closes) break;
    }
    url = url.slice(0, -1);
  }
  return url;
}

function formatMessage(content, trusted, allowBold = true) {
  const text = String(content ?? '');
  const out = document.createDocumentFragment();
  let last = 0;
  for (const match of text.matchAll(new RegExp(INLINE.source, INLINE.flags))) {
    const [whole, bold, linkText, linkTarget] = match;
    let node = null;
    let used = whole.length;
    if (bold !== undefined) {
      if (allowBold) node = el('strong', {}, [formatMessage(bold, trusted, false)]);
    } else if (linkText !== undefined) {
      // A visitor could dress any address up as a trusted one; only the
      // AI's own links get their text, a visitor's stay as typed.
      const href = trusted ? safeUrl(linkTarget) : null;
      if (href) node = externalLink(linkText, href);
    } else {
      const url = trimUrl(whole);
      const href = safeUrl(url);
      if (href) {
        node = externalLink(url, href);
        used = url.length;
      }
    }
    if (!node) continue;
    out.append(text.slice(last, match.index), node);
    last = match.index + used;
  }
  out.append(text.slice(last));
  return out;
}

// ---------------------------------------------------------------------------
// Detail panel.

function renderMessage(message) {
  return el('div', {
    className: `message message-${String(message.role).toLowerCase().replace(/_/g, '-')}`,
    testid: 'message',
    data: { role: message.role, id: message.id },
  }, [
    el('div', { className: 'message-meta' }, [
      el('span', { className: 'message-label', testid: 'message-label', text: message.label }),
      el('time', { className: 'message-time', text: formatDate(message.createdAt), attrs: { datetime: message.createdAt } }),
    ]),
    el('div', { className: 'message-text', testid: 'message-text' }, [formatMessage(message.content, message.role !== 'VISITOR')]),
  ]);
}

const CONFIRMATION_STATES = {
  OPEN: (c) => `Open until ${formatDate(c.expiresAt)}`,
  CONFIRMED: (c) => `Confirmed ${formatDate(c.confirmedAt)}`,
  CANCELLED: (c) => `Declined ${formatDate(c.cancelledAt)}${c.cancelReason ? ` — ${c.cancelReason}` : ''}`,
  EXPIRED: (c) => `Expired unanswered ${formatDate(c.expiresAt)}`,
};

// Every confirmation asked, in each of its four states.
function renderConfirmations(confirmations) {
  const items = (confirmations ?? []).map((c) => el('li', {
    className: `confirmation confirmation-${String(c.state).toLowerCase()}`,
    testid: 'confirmation',
    data: { state: c.state },
  }, [
    el('span', { className: 'confirmation-action', text: ACTION_LABELS[c.action] ?? c.action }),
    c.summary ? el('span', { className: 'confirmation-summary', text: ` · ${c.summary}` }) : null,
    el('span', { className: 'confirmation-state', testid: 'confirmation-state', text: ` · ${(CONFIRMATION_STATES[c.state] ?? (() => c.state))(c)}` }),
  ]));
  $('detail-confirmations').replaceChildren(...(items.length ? [el('h3', { text: 'Confirmations' }), el('ul', {}, items)] : []));
}

function recordTitle(outcome) {
  const record = outcome.record ? `${RECORD_TYPE_LABELS[outcome.record.type] ?? outcome.record.type} ${outcome.record.id}` : '';
  return `${record} · recorded ${formatDate(outcome.recordedAt)} (${zoneName()})`;
}

// A withdrawn outcome (a cancelled sale) has no badge; the detail still
// shows it, struck through, with the value it had.
function renderWithdrawn(conversion) {
  const badge = { ...badgeForKind(conversion.kind), value: conversion.value };
  const node = renderBadge(badge, safeUrl(conversion.record?.url));
  node.classList.add('badge-withdrawn');
  node.dataset.testid = 'withdrawn-badge';
  node.append(el('span', { className: 'badge-note', text: ' · withdrawn' }));
  node.title = `${recordTitle(conversion)} · withdrawn`;
  return node;
}

function renderDetailBadges(badges, conversions = []) {
  const nodes = badges.map((badge) => {
    const node = renderBadge(badge, safeUrl(badge.record?.url));
    node.title = recordTitle(badge);
    return node;
  });
  for (const conversion of conversions) {
    if (conversion.attributed && conversion.status === 'RETRACTED') nodes.push(renderWithdrawn(conversion));
  }
  $('detail-badges').replaceChildren(...nodes);
  $('detail-badges').hidden = nodes.length === 0;
  const kindLabel = (kind) => badgeForKind(kind).label;
  $('detail-history').replaceChildren(...renderHistory(el, conversions, { formatDate, kindLabel }));
}

function renderDetailMeta(conversation) {
  const entries = [
    ['Session ID', el('code', { testid: 'detail-session-id', text: conversation.sessionId })],
    ['Channel', channelLabel(conversation.channel)],
    ['Started', `${formatDate(conversation.startedAt)} (${zoneName()})`],
  ];
  if (conversation.user?.name || !conversation.contact) entries.push(['User', conversation.user?.name || 'Anonymous']);
  if (conversation.contact) entries.push(['Contact', conversation.contact]);
  if (conversation.labels?.length) entries.push(['Labels', renderLabels(el, conversation.labels)]);
  $('detail-meta').replaceChildren(...entries.flatMap(([term, value]) => [
    el('dt', { text: term }),
    el('dd', {}, [value]),
  ]));
}

function appendMessages(connection) {
  $('thread').append(...connection.nodes.map(renderMessage));
  state.detail.endCursor = connection.pageInfo.endCursor;
  state.detail.hasNextPage = connection.pageInfo.hasNextPage;
  $('load-more-messages').hidden = !connection.pageInfo.hasNextPage;
  const count = $('thread').children.length;
  $('detail-status').textContent = count === 0 ? 'No messages yet.' : '';
}

function resetDetail(id) {
  const detail = $('detail');
  detail.dataset.id = id;
  detail.dataset.state = 'loading';
  $('detail-meta').replaceChildren();
  $('detail-badges').replaceChildren();
  $('detail-confirmations').replaceChildren();
  $('detail-history').replaceChildren();
  $('thread').replaceChildren();
  $('load-more-messages').hidden = true;
  $('detail-status').textContent = 'Loading…';
}

// `refresh`: read again what is open, leaving the focus where it is.
async function openDetail(id, { refresh = false } = {}) {
  const detail = state.detail;
  const generation = ++detail.generation;
  if (!refresh && (detail.id !== id || $('detail').hidden)) detail.returnFocus = document.activeElement;
  detail.id = id;
  resetDetail(id);
  $('detail').hidden = false;
  document.body.classList.add('detail-open');
  markSelectedRow();
  if (!refresh) $('close-detail').focus();
  syncUrl();
  detail.loading = true;
  detail.stale = false;
  try {
    const data = await api(Q_DETAIL, { id, first: MESSAGE_PAGE });
    if (generation !== detail.generation) return;
    detail.loading = false;
    const conversation = data.conversation;
    if (!conversation) {
      $('detail').dataset.state = 'missing';
      $('detail-status').textContent = 'This conversation does not exist or is not visible with this key.';
      return;
    }
    renderDetailMeta(conversation);
    renderDetailBadges(conversation.badges, conversation.conversions);
    renderConfirmations(conversation.confirmations);
    appendMessages(conversation.messages);
    $('detail').dataset.state = 'ready';
    // A badge that arrived live while the thread loaded may be newer than it.
    if (detail.stale) refreshDetailBadgesSoon(id);
  } catch (err) {
    if (generation !== detail.generation) return;
    detail.loading = false;
    $('detail').dataset.state = 'error';
    $('detail-status').textContent = 'The conversation could not be loaded.';
    handleError(err);
  }
}

async function loadMoreMessages() {
  const detail = state.detail;
  const { id, endCursor, generation } = detail;
  const button = $('load-more-messages');
  button.disabled = true;
  try {
    const data = await api(Q_MORE_MESSAGES, { id, first: MESSAGE_PAGE, after: endCursor });
    if (generation !== detail.generation || !data.conversation) return;
    appendMessages(data.conversation.messages);
  } catch (err) {
    if (generation === detail.generation) handleError(err);
  } finally {
    button.disabled = false;
  }
}

// Live events only change badges, so only they are re-read: the thread
// and its scroll position stay as they are.
async function refreshDetailBadges(id) {
  const generation = state.detail.generation;
  try {
    const data = await api(Q_DETAIL_BADGES, { id });
    if (generation !== state.detail.generation || state.detail.id !== id || !data.conversation) return;
    renderDetailBadges(data.conversation.badges, data.conversation.conversions);
  } catch (err) {
    if (generation === state.detail.generation && state.key) handleError(err);
  }
}

// A replay after a reconnect may bring many events for one conversation:
// one read of its badges covers them all.
function refreshDetailBadgesSoon(id) {
  const detail = state.detail;
  if (detail.loading) {
    detail.stale = true;
    return;
  }
  clearTimeout(detail.badgeTimer);
  detail.badgeTimer = setTimeout(() => refreshDetailBadges(id), STATS_DEBOUNCE_MS);
}

function closeDetail() {
  const detail = state.detail;
  detail.generation++;
  detail.id = null;
  $('detail').hidden = true;
  delete $('detail').dataset.id;
  $('detail').dataset.state = 'closed';
  document.body.classList.remove('detail-open');
  markSelectedRow();
  syncUrl();
  const back = detail.returnFocus;
  detail.returnFocus = null;
  if (back?.isConnected) back.focus();
}

// ---------------------------------------------------------------------------
// Unattributed tab.

function recordNode(record) {
  const text = `${RECORD_TYPE_LABELS[record.type] ?? record.type} ${record.id}`;
  const href = safeUrl(record.url);
  return href ? externalLink(text, href, 'record-link') : el('span', { text });
}

// Why a conversion was not credited, as a sentence (the code stays next to it).
function unattributedReason(conversion) {
  const started = conversion.conversation?.startedAt;
  if (conversion.unattributedReason !== 'ATTRIBUTION_EXPIRED' || !started) return null;
  const days = Math.floor((parseTime(conversion.recordedAt) - parseTime(started)) / 86400000);
  const how = conversion.source === 'LINK' ? 'Bought through the AI\'s link' : 'Recorded';
  const windowDays = state.unattributed.windowDays;
  const outside = windowDays ? `outside the ${windowDays}-day window` : 'outside the attribution window';
  return `${how} ${days} day${days === 1 ? '' : 's'} after the conversation started — ${outside}`;
}

function renderUnattributedRow(conversion) {
  const conversation = conversion.conversation;
  let sessionCell = null;
  if (conversation) {
    const open = el('button', {
      className: 'linklike mono',
      testid: 'unattributed-session',
      text: conversation.sessionId,
      attrs: { type: 'button', title: 'Open the conversation' },
    });
    open.addEventListener('click', () => openDetail(conversation.id));
    sessionCell = open;
  }
  return el('tr', {
    className: 'row-static',
    testid: 'unattributed-row',
    data: { id: conversion.id, kind: conversion.kind, recordId: conversion.record.id },
  }, [
    el('td', {}, [renderBadge(badgeForKind(conversion.kind))]),
    el('td', { testid: 'unattributed-record' }, [recordNode(conversion.record)]),
    el('td', { testid: 'unattributed-reason' }, [
      el('span', { testid: 'unattributed-reason-text', text: unattributedReason(conversion) ?? '' }),
      ' ',
      el('code', { className: 'muted', text: conversion.unattributedReason ?? '' }),
    ]),
    el('td', { text: formatDate(conversion.recordedAt) }),
    el('td', {}, [sessionCell]),
    el('td', { testid: 'unattributed-review' }, [reviewCell(el, api, conversion, {
      onDone: (_reviewed, action) => afterReview(conversion, conversation, action),
      onError: handleError,
    })]),
  ]);
}

// After a review the row leaves the queue; the figures and an open detail
// of its conversation are read again.
function afterReview(conversion, conversation, action) {
  const what = `${badgeForKind(conversion.kind).label} ${conversion.record.id}`;
  $('review-status').textContent = action === 'attribute'
    ? `Attributed ${what} to its conversation.`
    : `Dismissed ${what}; it stays unattributed, kept in its history.`;
  removeUnattributed(conversion.id);
  loadStatsSoon();
  if (conversation && state.detail.id === conversation.id) refreshDetailBadgesSoon(conversation.id);
}

function removeUnattributed(id) {
  const row = $('unattributed-rows').querySelector(`tr[data-id="${CSS.escape(id)}"]`);
  if (!row) return;
  row.remove();
  updateUnattributedFoot();
}

function updateUnattributedFoot() {
  const shown = $('unattributed-rows').children.length;
  $('unattributed-empty').hidden = shown > 0 || !$('unattributed-message').hidden;
  $('unattributed-count').textContent = shown > 0 ? `${shown} shown` : '';
  $('unattributed-load-more').hidden = !state.unattributed.hasNextPage;
}

async function loadUnattributed(append) {
  const view = state.unattributed;
  const generation = append ? view.generation : ++view.generation;
  setBusy('unattributed-table', true);
  $('unattributed-load-more').disabled = true;
  view.inFlight++;
  try {
    const data = await api(Q_UNATTRIBUTED, { first: UNATTRIBUTED_PAGE, after: append ? view.endCursor : null });
    if (generation !== view.generation) return;
    const { nodes, pageInfo } = data.unattributedConversions;
    view.windowDays = data.tenantSettings?.attributionWindowDays ?? null;
    const rows = nodes.map(renderUnattributedRow);
    if (append) $('unattributed-rows').append(...rows);
    else $('unattributed-rows').replaceChildren(...rows);
    view.endCursor = pageInfo.endCursor;
    view.hasNextPage = pageInfo.hasNextPage;
    view.loaded = true;
    $('unattributed-message').hidden = true;
    // Live ones that arrived while this page was read, newest last.
    if (!append) for (const [conversion, conversation] of view.raced) prependUnattributed(conversion, conversation);
  } catch (err) {
    if (generation !== view.generation) return;
    if (err.code === 'FORBIDDEN') {
      // An INTEGRATOR key may browse but not review: say so in place.
      $('unattributed-rows').replaceChildren();
      view.hasNextPage = false;
      $('unattributed-message').textContent = 'Reviewing unattributed conversions needs an ADMIN key.';
      $('unattributed-message').hidden = false;
    } else {
      handleError(err);
    }
  } finally {
    view.inFlight--;
    if (view.inFlight === 0) view.raced = [];
    if (generation === view.generation) {
      setBusy('unattributed-table', false);
      $('unattributed-load-more').disabled = false;
      updateUnattributedFoot();
    }
  }
}

function prependUnattributed(conversion, conversation) {
  if (state.unattributed.inFlight > 0) state.unattributed.raced.push([conversion, conversation]);
  if (!state.unattributed.loaded) return;
  const rows = $('unattributed-rows');
  if (rows.querySelector(`tr[data-id="${CSS.escape(conversion.id)}"]`)) return;
  const row = renderUnattributedRow({
    ...conversion,
    conversation: conversation
      ? { id: conversation.id, sessionId: conversation.sessionId, startedAt: conversation.startedAt }
      : null,
  });
  rows.prepend(row);
  flashRow(row);
  updateUnattributedFoot();
}

// ---------------------------------------------------------------------------
// Webhooks tab: each endpoint's health and latest deliveries (read only).

const Q_WEBHOOKS = `query Webhooks {
  webhookEndpoints { id url kinds channels description enabled disabledReason lastSuccessAt failing }
}`;

const Q_WEBHOOK_DELIVERIES = `query WebhookDeliveries($id: ID!) {
  latest: webhookDeliveries(endpointId: $id, first: 5) {
    nodes { eventId status attempts lastStatusCode lastError nextAttemptAt createdAt }
  }
  dead: webhookDeliveries(endpointId: $id, status: DEAD, first: 100) {
    nodes { eventId } pageInfo { hasNextPage }
  }
}`;

function endpointHealth(endpoint, dead) {
  if (!endpoint.enabled) return endpoint.disabledReason ? `Disabled: ${endpoint.disabledReason}` : 'Disabled';
  const parts = [endpoint.failing ? 'Failing' : 'Healthy'];
  parts.push(endpoint.lastSuccessAt ? `last success ${formatDate(endpoint.lastSuccessAt)} UTC` : 'no success yet');
  parts.push(`${dead.nodes.length}${dead.pageInfo.hasNextPage ? '+' : ''} dead letters`);
  return parts.join(' · ');
}

function renderDelivery(delivery) {
  const answer = delivery.lastStatusCode != null ? String(delivery.lastStatusCode) : (delivery.lastError ?? '');
  const next = delivery.nextAttemptAt ? `next ${formatDate(delivery.nextAttemptAt)}` : '';
  return el('tr', { testid: 'webhook-delivery', data: { status: delivery.status } }, [
    el('td', {}, [el('code', { text: delivery.eventId })]),
    el('td', { text: delivery.status }),
    el('td', { text: delivery.attempts }),
    el('td', { testid: 'webhook-delivery-answer', text: answer }),
    el('td', { text: next || formatDate(delivery.createdAt) }),
  ]);
}

function renderEndpoint(endpoint, deliveries) {
  const filters = [...endpoint.kinds, ...endpoint.channels].join(', ') || 'every event';
  const head = el('thead', {}, [el('tr', {}, ['Event', 'Status', 'Attempts', 'Last answer', 'When (UTC)']
    .map((title) => el('th', { text: title, attrs: { scope: 'col' } })))]);
  const table = el('table', { className: 'list' }, [
    el('caption', { text: 'Latest deliveries' }), head,
    el('tbody', {}, deliveries.latest.nodes.map(renderDelivery)),
  ]);
  return el('article', { className: 'webhook', testid: 'webhook-endpoint', data: { id: endpoint.id } }, [
    el('h3', { className: 'mono', testid: 'webhook-url', text: endpoint.url }),
    el('p', { className: 'muted', text: [endpoint.description, filters].filter(Boolean).join(' · ') }),
    el('p', { testid: 'webhook-health', text: endpointHealth(endpoint, deliveries.dead) }),
    table,
  ]);
}

async function loadWebhooks() {
  const generation = ++state.webhooksGeneration;
  $('webhook-endpoints').setAttribute('aria-busy', 'true');
  try {
    const { webhookEndpoints } = await api(Q_WEBHOOKS, {});
    const logs = await Promise.all(webhookEndpoints.map((e) => api(Q_WEBHOOK_DELIVERIES, { id: e.id })));
    if (generation !== state.webhooksGeneration) return;
    $('webhook-endpoints').replaceChildren(...webhookEndpoints.map((e, n) => renderEndpoint(e, logs[n])));
    $('webhooks-empty').hidden = webhookEndpoints.length > 0;
    $('webhooks-message').hidden = true;
  } catch (err) {
    if (generation !== state.webhooksGeneration) return;
    if (err.code === 'FORBIDDEN') {
      $('webhook-endpoints').replaceChildren();
      $('webhooks-message').textContent = 'Webhook endpoints need an ADMIN key.';
      $('webhooks-message').hidden = false;
    } else {
      handleError(err);
    }
  } finally {
    if (generation === state.webhooksGeneration) $('webhook-endpoints').setAttribute('aria-busy', 'false');
  }
}

function selectTab(name) {
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    const selected = tab.dataset.tab === name;
    tab.setAttribute('aria-selected', selected ? 'true' : 'false');
  }
  $('panel-conversations').hidden = name !== 'conversations';
  $('panel-unattributed').hidden = name !== 'unattributed';
  $('panel-webhooks').hidden = name !== 'webhooks';
  syncUrl();
  // Reviewing wants the current state, so the tab re-reads on every visit.
  if (name === 'unattributed' && state.key) loadUnattributed(false);
  if (name === 'webhooks' && state.key) loadWebhooks();
}

// ---------------------------------------------------------------------------
// Live updates over graphql-transport-ws. The last cursor seen is passed as
// `after` on every reconnect, so the server replays whatever was missed.

function setLiveStatus(status) {
  const texts = {
    live: 'Live',
    connecting: 'Connecting…',
    reconnecting: 'Reconnecting…',
    refused: 'Live updates need an ADMIN or INTEGRATOR key',
    off: '',
  };
  const node = $('live-status');
  node.dataset.state = status;
  node.textContent = texts[status] ?? '';
}

function sendLive(ws, message) {
  if (ws.readyState === WebSocket.OPEN) ws.send(JSON.stringify(message));
}

function connectLive() {
  const live = state.live;
  clearTimeout(live.timer);
  if (!state.key) return;
  let ws;
  try {
    const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
    ws = new WebSocket(`${scheme}//${location.host}/graphql`, 'graphql-transport-ws');
  } catch {
    scheduleReconnect();
    return;
  }
  live.ws = ws;
  live.connectedAt = 0;
  setLiveStatus(live.cursor || live.attempt > 0 ? 'reconnecting' : 'connecting');
  const key = state.key;
  ws.addEventListener('open', () => {
    sendLive(ws, { type: 'connection_init', payload: { authorization: `Bearer ${key}` } });
  });
  ws.addEventListener('message', (event) => onLiveMessage(ws, event.data));
  // 'error' is always followed by 'close', which does the reconnecting.
  ws.addEventListener('close', (event) => onLiveClose(ws, event));
}

function onLiveMessage(ws, raw) {
  const live = state.live;
  if (ws !== live.ws) return;
  let message;
  try {
    message = JSON.parse(raw);
  } catch {
    return;
  }
  switch (message.type) {
    case 'connection_ack': {
      live.connectedAt = Date.now();
      setLiveStatus('live');
      const variables = live.cursor ? { after: live.cursor } : {};
      sendLive(ws, { id: '1', type: 'subscribe', payload: { query: S_CONVERSIONS, variables } });
      sendLive(ws, { id: '2', type: 'subscribe', payload: { query: S_ACTIVITY } });
      break;
    }
    case 'ping':
      sendLive(ws, { type: 'pong' });
      break;
    case 'next': {
      const payload = message.payload ?? {};
      if (message.id === '2') {
        // Conversations live: ADMIN keys only; others keep the outcomes.
        if (payload.data?.conversationActivity) handleActivity(payload.data.conversationActivity);
        break;
      }
      const event = payload.data?.conversionRecorded;
      if (event) handleLiveEvent(event);
      else if (payload.errors?.length) showError(liveError(payload.errors[0]));
      break;
    }
    case 'error': {
      const first = Array.isArray(message.payload) ? message.payload[0] : null;
      if (first?.extensions?.code === 'BAD_USER_INPUT' && live.cursor) {
        // The cursor can't be resumed from: start the feed afresh and
        // re-read the page so nothing stays stale.
        live.cursor = null;
        const signIn = state.signIn;
        readFeedCursor().then((cursor) => {
          if (state.signIn !== signIn) return;
          if (!live.cursor) live.cursor = cursor;
          reload();
        });
      } else {
        showError(liveError(first));
      }
      ws.close(1000);
      break;
    }
    case 'complete':
      ws.close(1000);
      break;
    default:
      break;
  }
}

function liveError(error) {
  return new ApiError(`Live updates: ${error?.message ?? 'the subscription failed'}`,
    error?.extensions?.code ?? 'UNKNOWN', 0, error?.extensions?.requestId);
}

function onLiveClose(ws, event) {
  const live = state.live;
  if (ws !== live.ws) return;
  live.ws = null;
  if (!state.key) return;
  if (event.code === 4401 || event.code === 4403) {
    // 4403 is both "this role may not follow the feed" and "this key was
    // revoked": a plain request tells them apart.
    const signIn = state.signIn;
    api(Q_FEED_CURSOR).then(
      () => scheduleReconnect(),
      (err) => {
        if (state.signIn !== signIn) return;
        if (err.code === 'UNAUTHENTICATED') {
          handleError(err);
        } else {
          // Not allowed on the feed; retrying quickly would not change that.
          setLiveStatus('refused');
          live.timer = setTimeout(connectLive, LIVE_REFUSED_RETRY_MS);
        }
      },
    );
    return;
  }
  // A connection that stayed up a while starts the back-off over.
  if (live.connectedAt && Date.now() - live.connectedAt > 30000) live.attempt = 0;
  scheduleReconnect();
}

function scheduleReconnect() {
  const live = state.live;
  setLiveStatus('reconnecting');
  const delay = Math.min(1000 * 2 ** live.attempt, LIVE_MAX_BACKOFF_MS);
  live.attempt += 1;
  clearTimeout(live.timer);
  live.timer = setTimeout(connectLive, delay);
}

function stopLive() {
  const live = state.live;
  clearTimeout(live.timer);
  const ws = live.ws;
  live.ws = null;
  live.cursor = null;
  live.attempt = 0;
  if (ws && ws.readyState <= WebSocket.OPEN) ws.close(1000);
  setLiveStatus('off');
}

// The event carries the conversation's badges as they are now, so showing
// it again (a replay, or over a page read before it) changes nothing.
function showLiveBadges(conversation, flash = false) {
  const row = findRow(conversation.id);
  if (row) {
    row.querySelector('.cell-badges').replaceChildren(...conversation.badges.map((b) => renderBadge(b)));
    if (flash) flashRow(row);
  } else if (!filtersActive()) {
    insertRow(conversation);
  }
}

// ---------------------------------------------------------------------------
// Conversations live: new ones join the list, changed ones change in place.
// When the operator has scrolled down, the rows above grow without moving
// what they are reading, and a pill counts the new ones.

const SCROLLED_AWAY_PX = 120;

function handleActivity({ change, conversation }) {
  const row = findRow(conversation.id);
  if (row) {
    const fresh = renderRow(conversation);
    fresh.className = row.className;
    row.replaceWith(fresh);
    flashRow(fresh);
    return;
  }
  if (change !== 'STARTED') return;
  // One more conversation in the header's figures, whatever the filter.
  loadStatsSoon();
  if (filtersActive()) return;
  if (state.list.inFlight > 0) state.list.raced.set(conversation.id, conversation);
  const away = window.scrollY > SCROLLED_AWAY_PX;
  const height = document.documentElement.scrollHeight;
  insertRow(conversation);
  if (!away || !findRow(conversation.id)) return;
  window.scrollBy(0, document.documentElement.scrollHeight - height);
  state.live.unseen += 1;
  const pill = $('new-rows');
  pill.textContent = `${state.live.unseen} new`;
  pill.hidden = false;
}

function clearUnseen() {
  state.live.unseen = 0;
  $('new-rows').hidden = true;
}

function onListScroll() {
  if (state.live.unseen > 0 && window.scrollY <= SCROLLED_AWAY_PX) clearUnseen();
}

function showUnseen() {
  window.scrollTo({ top: 0 });
  clearUnseen();
}

function handleLiveEvent(event) {
  state.live.cursor = event.cursor;
  state.live.attempt = 0;
  const { conversion, conversation } = event;
  if (conversation) {
    if (state.list.inFlight > 0) state.list.raced.set(conversation.id, conversation);
    showLiveBadges(conversation, conversion.attributed);
    if (state.detail.id === conversation.id) refreshDetailBadgesSoon(conversation.id);
  }
  // A restatement or retraction is a later event of a conversion already
  // shown: only a new one joins the review list.
  if (!conversion.attributed && event.change === 'RECORDED') {
    prependUnattributed(conversion, conversation);
  }
  // Reviewed elsewhere (another operator, another tab): out of the queue.
  if (event.change === 'ATTRIBUTED' || event.change === 'DISMISSED') removeUnattributed(conversion.id);
  loadStatsSoon();
}

// ---------------------------------------------------------------------------
// Wiring.

function onRowActivate(event) {
  const row = event.target.closest('tr[data-id]');
  if (!row) return;
  if (event.type === 'keydown') {
    if (event.key !== 'Enter' && event.key !== ' ') return;
    event.preventDefault();
  }
  openDetail(row.dataset.id);
}

// Keyboard: `/` to the search, `j` / `k` down and up the rows, Enter opens
// (the row's own handler), Esc closes the detail. Letters typed into a
// field stay in the field.
function onShortcut(event) {
  if (event.key === 'Escape') {
    if (!$('detail').hidden) closeDetail();
    return;
  }
  if (event.ctrlKey || event.metaKey || event.altKey || !state.key) return;
  if (event.target.closest?.('input, select, textarea, [contenteditable]')) return;
  if (event.key === '/') {
    event.preventDefault();
    $('search').focus();
    return;
  }
  if (event.key !== 'j' && event.key !== 'k') return;
  const rows = [...$('rows').children];
  if (rows.length === 0 || $('panel-conversations').hidden) return;
  event.preventDefault();
  const at = rows.indexOf(document.activeElement?.closest?.('tr.row'));
  const next = event.key === 'j' ? Math.min(at + 1, rows.length - 1) : Math.max(at - 1, 0);
  rows[at < 0 ? 0 : next].focus();
  rows[at < 0 ? 0 : next].scrollIntoView({ block: 'nearest' });
}

function wire() {
  $('signin-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('api-key').value.trim();
    if (!key) {
      showSignInError('Paste an API key to sign in.');
      return;
    }
    signIn(key);
  });
  $('sign-out').addEventListener('click', () => signOut(null));
  $('error-close').addEventListener('click', clearError);

  $('filters').addEventListener('submit', (event) => {
    event.preventDefault();
    applyFiltersNow();
  });
  for (const id of ['search', 'session-filter']) {
    $(id).addEventListener('input', applyFiltersSoon);
    $(id).addEventListener('keydown', (event) => {
      if (event.key === 'Enter') {
        event.preventDefault();
        applyFiltersNow();
      }
    });
  }
  for (const id of ['channel-filter', 'badge-filter', 'converted-filter']) {
    $(id).addEventListener('change', applyFiltersNow);
  }
  for (const id of ['date-from', 'date-to']) {
    $(id).addEventListener('change', () => {
      $('date-preset').value = $('date-from').value || $('date-to').value ? 'custom' : '';
      applyFiltersNow();
    });
  }
  $('date-preset').addEventListener('change', () => {
    applyPreset();
    applyFiltersNow();
  });
  // Switching zones changes what the dates mean: a preset is computed
  // again, custom dates are read in the new zone; every time is redrawn.
  $('utc-toggle').addEventListener('change', () => {
    setUtc($('utc-toggle').checked);
    showZone();
    applyPreset();
    clearTimeout(typingTimer);
    state.filter = readFilter();
    syncUrl();
    reload();
    if (state.detail.id && !$('detail').hidden) openDetail(state.detail.id, { refresh: true });
  });
  // Always a fresh first page, even with no filter set: the way back to
  // the top after "Load more".
  $('reset-filters').addEventListener('click', () => {
    clearTimeout(typingTimer);
    resetFilterControls();
    state.filter = readFilter();
    syncUrl();
    reload();
  });

  $('filters-toggle').addEventListener('click', () => {
    const open = $('filters').classList.toggle('filters-open');
    $('filters-toggle').setAttribute('aria-expanded', open ? 'true' : 'false');
  });
  $('label-filter').addEventListener('input', applyFiltersSoon);
  $('compare-form').addEventListener('submit', (event) => {
    event.preventDefault();
    const key = $('compare-key').value.trim();
    if (!key) return;
    state.compareKey = key;
    loadComparison();
  });
  $('export').addEventListener('click', exportList);
  $('rows').addEventListener('click', onRowActivate);
  $('rows').addEventListener('keydown', onRowActivate);
  $('load-more').addEventListener('click', () => loadConversations(true));
  $('new-rows').addEventListener('click', showUnseen);
  window.addEventListener('scroll', onListScroll, { passive: true });
  $('unattributed-load-more').addEventListener('click', () => loadUnattributed(true));
  $('load-more-messages').addEventListener('click', loadMoreMessages);
  $('close-detail').addEventListener('click', closeDetail);
  document.addEventListener('keydown', onShortcut);
  for (const tab of document.querySelectorAll('[role="tab"]')) {
    tab.addEventListener('click', () => selectTab(tab.dataset.tab));
  }
}

function start() {
  wire();
  showZone();
  window.addEventListener('popstate', () => {
    if (state.key) showViewOfUrl();
  });
  const stored = sessionStorage.getItem(KEY_STORAGE);
  if (stored) signIn(stored);
  else $('api-key').focus();
}

start();
