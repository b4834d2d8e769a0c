// Reviewing an unattributed conversion (ADMIN): attribute it anyway or
// dismiss it, each with a reason; and the history of reviews and other
// changes in the detail.

const REVIEW_FIELDS = 'created conversion { id kind attributed dismissed record { id } }';

export const M_ATTRIBUTE = `mutation Attribute($input: ReviewConversionInput!) {
  attributeConversion(input: $input) { ${REVIEW_FIELDS} }
}`;

export const M_DISMISS = `mutation Dismiss($input: ReviewConversionInput!) {
  dismissConversion(input: $input) { ${REVIEW_FIELDS} }
}`;

export const HISTORY_FIELDS = 'adjustments { change reason role keyPrefix at }';

const ACTIONS = {
  attribute: { label: 'Attribute', mutation: M_ATTRIBUTE, field: 'attributeConversion', done: 'Attributed' },
  dismiss: { label: 'Dismiss', mutation: M_DISMISS, field: 'dismissConversion', done: 'Dismissed' },
};

// The review cell of one queue row: two buttons; either opens a reason
// box, and confirming sends the mutation. `onDone(conversion, action)`
// runs after the server agreed; `onError(err)` otherwise.
export function reviewCell(el, api, conversion, { onDone, onError }) {
  const cell = el('div', { className: 'review' });
  const buttons = Object.entries(ACTIONS).map(([name, action]) => {
    const button = el('button', {
      className: 'button button-small',
      testid: `review-${name}`,
      text: action.label,
      attrs: { type: 'button' },
    });
    button.addEventListener('click', () => openForm(name));
    return button;
  });
  cell.append(...buttons);

  function openForm(name) {
    const action = ACTIONS[name];
    const input = el('input', {
      testid: 'review-reason',
      attrs: { type: 'text', maxlength: '500', required: '', 'aria-label': `Why ${action.label.toLowerCase()}`, placeholder: 'Reason (kept in the history)' },
    });
    const confirm = el('button', { className: 'button button-small', testid: 'review-confirm', text: action.label, attrs: { type: 'submit' } });
    const cancel = el('button', { className: 'button button-small button-quiet', text: 'Cancel', attrs: { type: 'button' } });
    const form = el('form', { className: 'review-form', testid: 'review-form' }, [input, confirm, cancel]);
    cancel.addEventListener('click', () => cell.replaceChildren(...buttons));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const reason = input.value.trim();
      if (!reason) { input.focus(); return; }
      confirm.disabled = true;
      try {
        const data = await api(action.mutation, { input: { conversionId: conversion.id, reason } });
        cell.replaceChildren(el('span', { className: 'muted', testid: 'review-done', text: `${action.done}` }));
        onDone(data[action.field].conversion, name);
      } catch (err) {
        confirm.disabled = false;
        onError(err);
      }
    });
    cell.replaceChildren(form);
    input.focus();
  }
  return cell;
}

const CHANGE_WORDS = {
  RESTATED: 'Value changed',
  RETRACTED: 'Withdrawn',
  ATTRIBUTED: 'Attributed by an operator',
  DISMISSED: 'Dismissed from review',
};

// Every change of the conversation's conversions, oldest first: what, who
// (role and key), when, why.
export function renderHistory(el, conversions, { formatDate, kindLabel }) {
  const entries = [];
  for (const conversion of conversions ?? []) {
    for (const change of conversion.adjustments ?? []) {
      const who = change.keyPrefix ? `${change.role} key ${change.keyPrefix}…` : `${change.role} key`;
      const text = `${CHANGE_WORDS[change.change] ?? change.change}: ${kindLabel(conversion.kind)} ${conversion.record?.id ?? ''} · ${who} · ${formatDate(change.at)} · ${change.reason}`;
      entries.push({ at: change.at, node: el('li', { testid: 'history-entry', data: { change: change.change }, text }) });
    }
  }
  entries.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
  return entries.length ? [el('h3', { text: 'History' }), el('ul', {}, entries.map((e) => e.node))] : [];
}
