// app.js: the sink's web inbox.  Messages are hostile input: everything
// goes into the page with textContent, never as HTML, and HTML parts are
// shown as their source text.
'use strict';

const POLL_MS = 1500;
const PAGE = 50;
let latest = 0;
let shown = 0;
let polling = null;

function el(tag, cls, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function clear(e) {
  while (e.firstChild) e.removeChild(e.firstChild);
}

function status(text) {
  document.getElementById('status').textContent = text;
}

async function getJSON(url) {
  const r = await fetch(url, { cache: 'no-store' });
  if (!r.ok) throw new Error(url + ': HTTP ' + r.status);
  return r.json();
}

function badge(b) {
  return el('span', 'badge ' + (b.kind || '') + ' ' + (b.state || ''), b.text);
}

function row(m, fresh) {
  const tr = el('tr', fresh ? 'msg new' : 'msg');
  tr.dataset.id = m.id;
  tr.appendChild(el('td', 'id', m.id));
  tr.appendChild(el('td', 'time', (m.time || '').replace('T', ' ')));
  const env = el('td', 'envelope');
  env.textContent = (m.envelope_from || '<>') + ' \u2192 ' +
    (m.envelope_to || []).join(', ');
  tr.appendChild(env);
  tr.appendChild(el('td', 'subject', m.subject || '(no subject)'));
  const b = el('td', 'badges');
  (m.badges || []).forEach(x => b.appendChild(badge(x)));
  if (!(m.badges || []).length) b.appendChild(el('span', 'muted', 'none'));
  tr.appendChild(b);
  tr.addEventListener('click', () => { location.hash = '#/m/' + m.id; });
  return tr;
}

async function loadList() {
  const d = await getJSON('/api/messages?limit=' + PAGE);
  const tb = document.querySelector('#list tbody');
  clear(tb);
  const ready = d.messages.filter(m => !m.pending);
  ready.forEach(m => tb.appendChild(row(m, false)));
  shown = ready.length;
  latest = ready.length ? ready[0].id : 0;
  document.getElementById('older').hidden = shown >= d.total;
  document.getElementById('empty').hidden = d.total > 0;
}

async function loadOlder() {
  const d = await getJSON('/api/messages?limit=' + PAGE + '&offset=' + shown);
  const tb = document.querySelector('#list tbody');
  d.messages.forEach(m => tb.appendChild(row(m, false)));
  shown += d.messages.length;
  document.getElementById('older').hidden = shown >= d.total;
}

async function poll() {
  try {
    const d = await getJSON('/api/messages?limit=' + PAGE + '&since=' + latest);
    const tb = document.querySelector('#list tbody');
    // oldest first; stop at one still being analysed: the next poll has it
    let top = latest;
    for (let i = d.messages.length - 1; i >= 0; i--) {
      const m = d.messages[i];
      if (m.pending) break;
      tb.insertBefore(row(m, true), tb.firstChild);
      shown++;
      top = m.id;
    }
    latest = top;
    if (shown > 0) document.getElementById('empty').hidden = true;
    status('live \u00b7 ' + latest + ' message(s) captured');
  } catch (e) {
    status('cannot reach the sink: ' + e.message);
  }
}

function certName(c) {
  if (!c) return '';
  return (c.emails && c.emails.length) ? c.emails[0] : c.subject;
}

function recipName(r) {
  if (r.known) return certName(r.known);
  if (r.ski) return 'key id ' + r.ski;
  if (r.issuer) return r.issuer + ' serial ' + r.serial;
  return r.kind + ' (not identified)';
}

function line(parent, label, text) {
  const p = el('div', 'line');
  p.appendChild(el('strong', null, label + ': '));
  p.appendChild(el('span', null, text));
  parent.appendChild(p);
  return p;
}

function layerBox(l) {
  const box = el('div', 'layer ' + l.layer);
  if (l.layer === 'signed') {
    const who = l.identity || certName(l.signer) || 'unknown signer';
    box.appendChild(el('h4', 'headline', 'signed by ' + who + ' \u2014 ' + l.outcome));
    box.appendChild(badge({ kind: 'signed', state: l.outcome, text: l.outcome }));
    if (l.reason) line(box, 'reason', l.reason);
    if (l.signer) {
      line(box, 'signer', l.signer.subject);
      line(box, 'issued by', l.signer.issuer);
      if (l.signer.not_after) line(box, 'valid until', l.signer.not_after);
    }
    line(box, 'form', l.form === 'opaque' ? 'opaque (signed-data)' : 'detached (multipart/signed)');
    line(box, 'chain', l.outcome === 'pass' || l.outcome === 'policy' ?
      'trusted' : 'not trusted' + (l.reason ? ' (' + l.reason + ')' : ''));
    line(box, 'revocation', l.revocation || 'not checked');
    const certs = el('ul', 'certs');
    (l.certificates || []).forEach(c => certs.appendChild(el('li', null, c.subject + '  \u2190  ' + c.issuer)));
    if (certs.firstChild) { line(box, 'certificates in the message', ''); box.appendChild(certs); }
    if (l.capabilities) line(box, 'announced ciphers', l.capabilities.join(', '));
  } else if (l.layer === 'encrypted') {
    const to = (l.recipients || []).map(recipName).join(', ');
    box.appendChild(el('h4', 'headline', 'encrypted to ' + to + ', ' + (l.cipher || 'unknown cipher')));
    line(box, 'structure', l.auth_enveloped ? 'AuthEnvelopedData (authenticated)' : 'EnvelopedData (not authenticated)');
    line(box, 'content cipher', l.cipher || 'unknown');
    const ul = el('ul', 'recipients');
    (l.recipients || []).forEach(r => {
      let t = r.kind + ': ';
      t += r.ski ? 'key id ' + r.ski : r.issuer + ', serial ' + r.serial;
      t += r.known ? ' = ' + certName(r.known) + ' (' + r.known.subject + ')' : ' (not one of our certificates)';
      ul.appendChild(el('li', null, t));
    });
    line(box, 'recipients', String(l.recipients_total));
    box.appendChild(ul);
    if (l.decrypted) line(box, 'decrypted with', certName(l.decrypted_with));
    else line(box, 'not decrypted', l.decrypt_error || '');
  } else {
    box.appendChild(el('h4', 'headline', l.layer));
    if (l.error) line(box, 'error', l.error);
    if (l.content_type) line(box, 'content type', l.content_type);
  }
  return box;
}

async function showMessage(id) {
  document.getElementById('listpane').hidden = true;
  const v = document.getElementById('view');
  v.hidden = false;
  let m;
  try {
    m = await getJSON('/api/messages/' + encodeURIComponent(id));
  } catch (e) {
    document.getElementById('subject').textContent = e.message;
    return;
  }
  document.getElementById('raw').href = '/api/messages/' + m.id + '/raw';
  document.getElementById('subject').textContent = m.subject || '(no subject)';
  const sum = document.getElementById('summary');
  clear(sum);
  [['received', m.time], ['envelope from', m.envelope_from],
   ['envelope to', (m.envelope_to || []).join(', ')], ['From', m.from],
   ['To', m.to], ['Date', m.date], ['size', m.size + ' bytes']].forEach(p => {
    sum.appendChild(el('dt', null, p[0]));
    sum.appendChild(el('dd', null, p[1] || ''));
  });
  const ver = document.getElementById('verdict');
  clear(ver);
  (m.layers || []).forEach(l => ver.appendChild(layerBox(l)));
  if (!(m.layers || []).length)
    ver.appendChild(el('p', 'muted', m.analysed === false ?
      'too big to analyse: header fields only' : 'not S/MIME'));
  const tx = document.getElementById('texts');
  clear(tx);
  (m.text_parts || []).forEach(t => {
    tx.appendChild(el('div', 'muted', 'part ' + t.index + ': ' + t.type +
      (t.type === 'text/html' ? ' (shown as source, never rendered)' : '') +
      (t.truncated ? ' (cut)' : '')));
    tx.appendChild(el('pre', 'text-part', t.text));
  });
  if (!(m.text_parts || []).length)
    tx.appendChild(el('p', 'muted', 'no readable text part'));
  const mime = document.getElementById('mime');
  clear(mime);
  (m.mime || []).forEach(n => {
    const li = el('li', null, '\u00a0'.repeat(2 * n.depth) + n.type +
      ' ' + n.encoding + ' ' + n.size + ' bytes' +
      (n.charset ? ' charset=' + n.charset : '') +
      (n.filename ? ' file "' + n.filename + '"' : ''));
    mime.appendChild(li);
  });
  const hb = document.querySelector('#headers tbody');
  clear(hb);
  (m.headers || []).forEach(h => {
    const tr = el('tr');
    tr.appendChild(el('td', null, h[0]));
    tr.appendChild(el('td', null, h[1]));
    hb.appendChild(tr);
  });
}

function route() {
  const m = /^#\/m\/(\d+)$/.exec(location.hash);
  if (m) {
    showMessage(m[1]);
  } else {
    document.getElementById('view').hidden = true;
    document.getElementById('listpane').hidden = false;
  }
}

async function start() {
  document.getElementById('older').addEventListener('click', loadOlder);
  window.addEventListener('hashchange', route);
  try {
    await loadList();
    status('live \u00b7 ' + latest + ' message(s) captured');
  } catch (e) {
    status('cannot reach the sink: ' + e.message);
  }
  route();
  // one poll at a time: the next is planned when this one is over
  const loop = async () => { await poll(); polling = setTimeout(loop, POLL_MS); };
  polling = setTimeout(loop, POLL_MS);
}

document.addEventListener('DOMContentLoaded', start);
